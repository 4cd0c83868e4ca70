"""``reference_draw='scan'``: the template reference drawn as the scan's own points with the template's shape."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from mvr3d.errors import InputError
from mvr3d.geometry.surface import shaped_like
from mvr3d.models import MVRDetector
from test_detector import assert_finds_a_bulge_and_reloads, sphere, tiny_config

NOISE = 0.01


def noisy_plane_with_bump(seed: int, points: int = 6000, height: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A noisy 4 x 4 square of z = 0 with a Gaussian bump at its centre, and which points are on it."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-2, 2, size=(points, 2))
    radius = np.linalg.norm(xy, axis=1)
    z = height * np.exp(-(radius / 0.4) ** 2) + rng.normal(scale=NOISE, size=points)
    return np.column_stack([xy, z]), radius < 0.3


def flat_reference(seed: int, points: int = 8000) -> torch.Tensor:
    xy = np.random.default_rng(seed).uniform(-2.2, 2.2, size=(points, 2))
    return torch.from_numpy(np.column_stack([xy, np.zeros(points)]))


def test_shaped_like_takes_out_a_bump_and_keeps_the_noise():
    scan, on_bump = noisy_plane_with_bump(0)
    shaped = shaped_like(torch.from_numpy(scan), flat_reference(1), smoothing=32).numpy()
    assert shaped.shape == scan.shape
    # The bump (0.3-0.5 high where it is marked) is gone, down to a small share of its height.
    assert np.abs(shaped[on_bump, 2]).max() < 0.1
    # In the plane the points move along z only, and by the mean of 32 noise draws at most
    # (5 sigma of that mean, sigma = NOISE / sqrt(32)), so each keeps its own noise draw.
    np.testing.assert_array_equal(shaped[:, :2], scan[:, :2])
    away = np.linalg.norm(scan[:, :2], axis=1) > 1.2
    assert np.abs(shaped[away, 2] - scan[away, 2]).max() < 5 * NOISE / np.sqrt(32)
    assert 0.9 < shaped[away, 2].std() / scan[away, 2].std() < 1.1


def test_points_on_the_reference_shape_stay_where_they_are():
    plane = flat_reference(2, 3000)
    points = flat_reference(3, 2000).float()
    shaped = shaped_like(points, plane, smoothing=16)
    assert shaped.dtype == torch.float32
    torch.testing.assert_close(shaped, points, atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def drawn_from_scan():
    # As in test_detector's template-reference test: dense spheres, so that sampling alone
    # does not move a random ViT's tokens as much as a bulge.
    config = tiny_config(reference="template", view_selection="scan", reference_draw="scan")
    return MVRDetector(config).fit([sphere(8000, s) for s in range(2)], progress=False)


def test_the_reference_is_the_scan_point_for_point(drawn_from_scan):
    placed = drawn_from_scan._placed(sphere(8000, 5).astype(np.float32))
    assert placed.reference.shape == placed.cloud.shape
    # The scan lies on the template's sphere: its points move by the templates' misfit only.
    gap = (placed.reference - placed.cloud).norm(dim=1)
    assert float(gap.max()) < 0.05 * 10  # a twentieth of the sphere's radius


def test_a_bulge_stands_out_against_the_scan_drawn_with_the_template_shape(drawn_from_scan, tmp_path):
    loaded = assert_finds_a_bulge_and_reloads(drawn_from_scan, tmp_path)
    assert loaded.config.reference_draw == "scan"


def test_the_template_draw_is_unchanged_by_the_smoothing_field(drawn_from_scan):
    plain = replace(drawn_from_scan.config, reference_draw="template")
    drawn_from_scan.config = plain
    try:
        placed = drawn_from_scan._placed(sphere(8000, 5).astype(np.float32))
        assert placed.reference.shape != placed.cloud.shape  # the template's own points under the scan
    finally:
        drawn_from_scan.config = replace(plain, reference_draw="scan")


@pytest.mark.parametrize(("field", "value"), [("reference_draw", "mesh"), ("reference_smoothing", 0)])
def test_bad_reference_draw_settings_are_refused(field, value):
    with pytest.raises(InputError, match=field):
        tiny_config(reference="template", **{field: value})
