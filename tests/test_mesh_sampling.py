"""Uniform, seeded surface sampling of triangle meshes."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from mvr3d.io import sample_surface


@pytest.fixture
def cube() -> tuple[np.ndarray, np.ndarray]:
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))  # centred unit cube, 12 triangles
    return np.asarray(box.vertices), np.asarray(box.faces)


def test_seeded_determinism(cube):
    a = sample_surface(*cube, n_points=1000, seed=7)
    b = sample_surface(*cube, n_points=1000, seed=7)
    c = sample_surface(*cube, n_points=1000, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (1000, 3) and a.dtype == np.float64


def test_points_lie_on_unit_cube_surface(cube):
    pts = sample_surface(*cube, n_points=5000, seed=0)
    # On the surface: inside the cube and at least one coordinate on a face plane.
    assert np.all(np.abs(pts) <= 0.5 + 1e-12)
    np.testing.assert_allclose(np.abs(pts).max(axis=1), 0.5, atol=1e-12)
    # All six faces get roughly a sixth of the samples.
    face_id = np.argmax(np.abs(pts), axis=1) * 2 + (
        pts[np.arange(len(pts)), np.argmax(np.abs(pts), axis=1)] > 0
    )
    counts = np.bincount(face_id, minlength=6)
    assert np.all(np.abs(counts / len(pts) - 1 / 6) < 0.03)


def test_area_uniformity():
    # Two disjoint triangles with areas 1 and 3.
    vertices = np.array(
        [[0, 0, 0], [2, 0, 0], [0, 1, 0], [10, 0, 0], [16, 0, 0], [10, 1, 0]], dtype=float
    )
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    pts = sample_surface(vertices, faces, n_points=40_000, seed=1)
    big = np.mean(pts[:, 0] >= 10)
    assert abs(big - 0.75) < 0.01
    # Uniform within a triangle too: the mean is the centroid.
    np.testing.assert_allclose(
        pts[pts[:, 0] < 10].mean(axis=0), vertices[:3].mean(axis=0), atol=0.02
    )


def test_zero_area_triangles_never_sampled():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5]], dtype=float)
    faces = np.array([[3, 3, 3], [0, 1, 2], [0, 0, 1]])
    pts = sample_surface(vertices, faces, n_points=2000, seed=0)
    assert np.all(pts[:, 2] == 0) and np.all(pts[:, :2].sum(axis=1) <= 1 + 1e-12)
