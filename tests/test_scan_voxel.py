"""``scan_voxel``: scans downsampled on the template's grid before scoring (MVR, template reference)."""

from dataclasses import replace

import numpy as np
import pytest

from mvr3d.errors import InputError
from mvr3d.geometry import voxel_downsample
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


def test_detector_scores_the_grid_cloud_and_gives_every_point_its_voxel_score(reference_detector):
    scan = sphere(20000, 5).astype(np.float32)
    voxel = reference_detector.aligner_.voxel_
    on_grid, inverse = voxel_downsample(scan, voxel)
    direct = reference_detector.score(on_grid.astype(np.float32))
    plain = reference_detector.config
    reference_detector.config = replace(plain, scan_voxel=1.0)
    try:
        result = reference_detector.score(scan)
    finally:
        reference_detector.config = plain
    assert result.point_scores.shape == (20000,)
    # The same cloud through the same code: only the expansion to the original points differs.
    np.testing.assert_allclose(result.point_scores, direct.point_scores[inverse], rtol=1e-6, atol=1e-9)
    assert result.object_score == pytest.approx(direct.object_score, rel=1e-6)


def test_scan_voxel_is_validated():
    with pytest.raises(InputError, match="scan_voxel"):
        tiny_config(scan_voxel=-1.0)
    with pytest.raises(InputError, match="scan_voxel=1.0 needs align=True"):
        tiny_config(scan_voxel=1.0, align=False)
