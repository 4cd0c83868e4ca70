"""The one record every dataset in mvr3d yields."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Sample:
    """One scan with its ground truth.

    ``point_labels`` is ``None`` when per-point truth is unknown (train scans, or a
    defective scan of a user folder without a label file); otherwise it is aligned with
    ``points`` and 1 marks an anomalous point.
    """

    name: str
    path: Path
    points: np.ndarray
    point_labels: np.ndarray | None
    label: int
    defect: str
    category: str

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])

    @property
    def is_anomalous(self) -> bool:
        return self.label == 1
