"""PatchCore memory bank (Roth et al., CVPR 2022): greedy coreset + nearest-neighbour scores."""

from __future__ import annotations

import numpy as np
import torch

from mvr3d.errors import InputError

SCORE_CHUNK = 2048  # queries per cdist call: chunk x bank floats stay ~100 MB at most


def random_projection(features: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Johnson-Lindenstrauss Gaussian projection to ``dim`` dims (identity if already small)."""
    if features.shape[1] <= dim:
        return features
    matrix = np.random.default_rng(seed).normal(size=(features.shape[1], dim)) / dim**0.5
    return features @ matrix.astype(features.dtype)


def greedy_coreset(
    features: np.ndarray, count: int, projection_dim: int = 128, seed: int = 0
) -> np.ndarray:
    """Indices of ``count`` distinct rows chosen by greedy k-center selection.

    Distances are computed on a random projection (as PatchCore does) because the
    selection only needs to be approximately farthest-first. The loop is numpy on
    purpose: thousands of tiny threaded ops crawl when other processes hold the cores.
    """
    data = np.asarray(features, dtype=np.float32)
    if data.ndim != 2 or len(data) == 0:
        raise InputError(f"coreset needs a non-empty (N, D) array, got shape {data.shape}")
    count = int(min(max(count, 1), len(data)))
    data = np.ascontiguousarray(random_projection(data, projection_dim, seed))
    sq_norms = np.einsum("ij,ij->i", data, data)
    selected = np.empty(count, dtype=np.int64)
    selected[0] = np.random.default_rng(seed).integers(len(data))
    min_dist = np.full(len(data), np.inf, dtype=np.float32)
    for i in range(count):
        if i:
            selected[i] = np.argmax(min_dist)
        centre = data[selected[i]]
        # |x - c|^2 by expansion. einsum, not BLAS: a threaded BLAS mat-vec took 8 ms
        # instead of 0.1 ms per step when other processes held the cores.
        dist = sq_norms - 2 * np.einsum("ij,j->i", data, centre) + sq_norms[selected[i]]
        np.minimum(min_dist, dist, out=min_dist)
        min_dist[selected[i]] = -1.0  # chosen rows never win the argmax again: k distinct picks
    return selected


def nearest_distances(
    queries: torch.Tensor, bank: torch.Tensor, chunk: int = SCORE_CHUNK
) -> torch.Tensor:
    """Euclidean distance from each query row to its nearest bank row."""
    # The matmul form of cdist loses precision for near-duplicates (exactly the normal
    # points), making scores depend on the batch layout; the direct form is exact.
    mode = "donot_use_mm_for_euclid_dist"
    parts = [
        torch.cdist(queries[s : s + chunk], bank, compute_mode=mode).min(dim=1).values
        for s in range(0, len(queries), chunk)
    ]
    return torch.cat(parts) if parts else torch.empty(0)


class PatchCoreMemory:
    """Memory bank of normal features; a query's score is its distance to the bank."""

    def __init__(
        self,
        coreset_ratio: float = 0.1,
        max_size: int | None = None,
        projection_dim: int = 128,
        seed: int = 0,
    ) -> None:
        if not 0 < coreset_ratio <= 1:
            raise InputError(f"coreset_ratio must be in (0, 1], got {coreset_ratio}")
        self.coreset_ratio = coreset_ratio
        self.max_size = max_size
        self.projection_dim = projection_dim
        self.seed = seed
        self.bank_: torch.Tensor | None = None

    def fit(self, features: np.ndarray) -> PatchCoreMemory:
        data = np.asarray(features, dtype=np.float32)
        if data.ndim != 2 or len(data) == 0:
            raise InputError(f"memory bank needs a non-empty (N, D) array, got shape {data.shape}")
        count = max(1, int(round(len(data) * self.coreset_ratio)))
        if self.max_size is not None:
            count = min(count, self.max_size)
        if count < len(data):
            data = data[greedy_coreset(data, count, self.projection_dim, self.seed)]
        self.bank_ = torch.from_numpy(np.ascontiguousarray(data))
        return self

    def score(self, features: np.ndarray) -> np.ndarray:
        """(M,) float32 nearest-neighbour distances of (M, D) query features."""
        if self.bank_ is None:
            raise InputError("PatchCoreMemory.score called before fit")
        queries = torch.as_tensor(np.asarray(features), dtype=torch.float32)
        if queries.ndim != 2 or queries.shape[1] != self.bank_.shape[1]:
            raise InputError(
                f"expected (M, {self.bank_.shape[1]}) features, got {tuple(queries.shape)}"
            )
        return nearest_distances(queries, self.bank_).numpy().astype(np.float32)
