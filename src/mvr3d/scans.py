"""What every detector takes and gives: scans in, per-point and object scores out.

Shared by MVR and the baselines, so it sits outside both packages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mvr3d.errors import InputError

ScanLike = np.ndarray | str | Path | object  # arrays, paths, PointCloud or Sample


@dataclass
class ScanScore:
    point_scores: np.ndarray  # (N,) float32, input order
    object_score: float
    coverage: float  # fraction of points seen directly in at least one view


def as_points(scan: ScanLike) -> np.ndarray:
    """Accept an (N, 3) array, a path, or anything with a ``.points`` array."""
    source = None
    if isinstance(scan, (str, Path)):
        from mvr3d.io import read_points

        source, scan = scan, read_points(scan)
    points = getattr(scan, "points", scan)
    source = source or getattr(scan, "path", None)
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f"expected an (N, 3) point array, got shape {points.shape}", source)
    if len(points) < 2:
        raise InputError(f"a scan needs at least 2 points, got {len(points)}", source)
    if not np.isfinite(points).all():
        raise InputError("scan has NaN or infinite coordinates", source)
    return points




def object_score(point_scores: np.ndarray, method: str = "top1", top_fraction: float = 0.01) -> float:
    """Max of point scores, or the mean of the top ``top_fraction`` (Dinomaly)."""
    if method == "max":
        return float(point_scores.max())
    if method == "top1":
        count = max(1, int(round(len(point_scores) * top_fraction)))
        return float(np.partition(point_scores, -count)[-count:].mean())
    raise ValueError(f"unknown object score {method!r}; use 'max' or 'top1'")
