"""Scans registered together give what each gives alone.

The batched pose search pads scans of different sizes to one width and masks the
padding; the per-scan maths is the same, only summation order may differ, so poses are
compared to 1e-8 (float64 ICP; a different pose would be off by far more) and scores in
robust z units to 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mvr3d.baselines import BASELINES
from mvr3d.geometry import TemplateAligner
from mvr3d.geometry.icp import candidate_rotations, icp_batch, pad_stack, to_tensor
from mvr3d.geometry.neighbours import NeighbourIndex
from mvr3d.geometry.normals import estimate_normals


def box(n: int, rng: np.random.Generator, sides: tuple[float, float, float] = (1.0, 0.6, 0.3)) -> np.ndarray:
    half = np.asarray(sides) / 2
    points = rng.uniform(-half, half, size=(n, 3))
    axis = rng.integers(3, size=n)
    points[np.arange(n), axis] = half[axis] * rng.choice([-1.0, 1.0], size=n)
    return points + rng.normal(scale=0.002, size=(n, 3))


def partial_scans(rng: np.random.Generator) -> list[np.ndarray]:
    """Three one-sided views of different sizes, each in its own pose."""
    scans = []
    for size, cut, angles in ((9000, -0.05, (25, -15, 140)), (4000, 0.05, (-60, 30, 10)), (12000, -0.2, (90, 45, -30))):
        scan = box(size, rng)
        scan = scan[scan[:, 2] + 0.4 * scan[:, 0] > cut]
        scans.append(scan @ Rotation.from_euler("xyz", angles, degrees=True).as_matrix().T + rng.normal(size=3))
    return scans


@pytest.fixture(scope="module")
def templates() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [box(12000, rng) for _ in range(3)]


@pytest.mark.parametrize("cap", [None, 0.05])
def test_icp_batch_of_padded_groups_equals_separate_runs(templates: list[np.ndarray], cap: float | None) -> None:
    rng = np.random.default_rng(2)
    target = NeighbourIndex(to_tensor(templates[0], "cpu"))
    normals = to_tensor(estimate_normals(templates[0]), "cpu")
    sources = [templates[1][rng.choice(len(templates[1]), size, replace=False)] for size in (300, 180)]
    rotations = to_tensor(candidate_rotations(2, seed=0)[:3], "cpu")
    shifts = to_tensor(rng.normal(scale=0.05, size=(3, 3)), "cpu")
    alone = [icp_batch(to_tensor(s, "cpu"), target, rotations, shifts, 6, 0.8, normals, cap) for s in sources]
    stacked, valid = pad_stack(sources, "cpu")
    assert stacked.shape == (2, 300, 3) and valid.sum(dim=1).tolist() == [300, 180]
    together = icp_batch(stacked, target, rotations.repeat(2, 1, 1), shifts.repeat(2, 1), 6, 0.8, normals, cap,
                         valid=valid)
    for expected, got in zip((torch.cat(parts) for parts in zip(*alone, strict=True)), together, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-8)


def test_pose_many_equals_pose_of_each_scan(templates: list[np.ndarray]) -> None:
    aligner = TemplateAligner(seed=0, n_random=16, survivors=48, keep_best=6).fit(templates)
    scans = partial_scans(np.random.default_rng(5))
    together = aligner.pose_many(scans)
    assert len(together) == len(scans) and aligner.pose_many([]) == []
    for scan, (j, rotation, shift) in zip(scans, together, strict=True):
        alone_j, alone_rotation, alone_shift = aligner.pose(scan)
        assert j == alone_j
        np.testing.assert_allclose(rotation, alone_rotation, rtol=0, atol=1e-8)
        np.testing.assert_allclose(shift, alone_shift, rtol=0, atol=1e-8)


def test_template_score_many_equals_score_of_each_scan(templates: list[np.ndarray]) -> None:
    detector = BASELINES["template"](seed=0, device="cpu", random_rotations=16, survivors=48).fit(templates)
    scans = partial_scans(np.random.default_rng(6))
    together = detector.score_many(scans)
    assert detector.score_many([]) == []
    for scan, batched in zip(scans, together, strict=True):
        alone = detector.score(scan)
        assert batched.point_scores.shape == (len(scan),)
        np.testing.assert_allclose(batched.point_scores, alone.point_scores, rtol=0, atol=1e-4)
        assert batched.object_score == pytest.approx(alone.object_score, abs=1e-4)


def test_host_map_keeps_order_and_runs_inline_for_one_item() -> None:
    import threading

    from mvr3d.utils.parallel import host_map

    assert host_map(lambda x: x * x, list(range(20)), threads=4) == [x * x for x in range(20)]
    assert host_map(lambda _: threading.current_thread() is threading.main_thread(), [0]) == [True]
    assert host_map(len, []) == []


def blob(n: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth star-shaped blob without symmetries: PCA normals are well defined everywhere
    (on a box's edges they are not, and exact searches that list equidistant neighbours in
    another order may flip them)."""
    unit = rng.normal(size=(n, 3))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    radius = 1 + 0.2 * np.sin(3 * unit[:, 0]) * np.cos(2 * unit[:, 1]) + 0.1 * unit[:, 2] ** 2
    return unit * radius[:, None] + rng.normal(scale=0.003, size=(n, 3))


def test_template_scores_on_the_accelerator_search_path_match_the_cpu_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU the neighbour searches are brute force or cell grids instead of k-d trees;
    forcing those paths on the CPU must give the same poses and scores. The brute force
    ranks candidates in float32, so a neighbour tied with the k-th to ~1e-5 may swap in
    and tilt a few of the fused surface's local planes (21 of 44 k here), or swap one of a
    point's 256 smoothing neighbours: its mean moves by up to (a few noise levels) / 256,
    which against the smoothed scores' spread (~ noise / 16) can be a few hundredths of a
    robust z unit. So: the median point agrees to 1e-3, 99.9 % to 0.01, all to 0.05, against
    several units for a defect."""
    from mvr3d.geometry import aligner, surface

    rng = np.random.default_rng(3)
    templates = [blob(15000, rng) for _ in range(3)]
    scans = []
    for angles in ((25, -15, 140), (-60, 30, 10)):
        scan = blob(10000, rng)
        scans.append(scan[scan[:, 2] > -0.2] @ Rotation.from_euler("xyz", angles, degrees=True).as_matrix().T)

    def make() -> object:
        # Uncalibrated: the location z-scores divide by spreads down to a quarter of the part's
        # median (SPREAD_FLOOR), which would scale these tolerances by up to 4.
        return BASELINES["template"](seed=0, device="cpu", random_rotations=16, survivors=48,
                                     location_scans=0).fit(templates)

    on_trees = make().score_many(scans)

    class Accelerated(NeighbourIndex):
        def __init__(self, reference: torch.Tensor, brute_force: bool | None = None, **options: object) -> None:
            super().__init__(reference, brute_force=True, **options)

    for module in (aligner, surface):
        monkeypatch.setattr(module, "NeighbourIndex", Accelerated)
    on_grids = make().score_many(scans)
    for tree, grid in zip(on_trees, on_grids, strict=True):
        gap = np.abs(grid.point_scores - tree.point_scores)
        assert np.median(gap) < 1e-3
        assert np.quantile(gap, 0.999) < 0.01
        assert gap.max() < 0.05
