"""Nuisance check: do good scans' object scores follow how they were scanned?

A detector whose scores on normal parts rise with the side a scan was taken from, the
share of the part it shows, its point count or its noise level ranks scans by the
scanner, not by defects, whatever its mean AUROC. For each nuisance this gives the
Spearman rank correlation between the good scans' object scores and that nuisance.

With few good scans a correlation is noisy by itself: for n independent scans the null
standard deviation of Spearman's rho is about 1 / sqrt(n - 1) (0.23 at n = 20), so the
two-sided p-value (scipy) is reported beside each rho, and :func:`pooled_nuisance`
pools classes (ranks within each class) for a test with more power.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import rankdata, spearmanr

# What make-benchmark records per test scan (meta.json) -> the nuisance's name here.
NUISANCES = ("view_x", "view_y", "view_z", "visible_share", "points", "noise")
MIN_SCANS = 5


@dataclass
class Correlation:
    nuisance: str
    rho: float
    p_value: float
    scans: int

    def to_dict(self) -> dict:
        return asdict(self)


def nuisance_values(entry: Mapping) -> dict[str, float]:
    """A meta.json scan entry -> {nuisance: value}; missing facts are left out."""
    values: dict[str, float] = {}
    view = entry.get("view")
    if isinstance(view, Sequence) and len(view) == 3:
        values.update(view_x=float(view[0]), view_y=float(view[1]), view_z=float(view[2]))
    for key in ("visible_share", "points", "noise"):
        if isinstance(entry.get(key), (int, float)):
            values[key] = float(entry[key])
    return values


def spearman(scores: Sequence[float], nuisance: Sequence[float], name: str) -> Correlation | None:
    """Spearman's rho and its p-value; None when too few scans or a constant input."""
    scores, nuisance = np.asarray(scores, float), np.asarray(nuisance, float)
    if len(scores) < MIN_SCANS or np.ptp(scores) == 0 or np.ptp(nuisance) == 0:
        return None
    result = spearmanr(scores, nuisance)
    return Correlation(name, float(result.statistic), float(result.pvalue), len(scores))


def nuisance_correlations(object_scores: Mapping[str, float], facts: Mapping[str, Mapping]) -> list[Correlation]:
    """Per nuisance, the correlation over the good scans named in ``object_scores``
    (stem -> score) with their meta.json entries ``facts`` (stem -> entry)."""
    rows = [(score, nuisance_values(facts[stem])) for stem, score in object_scores.items() if stem in facts]
    out = []
    for name in NUISANCES:
        pairs = [(score, values[name]) for score, values in rows if name in values]
        found = spearman([p[0] for p in pairs], [p[1] for p in pairs], name) if pairs else None
        if found is not None:
            out.append(found)
    return out


def pooled_nuisance(per_class: Sequence[tuple[Sequence[float], Mapping[str, Sequence[float]]]]) -> list[Correlation]:
    """Spearman over all classes together after ranking scores and nuisances within each
    class (a class with higher scores overall must not create a correlation)."""
    out = []
    for name in NUISANCES:
        scores, values = [], []
        for class_scores, class_values in per_class:
            if name in class_values and len(class_scores) >= MIN_SCANS:
                scores.append(_centred_ranks(class_scores))
                values.append(_centred_ranks(class_values[name]))
        if scores:
            found = spearman(np.concatenate(scores), np.concatenate(values), name)
            if found is not None:
                out.append(found)
    return out


def _centred_ranks(values: Sequence[float]) -> np.ndarray:
    ranks = rankdata(values)
    return (ranks - ranks.mean()) / len(ranks)
