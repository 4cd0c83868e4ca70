"""Defect synthesis: labels match the displaced geometry, sizes and directions as asked."""

from __future__ import annotations

import numpy as np
import pytest

from mvr3d.data.defects import LABEL_THRESHOLD, add_defect
from mvr3d.geometry import bounding_diagonal, estimate_normals


@pytest.fixture(scope="module")
def sphere() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(20_000, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return 10.0 * normals, normals


@pytest.mark.parametrize("kind", ["bulge", "sink"])
def test_labels_sit_on_displaced_points(sphere: tuple[np.ndarray, np.ndarray], kind: str) -> None:
    points, normals = sphere
    moved, labels = add_defect(points, normals, kind, np.random.default_rng(1))
    assert moved.shape == points.shape and labels.dtype == np.uint8
    assert 0.01 <= labels.mean() <= 0.05
    shift = np.linalg.norm(moved - points, axis=1)
    peak = shift.max()
    assert 0.01 * bounding_diagonal(points) < peak < 0.05 * bounding_diagonal(points)
    assert np.all(shift[labels == 1] > LABEL_THRESHOLD * peak * 0.999)
    assert np.all(shift[labels == 0] <= LABEL_THRESHOLD * peak * 1.001)
    radial = np.linalg.norm(moved, axis=1) - 10.0
    # Bulges push the labelled patch out of the sphere, sinks push it in.
    sign = 1 if kind == "bulge" else -1
    assert sign * radial[labels == 1].mean() > 0.1 * peak


def test_fraction_range_and_visible_mask(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    points, normals = sphere
    visible = points[:, 2] > 5.0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        _, labels = add_defect(points, normals, "bulge", rng, (0.02, 0.03), visible_mask=visible)
        share = labels[visible].mean()
        assert 0.015 <= share <= 0.031
        assert points[labels == 1, 2].mean() > 5.0  # centred on the visible cap


def test_seeded_and_validated(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    points, normals = sphere
    a = add_defect(points, normals, "sink", np.random.default_rng(7))
    b = add_defect(points, normals, "sink", np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="kind"):
        add_defect(points, normals, "crack", np.random.default_rng(0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no points"):
        add_defect(
            points, normals, "bulge", np.random.default_rng(0), visible_mask=points[:, 0] > 99
        )


def test_estimate_normals_on_sphere(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    points, truth = sphere
    normals = estimate_normals(points[:5000], k=12)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-9)
    assert np.einsum("ij,ij->i", normals, truth[:5000]).min() > 0.9  # outward and accurate
