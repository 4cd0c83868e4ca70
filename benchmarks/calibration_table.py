"""Thresholds from recorded calibration scores against a benchmark run's test scores (issue 19).

`calibration_check.py --json` records every calibration score; this fits each threshold model
to them and counts the good and defective test scans of a run that fail it, per class and
pooled, without scoring anything again:

    python benchmarks/calibration_table.py --calibration results/realistic/calibration-gpu/cal-s3-*.json \
        --scores results/realistic/template-s3 --out calibration_heldout_s3_cuda.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from calibration_check import MODELS, test_scores
from common import markdown_table
from mvr3d.models.thresholds import fit_threshold
from mvr3d.utils.atomic import atomic_write_text


def load_calibration(files: list[Path]) -> tuple[dict[str, dict[str, list[float]]], set[str]]:
    scores: dict[str, dict[str, list[float]]] = {}
    machines = set()
    for path in files:
        record = json.loads(path.read_text())
        scores.update(record["scores"])
        machines.add(record["machine"])
    return scores, machines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibration", type=Path, nargs="+", required=True, help="calibration_check.py --json files")
    parser.add_argument("--scores", type=Path, required=True, help="benchmark run folder with classes/*.json")
    parser.add_argument("--rate", type=float, default=0.01)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    calibration, machines = load_calibration(args.calibration)
    rows, pooled = [], {}
    for category in sorted(calibration):
        good, bad = test_scores(args.scores, category)
        for variant, scores in calibration[category].items():
            for model in MODELS:
                threshold = fit_threshold(scores, args.rate, model)
                failed = int((good > threshold).sum()), int((bad > threshold).sum())
                total = pooled.setdefault((variant, model), np.zeros(4, dtype=int))
                total += [failed[0], len(good), failed[1], len(bad)]
                rows.append([category, variant, model, f"{threshold:.2f}", f"{failed[0]}/{len(good)}",
                             f"{failed[1]}/{len(bad)}"])
    for (variant, model), (good_failed, goods, bad_failed, bads) in pooled.items():
        rows.append(["**all**", variant, model, "", f"**{good_failed}/{goods} = {100 * good_failed / goods:.1f} %**",
                     f"{bad_failed}/{bads} = {100 * bad_failed / bads:.1f} %"])
    text = (f"Calibrated {args.rate:.0%} thresholds: calibration scores from {', '.join(str(p) for p in args.calibration)} "
            f"({'; '.join(sorted(machines))}); test scores from {args.scores}.\n\n")
    text += markdown_table(["class", "calibration views", "model", "threshold", "good scans failed",
                            "defective scans failed"], rows, align=["---", "---", "---", "---:", "---:", "---:"])
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
