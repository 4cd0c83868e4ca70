"""Anomalous regions: connected groups of points whose score is above the point threshold.

An inspection engineer asks "where, and how big", not "which points": the points above
the calibrated point threshold are linked when they lie within ``LINK_SPACINGS`` times
the scan's typical point spacing of each other, and every connected group of at least
``min_points`` points is one region, described in the scan's own units (its bounding box
is axis-aligned in the scan's coordinates, as the part was measured).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from mvr3d.errors import InputError

# Points closer than this many median point spacings belong to one region: scanner
# density varies with incidence, so one spacing would split a region along its edges.
LINK_SPACINGS = 3.0
# Fewer anomalous points than this are speckle, not a region to report.
MIN_REGION_POINTS = 10


@dataclass(frozen=True)
class Region:
    """One connected anomalous region of a scan (lengths in the scan's units)."""

    points: int
    centroid: tuple[float, float, float]
    extent: tuple[float, float, float]  # side lengths of its axis-aligned bounding box
    size: float  # diagonal of that box
    peak_score: float
    mean_score: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def point_spacing(points: np.ndarray) -> float:
    """Median distance from a point to its nearest other point (0 for fewer than 2)."""
    if len(points) < 2:
        return 0.0
    distances = cKDTree(points).query(points, k=2)[0][:, 1]
    return float(np.median(distances))


def anomalous_regions(points: np.ndarray, scores: np.ndarray, point_threshold: float,
                      min_points: int = MIN_REGION_POINTS, link_spacings: float = LINK_SPACINGS) -> list[Region]:
    """Regions of points scoring above ``point_threshold``, largest peak first."""
    points = np.asarray(points, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or scores.shape != (len(points),):
        raise InputError(f"regions need (N, 3) points and N scores, got {points.shape} and {scores.shape}")
    if min_points < 1:
        raise InputError(f"min_points must be at least 1, got {min_points}")
    hot = np.flatnonzero(scores > point_threshold)
    if len(hot) < min_points:
        return []
    radius = link_spacings * point_spacing(points)
    pairs = cKDTree(points[hot]).query_pairs(radius, output_type="ndarray") if radius > 0 else np.empty((0, 2), int)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(hot), len(hot)))
    _, labels = connected_components(graph, directed=False)
    regions = [_describe(points[hot[labels == label]], scores[hot[labels == label]])
               for label in np.flatnonzero(np.bincount(labels) >= min_points)]
    return sorted(regions, key=lambda region: (-region.peak_score, -region.points))


def _describe(points: np.ndarray, scores: np.ndarray) -> Region:
    extent = points.max(axis=0) - points.min(axis=0)
    return Region(
        points=len(points),
        centroid=tuple(float(v) for v in points.mean(axis=0)),
        extent=tuple(float(v) for v in extent),
        size=float(np.linalg.norm(extent)),
        peak_score=float(scores.max()),
        mean_score=float(scores.mean()),
    )
