"""Scoring placed scans together: render all their views in one batch, run the network,
map the errors back to the points, calibrate, and split the result per scan."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from torch.profiler import record_function

from mvr3d.geometry import voxel_downsample, voxel_thin
from mvr3d.models.components.location_stats import LocationStats
from mvr3d.models.components.scoring import (
    discount_sparse,
    fill_unseen_batch,
    fuse_deviation,
    point_scores,
    robust_standardise,
    smooth_knn,
    upsample_maps,
)
from mvr3d.models.mvr.config import MVRConfig
from mvr3d.models.mvr.placement import Placed
from mvr3d.render import render_batch, to_rgb
from mvr3d.scans import ScanScore, object_score

Each = Callable[[Callable, list[tuple]], list]


MIN_GRID_POINTS = 100


def reduce_points(points: np.ndarray, max_points: int | None, voxel: float | None = None,
                  voxel_point: str = "mean") -> tuple[np.ndarray, np.ndarray | None]:
    """Voxel-downsample on a ``voxel`` grid (each voxel drawn as its points' mean, or as one of
    them: ``voxel_point`` "random"), then to roughly ``max_points``; also each point's voxel
    index (None when nothing was reduced). A grid that would leave fewer than MIN_GRID_POINTS
    points (a tiny scan) is not applied."""
    downsample = voxel_thin if voxel_point == "random" else voxel_downsample
    sampled, inverse = (None, None) if voxel is None else downsample(points, voxel)
    if sampled is not None and len(sampled) >= MIN_GRID_POINTS:
        further, again = reduce_points(sampled.astype(points.dtype), max_points)
        return further, inverse if again is None else again[inverse]
    if max_points is None or len(points) <= max_points:
        return points, None
    extent = np.ptp(points, axis=0).astype(np.float64)
    area = 2 * (extent[0] * extent[1] + extent[1] * extent[2] + extent[0] * extent[2])
    voxel = np.sqrt(area / 2 / max_points)  # scans are surfaces: count ~ area / voxel^2
    for _ in range(4):
        sampled, inverse = voxel_downsample(points, voxel)
        if len(sampled) <= max_points:
            break
        voxel *= np.sqrt(len(sampled) / max_points) * 1.05
    return sampled.astype(points.dtype), inverse


def expand(result: ScanScore, inverse: np.ndarray | None) -> ScanScore:
    """Give every original point the score of the voxel it fell into."""
    if inverse is None:
        return result
    return ScanScore(result.point_scores[inverse], result.object_score, result.coverage)


def raw_scores(placed: list[Placed], poses: torch.Tensor, config: MVRConfig, radius: float,
               view_maps: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
               each: Each, compile: bool = False) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """Reconstruction error of every point of every placed scan (concatenated), the share
    of each scan the views see, and the point counts; ``each`` runs the per-scan smoothing
    (on a few threads on a GPU)."""
    points = [p.cloud for p in placed]
    drawn = [p.rendered for p in placed]
    centres = [p.centre for p in placed]
    with record_function("mvr3d.render"):
        batch = render_batch(drawn, poses, config.render, centres=centres, radius=radius, compile=compile)
        references = None
        if config.reference == "template":
            cuts = [p.reference for p in placed]
            references = to_rgb(render_batch(cuts, poses, config.render, centres=centres, radius=radius,
                                             compile=compile).images)
    with record_function("mvr3d.network"):
        token_maps = view_maps(to_rgb(batch.images), references)
    with record_function("mvr3d.point_scores"):
        maps = upsample_maps(token_maps, config.render.image_size, config.map_blur_sigma)
        scores, seen = point_scores(maps, batch)
    with record_function("mvr3d.complete"):
        cloud = batch.cloud_of_point()
        finished = fill_unseen_batch(torch.cat(drawn), scores, seen, cloud, len(batch))
        if any(p.fill is not None for p in placed):  # the template's fill is drawn, not scored
            own = torch.cat([torch.arange(len(p.cloud), device=seen.device) + start
                             for p, start in zip(placed, np.cumsum((0, *batch.counts[:-1])), strict=True)])
            finished, seen, cloud = finished[own], seen[own], cloud[own]
            batch_counts = tuple(len(p.cloud) for p in placed)
        else:
            batch_counts = batch.counts
        if config.smoothing_k > 1:
            pieces = zip(points, finished.split(batch_counts), strict=True)
            finished = torch.cat(each(partial(smooth_knn, k=config.smoothing_k), list(pieces)))
        if config.sparse_discount > 0:
            pieces = zip(points, finished.split(batch_counts), strict=True)
            finished = torch.cat(each(partial(discount_sparse, power=config.sparse_discount), list(pieces)))
        coverage = torch.zeros(len(batch), device=seen.device).index_add_(0, cloud, seen.float())
        coverage /= torch.tensor(batch_counts, device=seen.device)
    return finished, coverage, batch_counts


def against_twins(scores: torch.Tensor, coverage: torch.Tensor, counts: tuple[int, ...], placed: list[Placed],
                  group: int, config: MVRConfig) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...], list[float]]:
    """Each scan's errors set against its normal twins' (``placed`` and the scores hold each scan
    followed by its ``group - 1`` twins, point for point alike), by ``config.twin_rule`` (see
    MVRConfig.null_twins). Returns the scans' point scores, coverage, point counts and what
    each scan's object score is to be lowered by (the twins' object score with "top", else 0)."""
    pieces = scores.split(list(counts))
    out, offsets = [], []
    for first in range(0, len(pieces), group):
        own, twins = pieces[first], pieces[first + 1:first + group]
        offset = 0.0
        if config.twin_rule == "top":
            offset = float(np.mean([object_score(t.float().cpu().numpy(), config.object_score, config.top_fraction)
                                    for t in twins]))
        elif config.twin_rule == "local":
            own = own - smooth_knn(placed[first].cloud, torch.stack(twins).mean(dim=0), config.twin_blur)
        else:
            level = torch.stack(twins).mean(dim=0).median()
            own = own - level if config.twin_rule == "shift" else own / level.clamp_min(torch.finfo(own.dtype).tiny)
        out.append(own)
        offsets.append(offset)
    return torch.cat(out), coverage[::group], counts[::group], offsets


def final_scores(scores: torch.Tensor, placed: list[Placed], counts: tuple[int, ...], weight: float,
                 score_stats: LocationStats | None, deviation_stats: LocationStats | None,
                 standardise: bool = False) -> torch.Tensor:
    """Calibrated per template location when fitted so (plus the ``weight``-ed calibrated
    deviation), else the raw error (plus the deviation, both as robust z-scores per scan),
    or with ``standardise`` the error as robust z-scores per scan."""
    if score_stats is None:
        if weight <= 0:
            return robust_standardise(scores, counts) if standardise else scores
        deviation = torch.cat([p.deviation for p in placed]).to(scores.device)
        return fuse_deviation(scores, deviation, counts, weight)
    out = []
    for piece, p in zip(scores.split(list(counts)), placed, strict=True):
        z = score_stats.standardise(p.template, p.nearest, piece)
        if weight > 0:
            z = z + weight * deviation_stats.standardise(p.template, p.nearest, p.deviation).to(z.device)
        out.append(z)
    return torch.cat(out)


def results(host: np.ndarray, counts: tuple[int, ...], config: MVRConfig,
            offsets: list[float] | None = None) -> list[ScanScore]:
    """Concatenated point scores followed by one coverage per scan -> a result per scan, each
    object score lowered by its ``offsets`` entry (see :func:`against_twins`)."""
    scans = len(counts)
    per_scan = np.split(host[:-scans], np.cumsum(counts)[:-1])
    offsets = offsets or [0.0] * scans
    return [
        ScanScore(scores, object_score(scores, config.object_score, config.top_fraction) - offset, float(coverage))
        for scores, coverage, offset in zip(per_scan, host[-scans:], offsets, strict=True)
    ]
