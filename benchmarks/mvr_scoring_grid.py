"""Scoring rules of MVR's template reference over saved raw point errors: a grid of the
sparse discount's power, k-NN smoothing after it and the object score's top fraction.

The errors come from ``mvr_reference_variants.py --save-errors DIR`` (one .npy per test scan,
the detector's raw point errors), so every rule scores the same registration and rendering.
Per rule: mean O-ROC and P-ROC over the classes and the lowest class O-ROC.

  usage: python benchmarks/mvr_scoring_grid.py --data ROOT --errors DIR --out DIR [--classes ...]
Writes DIR/table.md (rules by mean O-ROC), DIR/classes.json (per class) and DIR/run.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from common import machine, markdown_table
from mvr3d.data.real3d import Real3DAD, list_categories
from mvr3d.errors import InputError
from mvr3d.metrics.ranking import PooledScores, auroc
from mvr3d.models.components.scoring import discount_sparse
from mvr3d.models.mvr.presets import REFERENCE
from mvr3d.scans import object_score
from mvr3d.utils.atomic import atomic_write_text
from mvr3d.utils.provenance import provenance

POWERS = (0.0, 1.0, 1.5, 2.0, 3.0)
SMOOTHING = (0, 8, 32)
FRACTIONS = (0.002, 0.005, 0.01, 0.02, 0.05)
DEFAULT = (REFERENCE["sparse_discount"], 0, 0.01)  # the reference preset's rule: no smoothing, top 1 %


def rule_name(rule: tuple[float, int, float]) -> str:
    power, k, fraction = rule
    return f"P {power:g}, k {k}, top {fraction * 100:g} %"


def class_results(root: Path, errors: Path, category: str) -> dict[tuple, tuple[float, float]]:
    """(O-ROC, P-ROC) of every rule on one class."""
    objects: dict[tuple, list[float]] = {}
    pooled: dict[tuple, PooledScores] = {}
    labels = []
    for sample in Real3DAD(root, category, "test"):
        path = errors / category / f"{sample.name}.npy"
        if not path.exists():
            raise InputError(f"{path}: no saved errors for this test scan (run mvr_reference_variants.py --save-errors)")
        raw = torch.from_numpy(np.load(path).astype(np.float64))
        points = sample.points.astype(np.float64)
        neighbours = cKDTree(points).query(points, k=max(SMOOTHING), workers=-1)[1]
        point_labels = sample.point_labels if sample.point_labels is not None else np.zeros(len(points))
        labels.append(sample.label)
        for power in POWERS:
            discounted = discount_sparse(torch.from_numpy(points), raw, power).numpy()
            for k in SMOOTHING:
                values = discounted if k == 0 else discounted[neighbours[:, :k]].mean(axis=1)
                pooled.setdefault((power, k), PooledScores()).add(values, point_labels)
                for fraction in FRACTIONS:
                    objects.setdefault((power, k, fraction), []).append(object_score(values, "top1", fraction))
    p_roc = {key: scores.auroc() for key, scores in pooled.items()}
    return {rule: (auroc(np.array(values), np.array(labels)), p_roc[rule[:2]]) for rule, values in objects.items()}


def grid_table(per_class: dict[str, dict[tuple, tuple[float, float]]]) -> str:
    rows = []
    for rule in itertools.product(POWERS, SMOOTHING, FRACTIONS):
        cells = [results[rule] for results in per_class.values()]
        mean_o, mean_p = (100 * float(np.mean([c[i] for c in cells])) for i in (0, 1))
        lowest = 100 * min(c[0] for c in cells)
        name = rule_name(rule) + (" (preset)" if rule == DEFAULT else "")
        rows.append((mean_o, [name, f"{mean_o:.1f}", f"{mean_p:.1f}", f"{lowest:.1f}"]))
    rows.sort(key=lambda row: -row[0])
    return markdown_table(["rule", "mean O-ROC", "mean P-ROC", "lowest class O-ROC"], [r for _, r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--errors", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--classes", nargs="*")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    per_class = {}
    for category in args.classes or list_categories(args.data):
        per_class[category] = class_results(args.data, args.errors, category)
        print(category, "done", flush=True)
    text = grid_table(per_class)
    atomic_write_text(args.out / "table.md", text)
    atomic_write_text(args.out / "classes.json", json.dumps(
        {c: {rule_name(rule): v for rule, v in results.items()} for c, results in per_class.items()}, indent=1) + "\n")
    atomic_write_text(args.out / "run.json", json.dumps({
        "data": str(args.data), "errors": str(args.errors), "powers": POWERS, "smoothing": SMOOTHING,
        "fractions": FRACTIONS, "machine": machine(), "provenance": provenance()}, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
