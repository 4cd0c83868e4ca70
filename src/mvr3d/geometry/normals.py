"""Surface normals of unorganised point clouds by local PCA."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

CHUNK = 4096  # points per batch: bounds the (chunk, k, 3) neighbourhoods to a few MB


def estimate_normals(points: np.ndarray, k: int = 16, chunk: int = CHUNK) -> np.ndarray:
    """Unit normals by PCA of the ``k`` nearest neighbours, oriented away from the centroid.

    Orienting against the centroid keeps the sign rotation-equivariant (a fixed viewpoint
    would not); it is wrong in deep concavities and ambiguous where the surface is radial
    to the centroid, so prefer mesh face normals when a mesh is at hand.
    """
    pts = np.asarray(points, dtype=np.float64)
    k = min(max(k, 3), len(pts))
    tree = cKDTree(pts)
    normals = np.empty_like(pts)
    for start in range(0, len(pts), chunk):
        _, index = tree.query(pts[start : start + chunk], k=k)
        hood = pts[index]
        hood -= hood.mean(axis=1, keepdims=True)
        covariance = np.einsum("nki,nkj->nij", hood, hood)
        # eigh sorts eigenvalues ascending: column 0 spans the direction of least spread.
        normals[start : start + chunk] = np.linalg.eigh(covariance)[1][:, :, 0]
    inward = np.einsum("ij,ij->i", normals, pts - pts.mean(axis=0)) < 0
    normals[inward] *= -1
    return normals
