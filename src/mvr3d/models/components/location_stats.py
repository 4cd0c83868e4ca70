"""Scores calibrated per location on a part (learned at fit time).

The error a normal scan shows is not the same everywhere on a part: sharp edges, thin
walls and surfaces a scanner sees edge-on reconstruct worse than flat faces, and a
reference is worse where its templates disagree. A raw score threshold then flags the hard
places of every good part, and a scan's object score depends on which side was scanned.
A detector scores simulated normal scans at fit time; these statistics record, for every
point of a reference cloud (a template, or the fused templates), the mean and spread of
the scores normal scans produce there, and a test point is scored by how far it lies above
them (a z-score): "0" means "as normal scans look here" and one threshold fits the part.
Used by MVR's calibration (models/mvr/training.py) and the template method's
(baselines/template.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mvr3d.geometry.neighbours import NeighbourIndex

# A location's spread is floored at this share of the part's median spread: a place
# normal scans happened to score alike must not turn tiny differences into huge z-scores.
SPREAD_FLOOR = 0.25


class LocationStats:
    """Running sums of a score per template point, then smoothed mean and spread."""

    def __init__(self, templates: list[Tensor], neighbours: int, spread: str = "local") -> None:
        self.templates = templates
        self.neighbours = neighbours
        self.spread = spread
        self._sums = [torch.zeros(len(t), 3, dtype=torch.float64, device=t.device) for t in templates]
        self.mean_: list[Tensor] = []
        self.spread_: list[Tensor] = []

    def add(self, template: int, nearest: Tensor, values: Tensor) -> None:
        """Record ``values`` (M,) of points whose nearest template point is ``nearest`` (M,)."""
        values = values.to(self._sums[template].device, torch.float64)
        rows = torch.stack((torch.ones_like(values), values, values.square()), dim=1)
        self._sums[template].index_add_(0, nearest.to(values.device), rows)

    def finish(self) -> LocationStats:
        """Pool each template point's sums with its nearest neighbours' and derive mean/spread."""
        self.mean_, self.spread_ = [], []
        for points, sums in zip(self.templates, self._sums, strict=True):
            index = NeighbourIndex(points).query(points, self.neighbours)[1].to(sums.device)
            pooled = sums[index].sum(dim=1)
            total = sums.sum(dim=0)
            # Locations no simulated scan reached take the statistics of the whole part.
            empty = pooled[:, 0] < 2
            pooled[empty] = total
            count = pooled[:, 0].clamp_min(1.0)
            mean = pooled[:, 1] / count
            spread = (pooled[:, 2] / count - mean.square()).clamp_min(0.0).sqrt()
            typical = spread.median().clamp_min(torch.finfo(torch.float32).tiny)
            if self.spread == "part":
                spread = typical.expand_as(spread)
            self.mean_.append(mean.float())
            self.spread_.append(spread.clamp_min(SPREAD_FLOOR * typical).float())
        return self

    def standardise(self, template: int, nearest: Tensor, values: Tensor) -> Tensor:
        """(values - mean) / spread at each point's template location."""
        mean, spread = self.mean_[template], self.spread_[template]
        nearest = nearest.to(mean.device)
        return ((values.to(mean.device).float() - mean[nearest]) / spread[nearest]).to(values.device)

    def state(self, prefix: str) -> dict[str, Tensor]:
        out = {}
        for j, (mean, spread) in enumerate(zip(self.mean_, self.spread_, strict=True)):
            out[f"{prefix}.mean.{j}"], out[f"{prefix}.spread.{j}"] = mean.cpu(), spread.cpu()
        return out

    @classmethod
    def from_state(cls, tensors: dict[str, Tensor], prefix: str, templates: list[Tensor]) -> LocationStats | None:
        """Statistics saved by :meth:`state`, or None when the checkpoint has none."""
        if f"{prefix}.mean.0" not in tensors:
            return None
        stats = cls(templates, 1)
        device = templates[0].device
        stats.mean_ = [tensors[f"{prefix}.mean.{j}"].float().to(device) for j in range(len(templates))]
        stats.spread_ = [tensors[f"{prefix}.spread.{j}"].float().to(device) for j in range(len(templates))]
        return stats
