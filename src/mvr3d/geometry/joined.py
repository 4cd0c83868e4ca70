"""Several point clouds held end to end in one tensor: a batch of scans of different sizes.

One tensor and the clouds' sizes let a batch's per-cloud work (means, voxel grids, rigid
motions) run as a few kernels where the points live. Done in numpy, scan by scan on host
threads, that work left one H100 idle for ~10 ms of every 100 k-point scan's ~60
(benchmarks/template_timeline.py, docs/accuracy.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from mvr3d.errors import InputError


def join_clouds(clouds: Sequence[np.ndarray], device: str | torch.device) -> tuple[Tensor, list[int]]:
    """(sum of sizes, 3) float64 points on ``device``, cloud after cloud, and the sizes.

    Each cloud travels in its own dtype and becomes float64 on the device (exact from
    float32), so float32 scans cross the bus at half the bytes.
    """
    sizes = [len(cloud) for cloud in clouds]
    if not clouds:
        return torch.zeros((0, 3), dtype=torch.float64, device=device), sizes
    parts = [torch.as_tensor(np.ascontiguousarray(cloud)).to(device).double() for cloud in clouds]
    return torch.cat(parts) if len(parts) > 1 else parts[0], sizes


def cloud_numbers(sizes: Sequence[int], device: str | torch.device) -> Tensor:
    """(sum(sizes),) cloud numbers of points listed cloud after cloud: ``sizes[0]`` zeros,
    then ``sizes[1]`` ones, ... (a grouped index's ``groups`` for its own points)."""
    return torch.repeat_interleave(torch.arange(len(sizes), device=device), torch.as_tensor(sizes, device=device))


def cloud_means(points: Tensor, sizes: Sequence[int]) -> Tensor:
    """(clouds, 3) mean point of each non-empty cloud."""
    _check_sizes(points, sizes)
    groups = cloud_numbers(sizes, points.device)
    sums = torch.zeros((len(sizes), 3), dtype=points.dtype, device=points.device).index_add_(0, groups, points)
    return sums / torch.as_tensor(sizes, dtype=points.dtype, device=points.device)[:, None]


def move_clouds(points: Tensor, sizes: Sequence[int], rotations: Sequence[np.ndarray],
                shifts: Sequence[np.ndarray]) -> Tensor:
    """Every cloud moved by its own rigid motion: ``cloud @ R.T + t``."""
    _check_sizes(points, sizes)
    moved = [part @ torch.as_tensor(rotation, dtype=points.dtype, device=points.device).T
             + torch.as_tensor(shift, dtype=points.dtype, device=points.device)
             for part, rotation, shift in zip(points.split(list(sizes)), rotations, shifts, strict=True)]
    return torch.cat(moved) if moved else points


def voxel_downsample_joined(points: Tensor, sizes: Sequence[int], voxel: float) -> tuple[Tensor, list[int]]:
    """:func:`mvr3d.geometry.voxels.voxel_downsample` of every cloud at once: the centroids
    of each cloud's occupied voxels, cloud after cloud and within a cloud in the same
    order, and how many each cloud has (one host sync). Voxel edges are the same as that
    function's (from each cloud's own minimum corner)."""
    if not voxel > 0:
        raise InputError(f"voxel size must be positive, got {voxel}")
    _check_sizes(points, sizes)
    if not len(points):
        return points, [0] * len(sizes)
    groups = cloud_numbers(sizes, points.device)
    lowest = torch.full((len(sizes), 3), torch.inf, dtype=points.dtype, device=points.device)
    lowest = lowest.scatter_reduce_(0, groups[:, None].expand(-1, 3), points, "amin")
    cells = torch.floor((points - lowest[groups]) / voxel).long()
    dims = cells.max(dim=0).values + 1
    per_cloud = math.prod(dims.tolist())  # Python integers: no int64 overflow for extreme extents
    if per_cloud * len(sizes) < 2**62:
        # One int64 key ordered as (cloud, x, y, z) rows are: sorting 1-D keys is far faster.
        keys = groups * per_cloud + (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]
        unique, inverse = torch.unique(keys, sorted=True, return_inverse=True)
        owner = torch.div(unique, per_cloud, rounding_mode="floor")
    else:
        unique, inverse = torch.unique(torch.cat([groups[:, None], cells], dim=1), dim=0, sorted=True, return_inverse=True)
        owner = unique[:, 0]
    counts = torch.bincount(inverse, minlength=len(unique))
    sums = torch.zeros((len(unique), 3), dtype=points.dtype, device=points.device).index_add_(0, inverse, points)
    return sums / counts[:, None], torch.bincount(owner, minlength=len(sizes)).tolist()


def _check_sizes(points: Tensor, sizes: Sequence[int]) -> None:
    if any(size < 0 for size in sizes) or sum(sizes) != len(points):
        raise InputError(f"cloud sizes must be non-negative and add up to the {len(points)} points, got {list(sizes)[:8]}")
