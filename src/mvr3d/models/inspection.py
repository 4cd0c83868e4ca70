"""A scan's verdict: its scores read against the detector's calibrated threshold.

What ``predict`` writes per scan and what :meth:`~mvr3d.models.base.Detector.inspect`
returns are one type, built by one function, so the API and the command line agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mvr3d.models.components.regions import Region, anomalous_regions
from mvr3d.models.thresholds import Threshold
from mvr3d.scans import ScanScore


@dataclass(frozen=True)
class Inspection:
    """Scores of one scan with the decision drawn from them."""

    point_scores: np.ndarray = field(repr=False)  # (N,) input order
    object_score: float
    coverage: float
    normalised_score: float  # 0.5 at the object threshold
    verdict: str  # "pass" or "fail"
    regions: list[Region]  # connected points above the point threshold, highest peak first

    @property
    def failed(self) -> bool:
        return self.verdict == "fail"


def inspect_result(points: np.ndarray, result: ScanScore, threshold: Threshold) -> Inspection:
    """The decision for a scored scan (``points`` in the order of its point scores)."""
    return Inspection(
        point_scores=result.point_scores,
        object_score=float(result.object_score),
        coverage=float(result.coverage),
        normalised_score=threshold.normalised(result.object_score),
        verdict=threshold.verdict(result.object_score),
        regions=anomalous_regions(np.asarray(points), result.point_scores, threshold.point_threshold),
    )
