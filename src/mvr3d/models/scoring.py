"""From per-view anomaly maps to one score per point and one per object (MVR II-E)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mvr3d.scans import object_score  # noqa: F401  (re-exported: part of the scoring API)
from mvr3d.utils.neighbours import nearest_neighbours


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (V, H, W) maps, replicate-padded; sigma in pixels."""
    if sigma <= 0:
        return maps
    radius = max(1, int(round(4 * sigma)))
    x = torch.arange(-radius, radius + 1, device=maps.device, dtype=maps.dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = maps.unsqueeze(1)
    out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return out.squeeze(1)


def upsample_maps(token_maps: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """(V, gh, gw) token-grid distances -> (V, size, size) smoothed pixel maps."""
    maps = F.interpolate(token_maps.unsqueeze(1).float(), size=(size, size), mode="bilinear", align_corners=False)
    return gaussian_blur(maps.squeeze(1), sigma)


def sample_at_pixels(maps: torch.Tensor, pixels: torch.Tensor, render_size: int) -> torch.Tensor:
    """Bilinear lookup of (V, h, w) maps at render-resolution (row, col) pixels -> (V, N)."""
    centre = (pixels.float() + 0.5) / render_size * 2 - 1  # pixel centres in [-1, 1]
    grid = centre.flip(-1).unsqueeze(1)  # (V, 1, N, 2) as (x, y)
    values = F.grid_sample(maps.unsqueeze(1), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return values[:, 0, 0, :]


def average_visible(values: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over the views where each point is visible (eqs. 9-10); and the seen mask."""
    weights = visible.to(values.dtype)
    counts = weights.sum(dim=0)
    scores = (values * weights).sum(dim=0) / counts.clamp(min=1)
    return scores, counts > 0


def fill_unseen(points: Tensor, scores: Tensor, seen: Tensor, k: int = 3) -> Tensor:
    """Points no view sees take the mean score of their nearest seen neighbours."""
    seen_count = int(seen.sum())
    if seen_count in (0, len(seen)):
        return scores
    index = nearest_neighbours(points[seen], points[~seen], min(k, seen_count))
    filled = scores.clone()
    filled[~seen] = scores[seen][index.to(scores.device)].mean(dim=1)
    return filled


def smooth_knn(points: Tensor, scores: Tensor, k: int) -> Tensor:
    """Mean of each point's score over its k nearest neighbours (itself included)."""
    if k <= 1:
        return scores
    index = nearest_neighbours(points, points, min(k, len(points)))
    return scores[index.to(scores.device)].mean(dim=1)
