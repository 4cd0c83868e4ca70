"""From per-view anomaly maps to one score per point and one per object (MVR II-E)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mvr3d.geometry.neighbours import NeighbourIndex, nearest_neighbours
from mvr3d.render.camera import spacing_from_extent
from mvr3d.render.zbuffer import RenderedBatch
from mvr3d.scans import object_score  # noqa: F401  (re-exported: part of the scoring API)
from mvr3d.utils.kernels import gaussian_kernel


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (V, H, W) maps, replicate-padded; sigma in pixels."""
    if sigma <= 0:
        return maps
    radius = max(1, int(round(4 * sigma)))
    kernel = gaussian_kernel(sigma, radius, maps.device, maps.dtype)
    out = maps.unsqueeze(1)
    out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return out.squeeze(1)


def upsample_maps(token_maps: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """(V, gh, gw) token-grid distances -> (V, size, size) smoothed pixel maps."""
    maps = F.interpolate(token_maps.unsqueeze(1).float(), size=(size, size), mode="bilinear", align_corners=False)
    return gaussian_blur(maps.squeeze(1), sigma)


IMAGE_ELEMENTS_PER_CHUNK = 2**26  # upsampled map pixels held at once
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


def robust_standardise(values: Tensor, counts: Sequence[int], floors: Tensor | None = None) -> Tensor:
    """Each cloud's piece of ``values`` as (x - median) / (1.4826 MAD): robust z-scores.

    Defects cover a few percent of a scan, so median and MAD describe its normal surface
    and the result says how far each point stands out from it. ``floors`` (one per cloud)
    are spreads the values are known to have at least, e.g. their noise: each cloud's
    spread is then sqrt(spread^2 + floor^2).
    """
    pieces = []
    for cloud, piece in enumerate(values.float().split(list(counts))):
        median = piece.median()
        spread = (piece - median).abs().median() * MAD_TO_SIGMA
        if floors is not None:
            spread = torch.hypot(spread, floors[cloud].to(spread))
        pieces.append((piece - median) / spread.clamp_min(torch.finfo(torch.float32).tiny ** 0.5))
    return torch.cat(pieces)


def fuse_deviation(scores: Tensor, deviation: Tensor, counts: Sequence[int], weight: float) -> Tensor:
    """MVR point scores plus ``weight`` x the distance to the registered template, each as
    robust z-scores per scan so that neither unit dominates."""
    return robust_standardise(scores, counts) + weight * robust_standardise(deviation, counts)


def point_scores(
    maps: Tensor, batch: RenderedBatch, max_elements: int = 2**24
) -> tuple[Tensor, Tensor]:
    """Per-point mean of the maps over the views that see the point, and the seen mask.

    ``maps`` are (clouds * V, h, w), cloud-major like ``batch.images``; the results are
    (sum N,) in the batch's point order. Each map is upsampled (bilinear) to the render
    resolution and read at every point's pixel, which is bilinear sampling at the pixel
    centre, for all clouds in a few large operations. Chunked over views and points, so
    memory stays bounded however many points there are.
    """
    clouds, views, size = len(batch), batch.num_views, batch.render_size
    per_view = maps.view(clouds, views, *maps.shape[1:])
    cloud = batch.cloud_of_point()
    total = torch.zeros(cloud.shape[0], dtype=maps.dtype, device=maps.device)
    count = torch.zeros_like(total)
    step = max(1, IMAGE_ELEMENTS_PER_CHUNK // (clouds * size * size))
    for first in range(0, views, step):
        block = per_view[:, first : first + step]
        k = block.shape[1]
        upsampled = F.interpolate(block.flatten(0, 1).unsqueeze(1), size=(size, size), mode="bilinear", align_corners=False)
        upsampled = upsampled.view(-1)
        offsets = torch.arange(k, device=maps.device)[:, None]
        rows = max(1, max_elements // k)
        for start in range(0, cloud.shape[0], rows):
            part = slice(start, start + rows)
            image = offsets + cloud[None, part] * k  # the image (cloud, view) of each entry
            flat = image.mul_(size * size).add_(batch.pixel_index[first : first + k, part])
            weights = batch.visible[first : first + k, part].to(maps.dtype)
            total[part] += (upsampled[flat] * weights).sum(dim=0)
            count[part] += weights.sum(dim=0)
    return total / count.clamp(min=1), count > 0


def fill_unseen(points: Tensor, scores: Tensor, seen: Tensor, cell: float | None = None) -> Tensor:
    """Points no view sees take the mean score of the seen points around them.

    "Around" is the 3 x 3 x 3 block of grid cells centred on the point's cell, with cells
    two point spacings wide, doubled until the block holds a seen point. Sorting-based
    (no tree, no distance matrix), so it is as fast on a GPU as the rest of scoring.
    """
    cloud = torch.zeros(len(points), dtype=torch.long, device=points.device)
    return fill_unseen_batch(points, scores, seen, cloud, 1, None if cell is None else [cell])


def fill_unseen_batch(
    points: Tensor, scores: Tensor, seen: Tensor, cloud: Tensor, clouds: int, cells: list[float] | None = None
) -> Tensor:
    """:func:`fill_unseen` for several concatenated clouds at once (``cloud`` gives each
    point's cloud); each cloud is filled from its own seen points only, with its own grid."""
    counts = torch.zeros(clouds, 2, dtype=torch.long, device=points.device)
    counts.index_add_(0, cloud, torch.stack((torch.ones_like(cloud), seen.long()), dim=1))
    low = _segment(points, cloud, clouds, "amin")
    high = _segment(points, cloud, clouds, "amax")
    stats = torch.cat((counts.double(), (high - low).double()), dim=1).tolist()  # one transfer
    fillable = [0 < row[1] < row[0] for row in stats]
    if not any(fillable):
        return scores
    if cells is None:
        cells = [2.0 * spacing_from_extent(row[2:], int(row[0])) if row[0] else 1.0 for row in stats]
    cell = torch.tensor(cells, dtype=torch.float64, device=points.device)
    wanted = torch.tensor(fillable, device=points.device)[cloud] & ~seen
    filled, todo = scores.clone(), wanted.nonzero().squeeze(1)
    grid = _CellSums(points[seen], scores[seen], cloud[seen], low.double())
    while todo.numel():
        mean, found = grid.block_means(points[todo], cloud[todo], cell)
        filled[todo[found]] = mean[found].to(filled.dtype)
        todo, cell = todo[~found], cell * 2.0
    return filled


def _segment(values: Tensor, segment: Tensor, segments: int, reduce: str) -> Tensor:
    """Per-segment min or max of (N, 3) values."""
    out = torch.zeros(segments, values.shape[1], dtype=values.dtype, device=values.device)
    index = segment[:, None].expand_as(values)
    return out.scatter_reduce_(0, index, values, reduce, include_self=False)


BLOCK_ELEMENTS = 2**24  # (query, neighbour) pairs per lookup chunk


class _CellSums:
    """Seen points' score sums and counts per (cloud, grid cell), looked up in 3 x 3 x 3 blocks."""

    OFFSETS = torch.tensor([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])

    def __init__(self, points: Tensor, values: Tensor, cloud: Tensor, origins: Tensor) -> None:
        self.points, self.values, self.cloud, self.origins = points, values.double(), cloud, origins

    def block_means(self, query: Tensor, query_cloud: Tensor, cell: Tensor) -> tuple[Tensor, Tensor]:
        """``cell`` holds each cloud's cell size."""
        ref_cells = self._cells(self.points, self.cloud, cell)
        # One cell of margin each side keeps every neighbour's coordinates non-negative.
        query_cells = self._cells(query, query_cloud, cell).clamp_min(0)
        dims = torch.maximum(ref_cells.amax(dim=0), query_cells.amax(dim=0)) + 2
        keys, inverse = torch.unique(_cell_key(self.cloud, ref_cells, dims), return_inverse=True)
        sums = torch.zeros(len(keys), dtype=torch.float64, device=keys.device).index_add_(0, inverse, self.values)
        counts = torch.bincount(inverse, minlength=len(keys)).double()
        total = torch.zeros(len(query), dtype=torch.float64, device=keys.device)
        count = torch.zeros_like(total)
        offsets = self.OFFSETS.to(keys.device)
        # All 27 neighbours of a chunk of queries at once: few, large kernels.
        rows = max(1, BLOCK_ELEMENTS // len(offsets))
        for start in range(0, len(query), rows):
            block = query_cells[start : start + rows, None, :] + offsets  # (q, 27, 3)
            owner = query_cloud[start : start + rows, None].expand(-1, len(offsets)).reshape(-1)
            wanted = _cell_key(owner, block.view(-1, 3), dims).view(len(block), -1)
            slot = torch.searchsorted(keys, wanted).clamp_max_(len(keys) - 1)
            hit = keys[slot] == wanted
            total[start : start + rows] = torch.where(hit, sums[slot], 0.0).sum(dim=1)
            count[start : start + rows] = torch.where(hit, counts[slot], 0.0).sum(dim=1)
        return total / count.clamp_min(1.0), count > 0

    def _cells(self, points: Tensor, cloud: Tensor, cell: Tensor) -> Tensor:
        scale = cell[cloud][:, None]
        return ((points.double() - self.origins[cloud]) / scale).floor().long() + 1


def _cell_key(cloud: Tensor, cells: Tensor, dims: Tensor) -> Tensor:
    return ((cloud * dims[0] + cells[:, 0]) * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]


# Local spacing is the distance to this many nearest other points: enough to average out
# the scanner's jitter, few enough to follow a grazing-angle strip.
SPACING_NEIGHBOURS = 16


def discount_sparse(points: Tensor, scores: Tensor, power: float) -> Tensor:
    """Scores times min(1, median spacing / local spacing) ** ``power``.

    A scanner samples surfaces it sees at a grazing angle sparsely, and sparse points draw
    views that differ from any reference however normal the surface: their errors are
    the least reliable. Denser-than-median places keep their scores as they are."""
    if power <= 0 or len(points) <= SPACING_NEIGHBOURS:
        return scores
    spacing = NeighbourIndex(points.double()).query(points.double(), SPACING_NEIGHBOURS + 1)[0][:, -1]
    ratio = (spacing.median() / spacing.clamp_min(torch.finfo(torch.float64).tiny)).clamp_max(1.0)
    return scores * ratio.pow(power).to(scores.device, scores.dtype)


def smooth_knn(points: Tensor, scores: Tensor, k: int) -> Tensor:
    """Mean of each point's score over its k nearest neighbours (itself included)."""
    if k <= 1:
        return scores
    index = nearest_neighbours(points, points, min(k, len(points)))
    return scores[index.to(scores.device)].mean(dim=1)
