"""Open edges of a reference surface (geometry/surface.py) and the template method's
``edge_reach``: scan points on a part of the object that no template covered are not scored,
while a bump on a covered part still is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from checkpoints import assert_param_saves_and_old_checkpoints_get
from mvr3d.baselines.template import TemplateDetector
from mvr3d.errors import InputError
from mvr3d.geometry.surface import OPEN_EDGE_STRENGTH, SurfaceReference

SPACING = 0.1


def plate_with_hole() -> np.ndarray:
    """A flat 8 x 8 grid of spacing SPACING at z = 0 with a round hole of radius 1.5 at the origin."""
    axis = np.arange(-4.0, 4.0 + 1e-9, SPACING)
    grid = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    grid = grid[np.linalg.norm(grid, axis=1) > 1.5]
    return np.column_stack([grid, np.zeros(len(grid))])


def cube_surface() -> np.ndarray:
    """The six faces of a 4 x 4 x 4 cube sampled on a grid of spacing SPACING (closed: no open edge)."""
    axis = np.arange(-2.0, 2.0 + 1e-9, SPACING)
    face = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    faces = []
    for dim in range(3):
        for side in (-2.0, 2.0):
            faces.append(np.insert(face, dim, side, axis=1))
    return np.unique(np.concatenate(faces).round(6), axis=0)


def beyond(reference: SurfaceReference, query: np.ndarray, reach: float = 3.0) -> np.ndarray:
    query = torch.from_numpy(query)
    return reference.beyond_edges(query, reference.nearest(query), reach).numpy()


def test_open_edges_are_the_rim_of_a_hole_and_point_out_of_the_surface() -> None:
    points = plate_with_hole()
    edges = SurfaceReference(points).open_edges
    radius = np.linalg.norm(points[:, :2], axis=1)
    strength = edges.strength.numpy()
    # A concave rim holds more than half a disc of neighbours: most of it, not all, is lopsided enough.
    assert np.mean(strength[(radius < 1.6) & (np.abs(points[:, :2]).max(axis=1) < 3.5)] > OPEN_EDGE_STRENGTH) > 0.8
    assert np.all(strength[(radius > 2.2) & (np.abs(points[:, :2]).max(axis=1) < 3.5)] < OPEN_EDGE_STRENGTH)
    rim = radius < 1.6
    into_hole = -points[rim, :2] / radius[rim, None]
    assert np.all((edges.outward.numpy()[rim, :2] * into_hole).sum(axis=1) > 0.8)
    assert edges.spacing == pytest.approx(SPACING)


def test_points_in_an_uncovered_hole_are_beyond_the_edge_and_others_are_not() -> None:
    reference = SurfaceReference(plate_with_hole())
    angle = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ring = np.column_stack([np.cos(angle), np.sin(angle), np.zeros_like(angle)])
    assert beyond(reference, 0.8 * ring).all()  # 0.7 (7 spacings) past the rim
    assert not beyond(reference, 1.4 * ring).any()  # 1 spacing past the rim: within reach
    lifted = np.column_stack([np.random.default_rng(0).uniform(-3, 3, (200, 2)), np.full(200, 0.8)])
    lifted = lifted[np.linalg.norm(lifted[:, :2], axis=1) > 2.0]
    assert not beyond(reference, lifted).any()  # a bump over covered surface
    assert not beyond(reference, plate_with_hole()[::7] + [0.03, 0.02, 0.01]).any()


def test_a_closed_surface_has_no_open_edge_even_at_its_corners() -> None:
    points = cube_surface()
    reference = SurfaceReference(points)
    assert reference.open_edges.strength.max() < OPEN_EDGE_STRENGTH
    # Points pushed out past an edge of the cube (a bump there) are not taken for uncovered part.
    pushed = points[(np.abs(points) > 1.99).sum(axis=1) >= 2] * 1.3
    assert not beyond(reference, pushed).any()


def lopsided(n: int, seed: int) -> np.ndarray:
    """(n, 3) noisy samples of a lumpy closed surface of radius ~10 with no rotational symmetry
    (``shapes.blob`` has a half-turn one, which would let a scan register upside down)."""
    rng = np.random.default_rng(seed)
    unit = rng.normal(size=(n, 3))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    radius = 1 + 0.2 * np.sin(3 * unit[:, 0]) * np.cos(2 * unit[:, 1]) + 0.15 * unit[:, 2] + 0.1 * unit[:, 1]
    return 10 * unit * radius[:, None] + rng.normal(scale=0.02, size=(n, 3))


def capless(points: np.ndarray) -> np.ndarray:
    """``points`` without the cap where the direction has z > 0.7: a part of the object no template saw."""
    return points[points[:, 2] / np.linalg.norm(points, axis=1) < 0.7]


def side_bump(points: np.ndarray) -> np.ndarray:
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    lift = np.clip((unit[:, 0] - 0.8) / 0.2, 0, 1) ** 2
    return points + 2.0 * lift[:, None] * unit


def test_template_does_not_score_what_no_template_covered_but_still_finds_a_bump() -> None:
    templates = [capless(lopsided(6000, seed)) for seed in range(3)]
    scan, bumped = lopsided(4000, 10), side_bump(lopsided(4000, 11))
    scores = {}
    for reach in (0.0, 3.0):
        detector = TemplateDetector(device="cpu", smoothing_k=32, location_scans=0, edge_reach=reach).fit(
            templates, progress=False)
        scores[reach] = (detector.score(scan), detector.score(bumped))
    direction = scan[:, 2] / np.linalg.norm(scan, axis=1)
    uncovered, covered = direction > 0.8, direction < 0.6
    plain, reaching = scores[0.0][0].point_scores, scores[3.0][0].point_scores
    assert np.quantile(plain[uncovered], 0.9) > np.quantile(plain[covered], 0.99)  # taken for a defect
    assert np.quantile(reaching[uncovered], 0.9) < np.quantile(reaching[covered], 0.99)
    assert scores[3.0][0].object_score < scores[0.0][0].object_score / 2
    assert scores[3.0][1].object_score > 2 * scores[3.0][0].object_score

def test_template_edge_reach_validates_saves_and_old_checkpoints_load_without_it(tmp_path) -> None:
    for wrong in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="edge_reach"):
            TemplateDetector(edge_reach=wrong)
    templates = [capless(lopsided(3000, seed)) for seed in range(2)]
    detector = TemplateDetector(device="cpu", smoothing_k=32, location_scans=0, edge_reach=2.0).fit(
        templates, progress=False)
    assert detector.edge_reach == 2.0
    assert_param_saves_and_old_checkpoints_get(detector, lopsided(3000, 9), tmp_path / "m", "edge_reach", 0.0)


def test_a_scan_wholly_past_the_edges_is_still_scored_from_all_its_points() -> None:
    """With no covered point left, the smoothing and the object score fall back to every point
    rather than to nothing."""
    templates = [capless(lopsided(6000, seed)) for seed in range(3)]
    detector = TemplateDetector(device="cpu", smoothing_k=32, location_scans=0).fit(templates, progress=False)
    detector.aligner_.pose_joined = lambda points, sizes: [(0, np.eye(3), np.zeros(3))] * len(sizes)
    full = lopsided(20000, 12)
    cap = full[full[:, 2] / np.linalg.norm(full, axis=1) > 0.85]
    moved = torch.from_numpy(cap)
    assert detector.reference_.beyond_edges(moved, detector.reference_.nearest(moved), 3.0).all()
    result = detector.score(cap)
    assert np.isfinite(result.point_scores).all() and np.isfinite(result.object_score)
    assert result.object_score == pytest.approx(float(np.sort(result.point_scores)[-max(1, round(0.01 * len(cap))):].mean()), rel=1e-6)
