"""Exact AUROC / AUPR for tens of millions of scores.

One sort of float32 scores (plus a bool label array) is all the memory needed: about
13 bytes per point, so 50 M pooled points fit in well under 1 GB. Ties are handled as
scikit-learn does (all tied scores cross the threshold together).
"""

from __future__ import annotations

import numpy as np

from mvr3d.errors import InputError


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise InputError(f"{scores.size} scores but {labels.size} labels")
    if scores.size == 0:
        raise InputError("no scores to evaluate")
    if not np.isfinite(scores).all():
        raise InputError(f"{int((~np.isfinite(scores)).sum())} scores are NaN or infinite")
    labels = labels.astype(bool)
    positives = int(labels.sum())
    if positives == 0 or positives == labels.size:
        raise InputError("AUROC/AUPR need both normal and anomalous samples")
    return scores, labels


def _cumulative_counts(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives at each distinct threshold, highest score first."""
    order = np.argsort(scores, kind="stable")[::-1]
    sorted_scores = scores[order]
    sorted_labels = labels[order]
    del order
    last_of_tie = np.flatnonzero(np.diff(sorted_scores)) if sorted_scores.size > 1 else np.array([], int)
    ends = np.r_[last_of_tie, sorted_labels.size - 1]
    true_pos = np.cumsum(sorted_labels, dtype=np.int64)[ends]
    false_pos = ends + 1 - true_pos
    return true_pos, false_pos


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates, starting at (0, 0)."""
    scores, labels = _check(scores, labels)
    true_pos, false_pos = _cumulative_counts(scores, labels)
    tpr = np.r_[0.0, true_pos / true_pos[-1]]
    fpr = np.r_[0.0, false_pos / false_pos[-1]]
    return fpr, tpr


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    fpr, tpr = roc_curve(scores, labels)
    return float(np.trapezoid(tpr, fpr))


def aupr(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision: sum over thresholds of (recall step) x precision."""
    scores, labels = _check(scores, labels)
    true_pos, false_pos = _cumulative_counts(scores, labels)
    precision = true_pos / (true_pos + false_pos)
    recall = true_pos / true_pos[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


class PooledScores:
    """Collects per-point scores of many scans compactly for pooled point-level metrics."""

    def __init__(self) -> None:
        self._scores: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def add(self, scores: np.ndarray, labels: np.ndarray) -> None:
        scores = np.asarray(scores, dtype=np.float32).ravel()
        labels = np.asarray(labels).ravel().astype(bool)
        if scores.shape != labels.shape:
            raise InputError(f"{scores.size} point scores but {labels.size} point labels")
        self._scores.append(scores)
        self._labels.append(labels)

    def __len__(self) -> int:
        return sum(s.size for s in self._scores)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self._scores), np.concatenate(self._labels)

    def auroc(self) -> float:
        return auroc(*self.arrays())

    def aupr(self) -> float:
        return aupr(*self.arrays())
