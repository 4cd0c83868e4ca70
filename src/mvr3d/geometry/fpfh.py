"""Fast Point Feature Histograms (Rusu et al., ICRA 2009), vectorised in numpy/scipy.

Follows PCL's definition: SPFH with 11 bins for each of the three Darboux-frame angles
(33 dims, each sub-histogram summing to 100), then FPFH = SPFH(p) + the 1/distance
weighted SPFH of p's neighbours, renormalised per sub-histogram. All work is batched
over chunks of points; there is no Python loop over points.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from mvr3d.errors import InputError
from mvr3d.geometry.normals import CHUNK, estimate_normals

BINS = 11
FPFH_DIM = 3 * BINS
_EPS = 1e-12
_TIE = 1e-9


def _neighbours(
    tree: cKDTree, points: np.ndarray, k: int, radius: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours within ``radius`` (excluding the point itself and duplicates).

    Missing neighbours get index ``len(points)`` (a padding row) and distance inf.
    """
    bound = np.inf if radius is None else radius
    k = min(k + 1, len(points))
    dist, index = tree.query(points, k=k, distance_upper_bound=bound)
    dist, index = dist.reshape(len(points), -1), index.reshape(len(points), -1)
    invalid = ~(dist > _EPS) | ~np.isfinite(dist)
    dist[invalid] = np.inf
    index[invalid] = len(points)
    return dist, index


def _pair_features(
    p: np.ndarray, n: np.ndarray, q: np.ndarray, m: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Darboux-frame angles (theta, alpha, phi) of point pairs; PCL's source choice."""
    delta = q - p
    unit = delta / np.maximum(np.linalg.norm(delta, axis=-1, keepdims=True), _EPS)
    cos_src = (n * unit).sum(-1)
    cos_tgt = (m * unit).sum(-1)
    # The source is the end whose normal is more aligned with the connecting line.
    # Near-ties (parallel normals) flip phi's sign, so they must not hinge on rounding:
    # without the margin, permuting the input changed 12 % of a noisy sphere's features.
    swap = (np.abs(cos_src) < np.abs(cos_tgt) - _TIE)[..., None]
    u = np.where(swap, m, n)
    other = np.where(swap, n, m)
    unit = np.where(swap, -unit, unit)
    phi = np.where(swap[..., 0], -cos_tgt, cos_src)
    v = np.cross(unit, u)
    v /= np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)
    w = np.cross(u, v)
    theta = np.arctan2((w * other).sum(-1), (u * other).sum(-1))
    alpha = (v * other).sum(-1)
    return theta, alpha, phi


def _bin(values: np.ndarray, low: float, high: float) -> np.ndarray:
    index = np.floor(BINS * (values - low) / (high - low)).astype(np.int64)
    return np.clip(index, 0, BINS - 1)


def _spfh_chunk(
    pts: np.ndarray, normals: np.ndarray, rows: np.ndarray, index: np.ndarray
) -> np.ndarray:
    """SPFH of the points ``rows`` given their padded neighbour indices."""
    valid = index < len(pts) - 1  # the last row of pts/normals is padding
    theta, alpha, phi = _pair_features(
        pts[rows][:, None], normals[rows][:, None], pts[index], normals[index]
    )
    count = len(rows)
    base = (np.arange(count) * FPFH_DIM)[:, None]
    hist = np.zeros(count * FPFH_DIM)
    for offset, bins in enumerate(
        (_bin(theta, -np.pi, np.pi), _bin(alpha, -1, 1), _bin(phi, -1, 1))
    ):
        flat = (base + offset * BINS + bins)[valid]
        hist += np.bincount(flat, minlength=count * FPFH_DIM)
    hist = hist.reshape(count, FPFH_DIM)
    return hist * (100.0 / np.maximum(valid.sum(axis=1), 1))[:, None]


def _normalise_blocks(hist: np.ndarray) -> np.ndarray:
    """Scale each 11-bin sub-histogram to sum 100 (zero rows stay zero)."""
    blocks = hist.reshape(len(hist), 3, BINS)
    total = blocks.sum(axis=2, keepdims=True)
    return (blocks * (100.0 / np.where(total > 0, total, 1.0))).reshape(len(hist), FPFH_DIM)


def fpfh(
    points: np.ndarray,
    normals: np.ndarray | None = None,
    radius: float | None = None,
    k: int = 32,
    normal_k: int = 16,
    chunk: int = CHUNK,
) -> np.ndarray:
    """(N, 33) float32 FPFH descriptors of an (N, 3) cloud.

    Neighbours are the ``k`` nearest, limited to ``radius`` when one is given.
    Normals are estimated (``normal_k``-NN PCA) when not supplied.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 2:
        raise InputError(f"fpfh needs an (N >= 2, 3) array, got shape {pts.shape}")
    nrm = (
        estimate_normals(pts, normal_k, chunk)
        if normals is None
        else np.asarray(normals, np.float64)
    )
    if nrm.shape != pts.shape:
        raise InputError(f"normals shape {nrm.shape} does not match points {pts.shape}")
    tree = cKDTree(pts)
    dist, index = _neighbours(tree, pts, k, radius)
    pad_pts = np.vstack([pts, np.zeros((1, 3))])
    pad_nrm = np.vstack([nrm, np.zeros((1, 3))])
    spfh = np.zeros((len(pts) + 1, FPFH_DIM))
    for start in range(0, len(pts), chunk):
        rows = np.arange(start, min(start + chunk, len(pts)))
        spfh[rows] = _spfh_chunk(pad_pts, pad_nrm, rows, index[rows])
    weight = np.where(np.isfinite(dist), 1.0 / np.where(np.isfinite(dist), dist, 1.0), 0.0)
    out = np.empty((len(pts), FPFH_DIM), dtype=np.float32)
    for start in range(0, len(pts), chunk):
        part = slice(start, min(start + chunk, len(pts)))  # spfh has a padding row
        neighbour_sum = np.einsum("nk,nkd->nd", weight[part], spfh[index[part]])
        out[part] = spfh[part] + _normalise_blocks(neighbour_sum)
    return out
