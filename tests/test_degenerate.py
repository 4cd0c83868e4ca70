"""Degenerate geometry through the renderer: render cleanly or fail with InputError.

Outcomes observed (3 views, render 64 / image 32), recorded in docs/robustness.md:
every case below renders with finite images in [0, 1], pixel indices inside the image
and coverage > 0; only a cloud of identical points is refused (InputError).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mvr3d.errors import InputError
from mvr3d.render import RenderConfig, make_poses, render_views

CONFIG = RenderConfig(render_size=64, image_size=32)
N = 2000


def _sphere(n: int = N, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, 3))
    return (p / np.linalg.norm(p, axis=1, keepdims=True)).astype(np.float32)


def _coplanar() -> np.ndarray:
    rng = np.random.default_rng(1)
    pts = np.zeros((N, 3), np.float32)
    pts[:, :2] = rng.uniform(-1, 1, size=(N, 2))
    return pts


def _tilted_plane() -> np.ndarray:
    # A plane not aligned with any axis, so no view sees it exactly edge-on by accident.
    rng = np.random.default_rng(2)
    uv = rng.uniform(-1, 1, size=(N, 2))
    return (uv[:, :1] * [1.0, 1.0, 0.0] + uv[:, 1:] * [0.0, 1.0, 1.0]).astype(np.float32)


def _collinear() -> np.ndarray:
    t = np.linspace(-1, 1, N)[:, None]
    return (t * np.array([[1.0, 2.0, 3.0]])).astype(np.float32)


def _half_duplicated() -> np.ndarray:
    base = _sphere(N // 2)
    return np.concatenate([base, base])


CASES = {
    "coplanar_axis_aligned": _coplanar,
    "coplanar_tilted": _tilted_plane,
    "collinear": _collinear,
    "half_duplicated": _half_duplicated,
    "offset_1e6_float64": lambda: _sphere().astype(np.float64) + 1e6,
    "offset_1e6_float32": lambda: (_sphere().astype(np.float64) + 1e6).astype(np.float32),
    "tiny_1e-6_across": lambda: _sphere() * np.float32(5e-7),
    "tiny_1e-6_at_1e3": lambda: _sphere().astype(np.float64) * 5e-7 + 1e3,
    "float64": lambda: _sphere().astype(np.float64),
}


def _check_rendered(points: np.ndarray) -> None:
    views = render_views(points, make_poses(3), CONFIG)
    images = views.images
    assert images.shape == (3, images.shape[1], 32, 32)
    assert torch.isfinite(images).all()
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert images.max() > 0.0, "nothing was drawn"
    pixels = views.pixels
    assert pixels.min() >= 0 and pixels.max() < CONFIG.render_size
    assert views.coverage > 0.0


@pytest.mark.parametrize("name", sorted(CASES))
def test_degenerate_cloud_renders(name: str) -> None:
    _check_rendered(CASES[name]())


def test_identical_points_are_refused() -> None:
    with pytest.raises(InputError, match="identical"):
        render_views(np.ones((100, 3), np.float32), make_poses(3), CONFIG)


def test_identical_points_with_float32_rounding_are_refused() -> None:
    # 1e6 + 1e-9 jitter collapses to one float32 value: no extent left to fit a camera.
    rng = np.random.default_rng(3)
    pts = (1e6 + rng.normal(scale=1e-9, size=(100, 3))).astype(np.float32)
    with pytest.raises(InputError, match="identical"):
        render_views(pts, make_poses(3), CONFIG)
