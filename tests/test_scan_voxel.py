"""``scan_voxel``: scans downsampled on the template's grid before scoring (MVR, template reference)."""

from dataclasses import replace

import numpy as np
import pytest

from mvr3d.errors import InputError
from mvr3d.geometry import voxel_downsample, voxel_thin
from mvr3d.models import MVRDetector
from mvr3d.models.mvr.batch_scoring import MIN_GRID_POINTS, reduce_points
from test_detector import sphere, tiny_config


def test_grid_reduction_is_the_voxel_downsample_and_maps_every_point_back():
    points = sphere(6000, 1).astype(np.float32)
    reduced, inverse = reduce_points(points, None, 1.0)
    expected, expected_inverse = voxel_downsample(points, 1.0)
    np.testing.assert_array_equal(reduced, expected.astype(np.float32))
    np.testing.assert_array_equal(inverse, expected_inverse)
    # Each point's representative is its voxel's centroid: within one voxel diagonal of it.
    assert np.linalg.norm(reduced[inverse] - points, axis=1).max() <= np.sqrt(3) * 1.0


def test_grid_then_max_points_composes_the_two_maps():
    points = sphere(20000, 2).astype(np.float32)
    reduced, inverse = reduce_points(points, 1000, 0.3)
    on_grid, _ = voxel_downsample(points, 0.3)
    assert len(reduced) <= 1000 < len(on_grid)
    assert inverse.shape == (20000,) and inverse.max() < len(reduced)
    assert np.linalg.norm(reduced[inverse] - points, axis=1).max() < 3.0  # the coarser voxels' diagonal


def test_a_grid_that_would_leave_too_few_points_is_not_applied():
    points = sphere(3000, 3)
    reduced, inverse = reduce_points(points, None, 8.0)  # a 20-unit sphere on an 8-unit grid: a few voxels
    assert len(voxel_downsample(points, 8.0)[0]) < MIN_GRID_POINTS
    assert inverse is None and reduced is points


@pytest.fixture(scope="module")
def reference_detector():
    return MVRDetector(tiny_config(reference="template", view_selection="scan")).fit(
        [sphere(8000, s) for s in range(2)], progress=False)


def score_with(detector: MVRDetector, scan: np.ndarray, **fields):
    """The detector's score of ``scan`` with ``fields`` changed for this one call."""
    plain = detector.config
    detector.config = replace(plain, **fields)
    try:
        return detector.score(scan)
    finally:
        detector.config = plain


def test_detector_scores_the_grid_cloud_and_gives_every_point_its_voxel_score(reference_detector):
    scan = sphere(20000, 5).astype(np.float32)
    voxel = reference_detector.aligner_.voxel_
    on_grid, inverse = voxel_downsample(scan, voxel)
    direct = reference_detector.score(on_grid.astype(np.float32))
    result = score_with(reference_detector, scan, scan_voxel=1.0)
    assert result.point_scores.shape == (20000,)
    # The same cloud through the same code: only the expansion to the original points differs.
    np.testing.assert_allclose(result.point_scores, direct.point_scores[inverse], rtol=1e-6, atol=1e-9)
    assert result.object_score == pytest.approx(direct.object_score, rel=1e-6)


def noisy_plane(points: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(0, 10, (points, 2)), rng.normal(0, noise, points)]


def test_thinning_keeps_one_of_the_points_of_each_voxel():
    points = sphere(6000, 4)
    thinned, inverse = voxel_thin(points, 1.0)
    centroids, expected_inverse = voxel_downsample(points, 1.0)
    np.testing.assert_array_equal(inverse, expected_inverse)
    assert len(thinned) == len(centroids)
    # Each kept point is an input point, and one of its own voxel's.
    rows = {tuple(p): i for i, p in enumerate(points)}
    kept = np.array([rows[tuple(p)] for p in thinned])
    np.testing.assert_array_equal(inverse[kept], np.arange(len(thinned)))
    # Seeded: the same draw again, another with another seed.
    np.testing.assert_array_equal(voxel_thin(points, 1.0)[0], thinned)
    assert not np.array_equal(voxel_thin(points, 1.0, seed=1)[0], thinned)


def test_thinning_keeps_the_noise_that_centroids_average_away():
    # ~500 points in each 0.5-unit column; the noise stays within one layer of voxels.
    plane = noisy_plane(200_000, noise=0.05, seed=0)
    centroids, _ = voxel_downsample(plane, 0.5)
    thinned, _ = voxel_thin(plane, 0.5)
    assert centroids[:, 2].std() < 0.2 * 0.05
    # One draw from each voxel has the points' spread (400-odd draws: within 15 %).
    assert thinned[:, 2].std() == pytest.approx(plane[:, 2].std(), rel=0.15)


def test_thinned_clouds_of_any_density_come_out_alike():
    sparse, dense = noisy_plane(20_000, 0.02, 1), noisy_plane(200_000, 0.02, 2)
    thinned = [voxel_thin(cloud, 0.2)[0] for cloud in (sparse, dense)]
    assert len(thinned[1]) == pytest.approx(len(thinned[0]), rel=0.03)  # 2500 columns, nearly all occupied
    assert thinned[1][:, 2].std() == pytest.approx(thinned[0][:, 2].std(), rel=0.1)


def test_detector_draws_each_voxel_as_one_of_its_points_when_asked(reference_detector):
    scan = sphere(20000, 6).astype(np.float32)
    voxel = 0.5 * reference_detector.aligner_.voxel_
    thinned, inverse = voxel_thin(scan, voxel)
    direct = reference_detector.score(thinned.astype(np.float32))
    result = score_with(reference_detector, scan, scan_voxel=0.5, scan_voxel_point="random")
    assert result.point_scores.shape == (20000,)
    np.testing.assert_allclose(result.point_scores, direct.point_scores[inverse], rtol=1e-6, atol=1e-9)


def test_scan_voxel_is_validated():
    with pytest.raises(InputError, match="scan_voxel"):
        tiny_config(scan_voxel=-1.0)
    with pytest.raises(InputError, match="scan_voxel=1.0 needs align=True"):
        tiny_config(scan_voxel=1.0, align=False)
    with pytest.raises(InputError, match="scan_voxel_point"):
        tiny_config(scan_voxel=1.0, scan_voxel_point="median")
