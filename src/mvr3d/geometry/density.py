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
from mvr3d.geometry.neighbours import NeighbourIndex, centre_neighbourhoods

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


def local_areas(clouds: Sequence[Tensor], normals: Sequence[Tensor],
                centres: Sequence[Tensor | None] | None = None) -> list[Tensor]:
    """Surface area per point around each point of each cloud (float64): the disc reaching
    its ``DENSITY_NEIGHBOURS``-th nearest point, shared by the points inside it, measured in
    the plane of the point's unit ``normal``. The points should lie on the surface (moved
    onto a reference's planes): neighbours are found in 3D, and noise along the normal as
    large as the spacing inflates the areas by a fifth. Every cloud needs
    ``DENSITY_NEIGHBOURS`` points or more. With ``centres`` (indices per cloud; None: all
    points) the areas are measured around those points only, over the whole cloud."""
    sizes = [len(cloud) for cloud in clouds]
    if not sizes:
        return []
    if min(sizes) < DENSITY_NEIGHBOURS:
        raise ValueError(f"a density needs clouds of {DENSITY_NEIGHBOURS} points or more, got {min(sizes)}")
    centres = [None] * len(clouds) if centres is None else centres
    joined, rows, counts, neighbourhoods = centre_neighbourhoods(clouds, centres, DENSITY_NEIGHBOURS, CHUNK)
    all_normals = torch.cat([normal.double() for normal in normals]).to(joined.device)
    reach = torch.empty(len(rows), dtype=torch.float64, device=joined.device)
    for part, found in neighbourhoods:
        centre = joined[rows[part]]
        offsets = joined[found] - centre[:, None]
        normal = all_normals[rows[part], None]
        reach[part] = (offsets - (offsets * normal).sum(dim=2, keepdim=True) * normal).norm(dim=2).amax(dim=1)
    return list((torch.pi * reach.square() / (DENSITY_NEIGHBOURS - 1)).split(counts))


def anchored_areas(clouds: Sequence[Tensor], normals: Sequence[Tensor], anchors: Sequence[Tensor | None]) -> list[Tensor]:
    """:func:`local_areas` of every point, measured around the ``anchors`` only (indices per
    cloud; None: every point measured) and taken by each point from its nearest anchor.
    Density follows the scanner's distance and incidence, which change over many sample
    spacings; anchors a few spacings apart sample it finely enough, and the 16-neighbour
    search then runs for the anchors only (one point in the anchor stride), not for every
    point (on one H100 the density pass went from 30-35 to 25-27 ms a scan)."""
    anchors = [None if chosen is None or len(chosen) == 0 else chosen for chosen in anchors]
    at_anchors = local_areas(clouds, normals, anchors)
    measured = [i for i, chosen in enumerate(anchors) if chosen is not None]
    if not measured:
        return at_anchors
    device = clouds[0].device
    points = [clouds[i][anchors[i].to(device)] for i in measured]
    index = NeighbourIndex(torch.cat(points).double(), grid=True, sizes=[len(p) for p in points])
    queries = torch.cat([clouds[i].double() for i in measured])
    nearest = index.query(queries, 1, groups=cloud_numbers([len(clouds[i]) for i in measured], device))[1][:, 0]
    spread = torch.cat([at_anchors[i] for i in measured])[nearest.to(device)].split([len(clouds[i]) for i in measured])
    areas = list(at_anchors)
    for i, area in zip(measured, spread, strict=True):
        areas[i] = area
    return areas


def thinned_to_spacing(clouds: Sequence[Tensor], normals: Sequence[Tensor], spacing: float,
                       seed: int = 0, anchors: Sequence[Tensor | None] | None = None,
                       keys: Sequence[np.ndarray] | None = None) -> list[Tensor | None]:
    """Indices of the points of each cloud kept so that about one point remains per
    ``spacing``^2 of surface: each point is kept with probability (its local area per point)
    / spacing^2, capped at 1, by a draw fixed by its coordinates (:func:`point_uniforms`).
    Sparser parts keep every point; None for a cloud that keeps them all (and for one of
    fewer than ``DENSITY_NEIGHBOURS`` points). With ``anchors`` (indices per cloud) the areas
    are measured there only (:func:`anchored_areas`). ``keys`` (per cloud, one row per point)
    stand in for the coordinates in the draw, e.g. a scan as read: a registered scan's
    coordinates move in their last bits with the order of its points, and a draw on them
    would keep other points."""
    if spacing <= 0:
        return [None] * len(clouds)
    dense = [i for i, cloud in enumerate(clouds) if len(cloud) >= DENSITY_NEIGHBOURS]
    picked = [clouds[i] for i in dense], [normals[i] for i in dense]
    measured = local_areas(*picked) if anchors is None else anchored_areas(*picked, [anchors[i] for i in dense])
    areas = dict(zip(dense, measured, strict=True))
    kept: list[Tensor | None] = [None] * len(clouds)
    for i in dense:
        keyed = clouds[i].detach().cpu().numpy() if keys is None else np.asarray(keys[i])
        if len(keyed) != len(clouds[i]):
            raise ValueError(f"cloud {i} has {len(clouds[i])} points but {len(keyed)} keys")
        draws = torch.from_numpy(point_uniforms(keyed, seed)).to(areas[i].device)
        chosen = torch.nonzero(draws < areas[i] / spacing**2).flatten()
        kept[i] = None if len(chosen) == len(clouds[i]) else chosen.to(clouds[i].device)
    return kept
