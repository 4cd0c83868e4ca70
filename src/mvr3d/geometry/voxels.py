"""Voxel grids and bounding boxes of point clouds."""

from __future__ import annotations

import numpy as np

from mvr3d.errors import InputError


def bounding_diagonal(points: np.ndarray) -> float:
    """Length of the axis-aligned bounding-box diagonal (a scale for voxel sizes)."""
    return float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))


def voxel_downsample(points: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """Centroid of the points in each occupied voxel, and each point's voxel index.

    ``sampled[inverse]`` gives every input point its voxel's representative, so
    features computed on the few thousand sampled points map back to all points.
    Voxels come out sorted by key, so the result does not depend on the input order.
    """
    if not voxel > 0:
        raise InputError(f"voxel size must be positive, got {voxel}")
    pts = np.asarray(points, dtype=np.float64)
    keys = np.floor((pts - pts.min(axis=0)) / voxel).astype(np.int64)
    dims = keys.max(axis=0) + 1
    if int(dims[0]) * int(dims[1]) * int(dims[2]) < 2**62:
        # One int64 key per point: np.unique on 1-D is far faster than on rows.
        _, inverse = np.unique(np.ravel_multi_index(keys.T, dims), return_inverse=True)
    else:
        _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse)
    sums = np.stack([np.bincount(inverse, weights=pts[:, d]) for d in range(3)], axis=1)
    return sums / counts[:, None], inverse


def voxel_thin(points: np.ndarray, voxel: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One of the points themselves per occupied voxel, drawn at random (``seed``), and each
    point's voxel index, in :func:`voxel_downsample`'s voxel order.

    Unlike centroids, which average away more noise the more points share a voxel, a drawn
    point carries the cloud's own noise (choosing the one nearest the centroid would favour
    points with little noise, the more so in full voxels): every cloud thinned on one grid has
    about the same density and the noise it was scanned with.
    """
    _, inverse = voxel_downsample(points, voxel)
    order = np.random.default_rng(seed).permutation(len(inverse))
    _, first = np.unique(inverse[order], return_index=True)
    return np.asarray(points, dtype=np.float64)[order[first]], inverse
