"""The one record every dataset in mvr3d yields."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

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


class LazySamples(Sequence[Sample]):
    """A list of scan files that reads each one only when it is indexed."""

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> Sample:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample index {index} out of range for {len(self)} samples")
        return self.load(index % len(self))
