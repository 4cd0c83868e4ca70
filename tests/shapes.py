"""Synthetic test parts shared by several test modules (imported as ``shapes``: pytest puts
this folder on the import path)."""

from __future__ import annotations

import numpy as np


def blob(n: int, seed: int) -> np.ndarray:
    """(n, 3) noisy samples of a lumpy closed surface of radius ~10."""
    rng = np.random.default_rng(seed)
    unit = rng.normal(size=(n, 3))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    radius = 1 + 0.2 * np.sin(3 * unit[:, 0]) * np.cos(2 * unit[:, 1])
    return 10 * unit * radius[:, None] + rng.normal(scale=0.02, size=(n, 3))


def bulged(points: np.ndarray) -> np.ndarray:
    """``points`` with a smooth bump of height 2 lifting the surface where its direction has z > 0.8."""
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    lift = np.clip((unit[:, 2] - 0.8) / 0.2, 0, 1) ** 2
    return points + 2.0 * lift[:, None] * unit
