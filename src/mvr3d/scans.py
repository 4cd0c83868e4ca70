"""What every detector takes and gives: scans in, per-point and object scores out.

Shared by MVR and the baselines, so it sits outside both packages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mvr3d.errors import InputError
from mvr3d.io import read_points, validate_points

ScanLike = np.ndarray | str | Path | object  # arrays, paths, PointCloud or Sample


@dataclass
class ScanScore:
    point_scores: np.ndarray  # (N,) float32, input order
    object_score: float
    coverage: float  # fraction of points seen directly in at least one view


def as_points(scan: ScanLike) -> np.ndarray:
    """:func:`mvr3d.io.validate_points` (coordinates bounded too) for anything a detector
    takes: an (N, 3) array, a path to read, or anything with a ``.points`` array."""
    source = None
    if isinstance(scan, (str, Path)):
        source, scan = scan, read_points(scan)
    points = getattr(scan, "points", scan)
    return validate_points(points, source or getattr(scan, "path", None), bounded=True)


# Registration estimates normals from a scan's nearest neighbours after voxel
# downsampling, and the student learns from its renders: a handful of points is no object.
MIN_TRAINING_POINTS = 10


def training_points(scan: ScanLike) -> np.ndarray:
    """:func:`as_points` for a normal scan to train on: at least ``MIN_TRAINING_POINTS``
    distinct points spanning some extent, or :class:`InputError` naming the scan."""
    points = as_points(scan)
    source = scan if isinstance(scan, (str, Path)) else getattr(scan, "path", None)
    distinct = len(np.unique(points, axis=0)) if len(points) < 100_000 else len(points)
    if distinct < MIN_TRAINING_POINTS:
        raise InputError(
            f"a training scan needs at least {MIN_TRAINING_POINTS} distinct points, got {distinct}"
            + (f" (of {len(points)})" if distinct != len(points) else ""),
            source,
        )
    if float(np.ptp(points, axis=0).max()) == 0.0:
        raise InputError("all points of this training scan are identical", source)
    return points


def load_clouds(scans: Iterable[ScanLike]) -> list[np.ndarray]:
    """Training scans as float64 point arrays, or :class:`InputError` when there are none."""
    clouds = [as_points(scan).astype(np.float64) for scan in scans]
    if not clouds:
        raise InputError("fit needs at least one training scan")
    return clouds


def object_score(point_scores: np.ndarray, method: str = "top1", top_fraction: float = 0.01) -> float:
    """Max of point scores, or the mean of the top ``top_fraction`` (Dinomaly)."""
    if method == "max":
        return float(point_scores.max())
    if method == "top1":
        count = max(1, int(round(len(point_scores) * top_fraction)))
        return float(np.partition(point_scores, -count)[-count:].mean())
    raise ValueError(f"unknown object score {method!r}; use 'max' or 'top1'")
