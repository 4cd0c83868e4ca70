"""``mvr3d predict`` folders matched with a dataset's ground truth, and the scans worth
showing as heatmaps (the clearest detection, the hardest defect, the worst false alarm)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mvr3d.data import Real3DAD
from mvr3d.engine.results import read_scores
from mvr3d.errors import InputError
from mvr3d.io import read_points
from mvr3d.metrics import auroc

__all__ = ["MAX_HEATMAP_POINTS", "ClassPredictions", "ScanView", "load_predictions", "read_object_scores"]


MAX_HEATMAP_POINTS = 30_000


@dataclass
class ScanView:
    kind: str
    name: str
    object_score: float
    points: np.ndarray
    scores: np.ndarray
    labels: np.ndarray | None
    total_points: int


@dataclass
class ClassPredictions:
    category: str
    folder: Path
    names: list[str]
    scores: np.ndarray
    labels: np.ndarray
    missing: list[str] = field(default_factory=list)
    scans: list[ScanView] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def auroc(self) -> float:
        return auroc(self.scores, self.labels) if self.has_both_labels else math.nan

    @property
    def has_both_labels(self) -> bool:
        return 0 < int(self.labels.sum()) < len(self.labels)


def read_object_scores(folder: Path) -> dict[str, float]:
    """``scores.csv`` of ``mvr3d predict``: stem -> object score."""
    return {row.file: row.object_score for row in read_scores(folder)}


def load_predictions(
    category: str, folder: Path, data_root: Path, max_points: int = MAX_HEATMAP_POINTS
) -> ClassPredictions:
    """Match a predictions folder with the ground truth of ``category``'s test split."""
    scored = read_object_scores(folder)
    dataset = Real3DAD(data_root, category, "test")
    names, scores, labels, missing = [], [], [], []
    for sample in dataset:
        if sample.name not in scored:
            missing.append(sample.name)
            continue
        names.append(sample.name)
        scores.append(scored[sample.name])
        labels.append(int(sample.label))
    if not names:
        raise InputError(f"no scores for any test scan of class {category!r}", folder)
    preds = ClassPredictions(category, Path(folder), names, np.array(scores), np.array(labels), missing)
    if missing:
        preds.notes.append(f"{len(missing)} test scan(s) have no score and are left out")
    if not preds.has_both_labels:
        preds.notes.append("the scored scans are all good or all defective: no ROC curve")
    preds.scans = _heatmap_scans(preds, dataset, max_points)
    return preds


def _heatmap_scans(preds: ClassPredictions, dataset, max_points: int) -> list[ScanView]:
    """The clearest detection, the hardest defect and the worst false alarm of a class."""
    picks = []
    defective = np.flatnonzero(preds.labels == 1)
    good = np.flatnonzero(preds.labels == 0)
    if defective.size:
        picks.append(("highest-scored defective", defective[np.argmax(preds.scores[defective])]))
        lowest = defective[np.argmin(preds.scores[defective])]
        if defective.size > 1:
            picks.append(("lowest-scored defective", lowest))
    if good.size:
        picks.append(("highest-scored good", good[np.argmax(preds.scores[good])]))
    index = {path.stem: i for i, path in enumerate(dataset.files)}
    views = []
    for kind, i in picks:
        view = _scan_view(preds, dataset, index[preds.names[i]], kind, float(preds.scores[i]), max_points)
        if view is not None:
            views.append(view)
    return views


def _scan_view(preds, dataset, item: int, kind: str, score: float, max_points: int):
    sample = dataset[item]
    path = preds.folder / f"{sample.name}.txt"
    if not path.is_file():
        preds.notes.append(f"no per-point scores {path.name} for the {kind} scan")
        return None
    cloud = read_points(path)
    if cloud.values is None:
        raise InputError("expected 'x y z score' rows", path)
    labels = sample.point_labels
    if labels is not None and len(labels) != len(cloud.points):
        preds.notes.append(f"{sample.name}: point count differs from the scan; ground truth not shown")
        labels = None
    keep = _subsample(len(cloud.points), max_points)
    return ScanView(
        kind=kind,
        name=sample.name,
        object_score=score,
        points=np.asarray(cloud.points, np.float32)[keep],
        scores=np.asarray(cloud.values, np.float32)[keep],
        labels=None if labels is None else np.asarray(labels)[keep],
        total_points=len(cloud.points),
    )


def _subsample(n: int, limit: int) -> np.ndarray:
    # Fixed seed: rerunning the report on the same inputs must give the same page.
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, limit, replace=False))
