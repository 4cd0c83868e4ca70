"""Surface density and thinning to a set spacing (:mod:`mvr3d.geometry.density`), and the
template method's smoothing drawn at that spacing (``smoothing_spacing``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from checkpoints import assert_param_saves_and_old_checkpoints_get
from mvr3d.baselines.template import TemplateDetector
from mvr3d.errors import InputError
from mvr3d.geometry.density import (
    DENSITY_NEIGHBOURS,
    anchored_areas,
    local_areas,
    point_uniforms,
    thinned_to_spacing,
)
from mvr3d.geometry.surface import smoothed_offset


def plane(n: int, seed: int, noise: float = 0.0, side: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random points on a ``side`` x ``side`` square of the plane z = 0 (area side^2),
    with ``noise`` along z, and their normals."""
    rng = np.random.default_rng(seed)
    points = np.column_stack([rng.uniform(0, side, size=(n, 2)), rng.normal(scale=noise, size=n)])
    return torch.from_numpy(points), torch.tensor([[0.0, 0.0, 1.0]]).repeat(n, 1)


def interior(points: torch.Tensor, margin: float = 1.0, side: float = 10.0) -> torch.Tensor:
    return ((points[:, :2] > margin) & (points[:, :2] < side - margin)).all(dim=1)


def test_uniforms_are_fixed_by_coordinates_and_spread_over_zero_to_one() -> None:
    points = plane(20_000, 0)[0].numpy()
    draws = point_uniforms(points, seed=3)
    order = np.random.default_rng(1).permutation(len(points))
    np.testing.assert_array_equal(point_uniforms(points[order], seed=3), draws[order])
    assert draws.min() >= 0 and draws.max() < 1
    # 20 000 uniform draws: each tenth holds 2000 +- 42 (one sigma); 10 % leaves > 4 sigma.
    counts = np.histogram(draws, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(counts - 2000) < 200)
    assert not np.array_equal(point_uniforms(points, seed=4), draws)


def test_local_area_per_point_matches_the_sampling() -> None:
    """100 points per unit area: 0.01 each. The disc estimate from 15 neighbours scatters
    by ~25 % per point, so the median over the interior is compared, at 10 % (measured:
    0.0098, and 0.0103 with noise along the normal of half the spacing)."""
    for noise in (0.0, 0.05):
        points, normals = plane(10_000, 1, noise=noise)
        area = local_areas([points], [normals])[0]
        assert area.dtype == torch.float64 and area.shape == (10_000,)
        assert float(area[interior(points)].median()) == pytest.approx(0.01, rel=0.1)


def test_local_areas_of_several_clouds_equal_each_cloud_alone() -> None:
    clouds = [plane(3000, 2), plane(5000, 3, side=5.0)]
    together = local_areas([c for c, _ in clouds], [n for _, n in clouds])
    for (cloud, normal), joint in zip(clouds, together, strict=True):
        torch.testing.assert_close(joint, local_areas([cloud], [normal])[0])
    with pytest.raises(ValueError, match="16 points or more"):
        local_areas([plane(10, 4)[0]], [plane(10, 4)[1]])


def test_thinning_leaves_the_same_density_whatever_the_scan_density() -> None:
    """Planes at 100, 200 and 400 points per unit area thinned to a spacing of 0.2 (25 per
    unit area) keep about 25 per unit area each; a plane sparser than that keeps every point."""
    kept_density = []
    for n in (10_000, 20_000, 40_000):
        points, normals = plane(n, n)
        kept = thinned_to_spacing([points], [normals], 0.2, seed=0)[0]
        inside = interior(points[kept]).sum().item()
        kept_density.append(inside / 64.0)  # interior square of side 8
    assert kept_density == pytest.approx([25.0] * 3, rel=0.15)
    sparse, normals = plane(1000, 5)  # 10 per unit area
    assert thinned_to_spacing([sparse], [normals], 0.2)[0] is None


def test_thinning_evens_out_a_scan_denser_on_one_side() -> None:
    """A scanner seen at an angle samples one side of a part more densely: after thinning
    both halves hold about the same points per area."""
    points, normals = two_density_plane()
    kept = points[thinned_to_spacing([points], [normals], 0.2)[0]]
    away_from_seam = (kept[:, 1] > 1) & (kept[:, 1] < 9)
    left_count = (away_from_seam & (kept[:, 0] > 1) & (kept[:, 0] < 4)).sum().item()
    right_count = (away_from_seam & (kept[:, 0] > 6) & (kept[:, 0] < 9)).sum().item()
    assert left_count == pytest.approx(right_count, rel=0.15)  # 600 each expected (+- 25)


def two_density_plane() -> tuple[torch.Tensor, torch.Tensor]:
    """A 10 x 10 square with 400 points per unit area left of x = 5 and 100 right of it."""
    left, _ = plane(40_000, 6, side=10.0)
    right, _ = plane(10_000, 7, side=10.0)
    points = torch.cat([left[left[:, 0] < 5], right[right[:, 0] >= 5]])
    return points, torch.tensor([[0.0, 0.0, 1.0]]).repeat(len(points), 1)


def test_areas_around_centres_are_those_points_areas() -> None:
    points, normals = two_density_plane()
    centres = torch.arange(3, len(points), 7)
    around = local_areas([points], [normals], [centres])[0]
    assert around.shape == (len(centres),)
    torch.testing.assert_close(around, local_areas([points], [normals])[0][centres])


def test_anchored_areas_follow_the_density_on_each_side() -> None:
    """Measured at one point in 16 and spread to the rest from the nearest anchor, areas keep
    the density of each half (0.0025 and 0.01 per point; medians within 10 %) and thinning
    from them still evens the halves out."""
    points, normals = two_density_plane()
    anchors = torch.arange(0, len(points), 16)
    areas = anchored_areas([points], [normals], [anchors])[0]
    assert areas.shape == (len(points),)
    inner = (points[:, 1] > 1) & (points[:, 1] < 9)
    left, right = inner & (points[:, 0] > 1) & (points[:, 0] < 4), inner & (points[:, 0] > 6) & (points[:, 0] < 9)
    assert float(areas[left].median()) == pytest.approx(0.0025, rel=0.1)
    assert float(areas[right].median()) == pytest.approx(0.01, rel=0.1)
    kept = points[thinned_to_spacing([points], [normals], 0.2, anchors=[anchors])[0]]
    inner = (kept[:, 1] > 1) & (kept[:, 1] < 9)
    left_count = (inner & (kept[:, 0] > 1) & (kept[:, 0] < 4)).sum().item()
    right_count = (inner & (kept[:, 0] > 6) & (kept[:, 0] < 9)).sum().item()
    assert left_count == pytest.approx(right_count, rel=0.15)  # 600 each expected (+- 25)


def test_clouds_without_anchors_have_every_point_measured() -> None:
    points, normals = plane(3000, 12)
    other, other_normals = two_density_plane()
    whole = local_areas([points], [normals])[0]
    for missing in (None, torch.zeros(0, dtype=torch.long)):
        areas = anchored_areas([points, other], [normals, other_normals], [missing, torch.arange(0, len(other), 16)])
        torch.testing.assert_close(areas[0], whole, rtol=0, atol=0)
        assert areas[1].shape == (len(other),)


def test_thinning_off_small_or_no_clouds() -> None:
    points, normals = plane(5000, 8)
    assert thinned_to_spacing([points], [normals], 0.0) == [None]
    tiny, tiny_normals = plane(DENSITY_NEIGHBOURS - 1, 9)
    assert thinned_to_spacing([tiny, points], [tiny_normals, normals], 1.0)[0] is None
    assert thinned_to_spacing([], [], 0.2) == []


def test_smoothing_over_sources_takes_its_neighbours_from_them_only() -> None:
    points, normals = plane(4000, 10)
    sources = torch.arange(0, 4000, 2)
    signed = torch.zeros(4000, dtype=torch.float64)
    signed[sources] = 1.0  # only the sources are off the surface
    assert torch.all(smoothed_offset(points, signed, normals, 32, sources=sources) == 1.0)
    whole = smoothed_offset(points, signed, normals, 32)
    assert 0.3 < float(whole.mean()) < 0.7
    # All points as sources is the plain smoothing, the same values by construction.
    torch.testing.assert_close(smoothed_offset(points, signed, normals, 32, sources=torch.arange(4000)), whole,
                               rtol=0, atol=0)


def sphere_scan(n: int, seed: int, ripple: float = 0.0) -> np.ndarray:
    """The upper half of a radius-10 sphere, ``n`` points, noise 0.05; ``ripple`` adds waves
    of that height and wavelength 2.5 in a phase drawn anew for every call: parts that differ
    from each other at a scale between the smoothing areas of a sparse and a dense scan."""
    rng = np.random.default_rng(seed)
    unit = rng.normal(size=(4 * n, 3))
    unit = unit[unit[:, 2] > 0][:n]
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    phase, wave = rng.uniform(0, 2 * np.pi, size=2), 2 * np.pi / 2.5
    radius = 10 + ripple * np.sin(wave * 10 * unit[:, 0] + phase[0]) * np.sin(wave * 10 * unit[:, 1] + phase[1])
    return unit * radius[:, None] + rng.normal(scale=0.05, size=(n, 3))


def test_template_smoothing_spacing_validates_saves_and_old_checkpoints_load_without_it(tmp_path) -> None:
    for wrong in (-0.1, float("nan"), float("inf")):
        with pytest.raises(InputError, match="smoothing_spacing"):
            TemplateDetector(smoothing_spacing=wrong)
    templates = [sphere_scan(3000, seed) for seed in range(2)]
    detector = TemplateDetector(device="cpu", location_scans=0, smoothing_k=32,
                                smoothing_spacing=0.02).fit(templates, progress=False)
    scan = sphere_scan(6000, 9)
    assert detector.smoothing_spacing == 0.02
    assert_param_saves_and_old_checkpoints_get(detector, scan, tmp_path / "m", "smoothing_spacing", 0.0)


def test_template_smoothing_spans_the_same_surface_on_a_denser_scan() -> None:
    """Smoothing by a count of neighbours: a scan four times as dense averages a quarter of the
    area, keeps more of the part-to-part ripple and its deviations spread wider (measured
    x1.38). Drawn at one spacing, the dense and the sparse scan spread alike (x1.00)."""
    templates = [sphere_scan(8000, seed, ripple=0.3) for seed in range(2)]

    def spread(detector: TemplateDetector, n: int) -> float:
        return float(np.mean([detector.point_deviation(sphere_scan(n, 20 + s, ripple=0.3)).std() for s in range(2)]))

    by_count = TemplateDetector(device="cpu", location_scans=0, smoothing_k=32).fit(templates, progress=False)
    by_area = TemplateDetector(device="cpu", location_scans=0, smoothing_k=32,
                               smoothing_spacing=0.015).fit(templates, progress=False)
    assert spread(by_count, 16_000) / spread(by_count, 4000) > 1.2
    assert spread(by_area, 16_000) / spread(by_area, 4000) == pytest.approx(1.0, abs=0.1)


def test_template_anchored_density_saves_and_old_checkpoints_measure_every_point(tmp_path) -> None:
    """Scans of over 8192 points have anchors, and their areas are measured there (the new
    default); a checkpoint from before measures every point, as it did."""
    templates = [sphere_scan(3000, seed) for seed in range(2)]
    detector = TemplateDetector(device="cpu", location_scans=0, smoothing_k=32,
                                smoothing_spacing=0.02).fit(templates, progress=False)
    scan = sphere_scan(9000, 9)
    assert detector.anchored_density is True
    assert_param_saves_and_old_checkpoints_get(detector, scan, tmp_path / "m", "anchored_density", False)
