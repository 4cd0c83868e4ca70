"""k-nearest-neighbour look-ups on whichever device the points live on."""

from __future__ import annotations

import torch
from scipy.spatial import cKDTree
from torch import Tensor

# Distances held at once by the brute-force search.
DEFAULT_MAX_ELEMENTS = 2**27
# Below this many queries a k-d tree answers faster on one thread than by starting workers.
PARALLEL_QUERIES = 20_000


class NeighbourIndex:
    """Nearest points of a fixed reference cloud, queried many times.

    On the CPU a k-d tree (built once); on an accelerator an exact chunked brute-force
    search, which there beats a tree and keeps the points on the device.
    """

    def __init__(
        self, reference: Tensor, brute_force: bool | None = None, max_elements: int = DEFAULT_MAX_ELEMENTS
    ) -> None:
        self.reference = reference
        self.max_elements = max_elements
        if brute_force is None:
            brute_force = reference.device.type != "cpu"
        self._tree = None if brute_force else cKDTree(reference.double().numpy())
        if brute_force:
            # Centred float32 (fast matrix units) only picks the neighbours; distances are
            # then recomputed exactly from the original coordinates.
            self._origin = reference.double().mean(dim=0)
            self._centred = (reference.double() - self._origin).float()

    def query(self, query: Tensor, k: int = 1) -> tuple[Tensor, Tensor]:
        """Distances and indices, both (Q, k), nearest first; k is capped at the reference size."""
        k = min(k, self.reference.shape[0])
        if query.shape[0] == 0 or k == 0:
            empty = torch.zeros((query.shape[0], k), device=query.device)
            return empty, empty.long()
        if self._tree is not None:
            workers = -1 if query.shape[0] >= PARALLEL_QUERIES else 1
            distances, index = self._tree.query(query.detach().double().numpy(), k=k, workers=workers)
            shape = (query.shape[0], k)
            return torch.from_numpy(distances.reshape(shape)), torch.from_numpy(index.reshape(shape)).long()
        return self._brute_force(query, k)

    def _brute_force(self, query: Tensor, k: int) -> tuple[Tensor, Tensor]:
        rows = max(1, self.max_elements // self.reference.shape[0])
        indices = []
        for chunk in query.split(rows):
            squared = torch.cdist((chunk.double() - self._origin).float(), self._centred)
            if k == 1:
                indices.append(squared.argmin(dim=1, keepdim=True))
            else:
                indices.append(squared.topk(k, dim=1, largest=False, sorted=True).indices)
        index = torch.cat(indices)
        distances = (self.reference[index].double() - query.double()[:, None]).norm(dim=2)
        if k > 1:  # float32 may have swapped near-ties; keep the exact order
            distances, order = distances.sort(dim=1, stable=True)
            index = index.gather(1, order)
        return distances, index


def nearest_neighbours(reference: Tensor, query: Tensor, k: int) -> Tensor:
    """(Q, k) int64 indices into ``reference`` of each query point's k nearest points."""
    return NeighbourIndex(reference).query(query, k)[1]


def brute_force_neighbours(reference: Tensor, query: Tensor, k: int, max_elements: int = DEFAULT_MAX_ELEMENTS) -> Tensor:
    """Exact k-NN by distance matrices over chunks of queries, on any device."""
    return NeighbourIndex(reference, brute_force=True, max_elements=max_elements).query(query, k)[1]
