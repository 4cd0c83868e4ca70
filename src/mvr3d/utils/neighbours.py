"""k-nearest-neighbour look-ups on whichever device the points live on."""

from __future__ import annotations

import torch
from scipy.spatial import cKDTree
from torch import Tensor

# Distances held at once by the brute-force search (float32: 4 bytes each).
DEFAULT_MAX_ELEMENTS = 2**27


def nearest_neighbours(reference: Tensor, query: Tensor, k: int, max_elements: int = DEFAULT_MAX_ELEMENTS) -> Tensor:
    """(Q, k) int64 indices into ``reference`` of each query point's k nearest points.

    On the CPU a k-d tree; on an accelerator an exact chunked brute-force search, which
    there is faster than a tree and keeps the points on the device.
    """
    k = min(k, reference.shape[0])
    if query.shape[0] == 0 or k == 0:
        return torch.zeros((query.shape[0], k), dtype=torch.int64, device=query.device)
    if query.device.type == "cpu":
        _, index = cKDTree(reference.double().numpy()).query(query.double().numpy(), k=k, workers=-1)
        return torch.from_numpy(index.reshape(query.shape[0], k)).long()
    return brute_force_neighbours(reference, query, k, max_elements)


def brute_force_neighbours(reference: Tensor, query: Tensor, k: int, max_elements: int = DEFAULT_MAX_ELEMENTS) -> Tensor:
    """Exact k-NN by distance matrices over chunks of queries (any device)."""
    # Centring in float64 first keeps float32 distances exact enough far from the origin.
    origin = reference.double().mean(dim=0)
    ref = (reference.double() - origin).float()
    rows = max(1, max_elements // reference.shape[0])
    parts = []
    for chunk in query.split(rows):
        distances = torch.cdist((chunk.double() - origin).float(), ref)
        parts.append(distances.topk(k, dim=1, largest=False, sorted=True).indices)
    return torch.cat(parts)
