"""Synthetic surface defects (bulges and sinks) with per-point labels that match the geometry.

Pure functions on arrays: the builder decides where points come from and what is kept.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from mvr3d.geometry import bounding_diagonal

DefectKind = Literal["bulge", "sink"]
DEFECT_KINDS: tuple[DefectKind, ...] = ("bulge", "sink")

# Share of the peak displacement under which a point counts as undisturbed; the falloff
# radius is widened so that the labelled disc still holds the requested fraction.
LABEL_THRESHOLD = 0.1
# cos^2(pi/2 * t) == LABEL_THRESHOLD at t = LABEL_EDGE: where labels stop inside the bump.
LABEL_EDGE = float(2 / np.pi * np.arccos(np.sqrt(LABEL_THRESHOLD)))


def add_defect(
    points: np.ndarray,
    normals: np.ndarray,
    kind: DefectKind,
    rng: np.random.Generator,
    fraction_range: tuple[float, float] = (0.01, 0.05),
    visible_mask: np.ndarray | None = None,
    amplitude_range: tuple[float, float] = (0.015, 0.035),
) -> tuple[np.ndarray, np.ndarray]:
    """Push a smooth round patch of the surface out (bulge) or in (sink).

    The patch is centred on a point of ``visible_mask`` (all points if None) and sized so
    that a fraction drawn from ``fraction_range`` of the reference points (the visible
    ones when a mask is given) ends up labelled. Points move along the patch's mean
    normal with a cos^2 falloff and peak ``amplitude_range`` x the bounding diagonal; a point is
    labelled 1 iff it moved more than ``LABEL_THRESHOLD`` of the peak.
    Returns ``(new_points, labels)`` with labels as uint8, aligned with ``points``.
    """
    if kind not in DEFECT_KINDS:
        raise ValueError(f"kind must be one of {DEFECT_KINDS}, got {kind!r}")
    points = np.asarray(points, dtype=np.float64)
    reference = np.arange(len(points)) if visible_mask is None else np.flatnonzero(visible_mask)
    if len(reference) == 0:
        raise ValueError("visible_mask selects no points")
    centre = points[rng.choice(reference)]
    distance = np.linalg.norm(points - centre, axis=1)

    fraction = rng.uniform(*fraction_range)
    n_inside = max(1, int(round(fraction * len(reference))))
    label_radius = np.partition(distance[reference], n_inside - 1)[n_inside - 1]
    radius = max(label_radius, 1e-12) / LABEL_EDGE

    inside = distance < radius
    # Mean normal of the seen part only: on thin walls the far side would cancel it out.
    direction = normals[reference[distance[reference] <= label_radius]].sum(axis=0)
    direction /= max(np.linalg.norm(direction), 1e-12)
    sign = 1.0 if kind == "bulge" else -1.0
    peak = rng.uniform(*amplitude_range) * bounding_diagonal(points)

    profile = np.zeros(len(points))
    profile[inside] = np.cos(0.5 * np.pi * distance[inside] / radius) ** 2
    new_points = points + (sign * peak * profile)[:, None] * direction
    labels = (profile > LABEL_THRESHOLD).astype(np.uint8)
    return new_points, labels
