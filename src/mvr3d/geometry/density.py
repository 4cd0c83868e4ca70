"""Point density on a scanned surface, and thinning a scan to a set surface spacing.

A scanner's density follows its distance, resolution and angle of incidence, so the same
part comes as 40 k points in one scan and 120 k in the next. A smoothing that averages a
fixed number of neighbours then spans three times the surface on the sparse scan as on
the dense one, and the dense scan's scores keep more of the small-scale misfit between
scan and template: good scans' object scores followed their point count. Thinning every
scan to one surface spacing before choosing neighbourhoods makes the averaged area the
same whatever the scanner's density.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from mvr3d.geometry.joined import cloud_numbers
from mvr3d.geometry.neighbours import NeighbourIndex

# Neighbours (the point itself included) whose spread gives a point's local density.
DENSITY_NEIGHBOURS = 16
# Points whose neighbourhoods are gathered at once (bounds the memory of a batch of scans).
CHUNK = 2**18

_MIXERS = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93)


def point_hash(points: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N,) uint64 hash of each point's coordinates: pseudo-random, yet the same for a point
    whatever order its scan lists the points in."""
    count = len(points)
    bits = np.ascontiguousarray(points, dtype=np.float64).view(np.uint64).reshape(count, 3)
    mixed = np.full(count, seed, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # wraps, as meant
    for axis, odd in enumerate(_MIXERS):
        mixed = mixed ^ (bits[:, axis] * np.uint64(odd))
        mixed = mixed ^ (mixed >> np.uint64(31))
    return mixed


def point_uniforms(points: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N,) numbers in [0, 1) from :func:`point_hash`: a uniform draw per point."""
    return (point_hash(points, seed) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def local_areas(clouds: Sequence[Tensor], normals: Sequence[Tensor]) -> list[Tensor]:
    """Surface area per point around each point of each cloud (float64): the disc reaching
    its ``DENSITY_NEIGHBOURS``-th nearest point, shared by the points inside it, measured in
    the plane of the point's unit ``normal``. The points should lie on the surface (moved
    onto a reference's planes): neighbours are found in 3D, and noise along the normal as
    large as the spacing inflates the areas by a fifth. Every cloud needs
    ``DENSITY_NEIGHBOURS`` points or more."""
    sizes = [len(cloud) for cloud in clouds]
    if not sizes:
        return []
    if min(sizes) < DENSITY_NEIGHBOURS:
        raise ValueError(f"a density needs clouds of {DENSITY_NEIGHBOURS} points or more, got {min(sizes)}")
    joined = torch.cat([cloud.double() for cloud in clouds])
    all_normals = torch.cat([normal.double() for normal in normals]).to(joined.device)
    groups = cloud_numbers(sizes, joined.device)
    index = NeighbourIndex(joined, grid=True, sizes=sizes)
    reach = torch.empty(len(joined), dtype=torch.float64, device=joined.device)
    for start in range(0, len(joined), CHUNK):
        rows = slice(start, start + CHUNK)
        found = index.query(joined[rows], DENSITY_NEIGHBOURS, groups=groups[rows])[1].to(joined.device)
        offsets = joined[found] - joined[rows, None]
        normal = all_normals[rows, None]
        reach[rows] = (offsets - (offsets * normal).sum(dim=2, keepdim=True) * normal).norm(dim=2).amax(dim=1)
    return list((torch.pi * reach.square() / (DENSITY_NEIGHBOURS - 1)).split(sizes))


def thinned_to_spacing(clouds: Sequence[Tensor], normals: Sequence[Tensor], spacing: float,
                       seed: int = 0) -> list[Tensor | None]:
    """Indices of the points of each cloud kept so that about one point remains per
    ``spacing``^2 of surface: each point is kept with probability (its local area per point)
    / spacing^2, capped at 1, by a draw fixed by its coordinates (:func:`point_uniforms`).
    Sparser parts keep every point; None for a cloud that keeps them all (and for one of
    fewer than ``DENSITY_NEIGHBOURS`` points)."""
    if spacing <= 0:
        return [None] * len(clouds)
    dense = [i for i, cloud in enumerate(clouds) if len(cloud) >= DENSITY_NEIGHBOURS]
    areas = dict(zip(dense, local_areas([clouds[i] for i in dense], [normals[i] for i in dense]), strict=True))
    kept: list[Tensor | None] = [None] * len(clouds)
    for i in dense:
        draws = torch.from_numpy(point_uniforms(clouds[i].detach().cpu().numpy(), seed)).to(areas[i].device)
        chosen = torch.nonzero(draws < areas[i] / spacing**2).flatten()
        kept[i] = None if len(chosen) == len(clouds[i]) else chosen.to(clouds[i].device)
    return kept
