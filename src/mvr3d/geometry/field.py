"""A closest-point field: the nearest reference point of every cell of a grid, looked up
instead of searched.

ICP's pose search moves hundreds of candidate poses of a scan at once and needs each
moved point's nearest template point at every iteration. Searching costs points x
template (brute force) or a tree walk per point; a field built once per template answers
with one gather. The answer is the reference point nearest the query's cell centre, so
it can miss the true nearest point by up to a cell's diagonal: good enough to rank and
improve coarse poses, which exact ICP then refines.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mvr3d.geometry.neighbours import NeighbourIndex

# Most cells a field may hold (int32 each); the cell grows to stay below it.
MAX_CELLS = 2**21
# Cell centres whose nearest reference point is searched at once while building.
BUILD_CHUNK = 2**18


class ClosestPointField:
    """Nearest-point look-up table over the reference's bounding box plus ``margin``.

    Queries outside the box take the nearest border cell's point, which still pulls a
    stray pose back towards the part. ``query`` has :class:`NeighbourIndex`'s signature
    for k = 1, so ICP takes either.
    """

    def __init__(self, reference: Tensor, cell: float, margin: float, max_cells: int = MAX_CELLS) -> None:
        if not cell > 0:
            raise ValueError(f"cell must be positive, got {cell}")
        self.reference = reference
        self.low = reference.min(dim=0).values - margin
        extent = reference.max(dim=0).values + margin - self.low
        cells = math.prod(math.ceil(float(e) / cell) for e in extent)
        if cells > max_cells:
            cell *= (cells / max_cells) ** (1 / 3)
        self.cell = cell
        self.dims = torch.ceil(extent / cell).long().clamp_min(1)
        self.table = self._nearest_to_centres(NeighbourIndex(reference))

    def _nearest_to_centres(self, index: NeighbourIndex) -> Tensor:
        total = int(self.dims.prod())
        device = self.reference.device
        table = torch.empty(total, dtype=torch.int32, device=device)
        strides = torch.tensor([int(self.dims[1] * self.dims[2]), int(self.dims[2]), 1], device=device)
        for start in range(0, total, BUILD_CHUNK):
            flat = torch.arange(start, min(start + BUILD_CHUNK, total), device=device)
            cells = (flat[:, None] // strides) % self.dims
            centres = self.low + (cells.to(self.reference.dtype) + 0.5) * self.cell
            nearest = index.query(centres)[1][:, 0]
            table[start : start + len(flat)] = nearest.to(device, torch.int32)
        return table

    def query(self, query: Tensor, k: int = 1) -> tuple[Tensor, Tensor]:
        """(Q, 1) distances (exact, to the looked-up point) and reference indices."""
        if k != 1:
            raise ValueError("a closest-point field answers single-neighbour queries only")
        query = query.to(self.reference.device, self.reference.dtype)
        cells = torch.floor((query - self.low) / self.cell).long()
        cells = cells.clamp_min(0).minimum(self.dims - 1)
        keys = (cells[:, 0] * self.dims[1] + cells[:, 1]) * self.dims[2] + cells[:, 2]
        index = self.table[keys].long()
        distances = (self.reference[index] - query).norm(dim=1)
        return distances[:, None], index[:, None]
