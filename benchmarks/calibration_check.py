"""Which calibration of the pass/fail threshold matches real good scans? (issue 19)

For each class: fit the detector on the class's templates, score normal views of each
template with a detector fitted on the others (leave one out) under each view variant, and
set the threshold each statistical model gives for the false-alarm rate. Then count how
many of the class's good (and defective) test scans fail it. The test scans' object scores
are read from a benchmark run's ``classes/<class>.json`` (same detector code), so only the
calibration is computed here.

    python benchmarks/calibration_check.py --data ROOT --scores RUN_DIR --classes angle_block cycloidal

Writes ``benchmarks/calibration_check_<tag>.md`` and, with ``--json FILE``, every calibration score
(so other threshold models can be tried later without scoring again). Without ``--scores`` only the
calibration scores are computed (for a benchmark run that is still going).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from common import machine
from mvr3d.detectors import create_detector
from mvr3d.engine.benchmark import class_splits
from mvr3d.models.thresholds import fit_threshold, normal_views
from mvr3d.scans import load_clouds
from mvr3d.utils.atomic import atomic_write_text

VARIANTS = {
    "4 fixed views, template pose": {"count": 4, "posed": False},
    "8 fixed views, random pose": {"count": 8, "posed": True},
    "16 fixed views, random pose": {"count": 16, "posed": True},
}
MODELS = ("normal", "lognormal")


def calibration_scores(method: str, clouds: list[np.ndarray], count: int, posed: bool, seed: int) -> list[float]:
    scores = []
    rng = np.random.default_rng(seed)
    for j, cloud in enumerate(clouds):
        detector = create_detector(method, seed=seed).fit([c for i, c in enumerate(clouds) if i != j], progress=False)
        for view in normal_views(cloud, count, rng if posed else None):
            scores.append(detector.score(view).object_score)
    return scores


def test_scores(run: Path, category: str) -> tuple[np.ndarray, np.ndarray]:
    scores = json.loads((run / "classes" / f"{category}.json").read_text())["result"]["object_scores"]
    good = np.array([v for k, v in scores.items() if "good" in k])
    bad = np.array([v for k, v in scores.items() if "good" not in k])
    return good, bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--scores", type=Path, help="benchmark run folder with classes/*.json")
    parser.add_argument("--json", type=Path, help="also write every calibration score here")
    parser.add_argument("--classes", nargs="+", required=True)
    parser.add_argument("--method", default="template")
    parser.add_argument("--rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="cpu")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    where = machine("cuda" if torch.cuda.is_available() else "cpu")
    raw: dict[str, dict[str, list[float]]] = {}
    rows = ["| class | views | model | calibration scores (min / median / max) | threshold | good failed | "
            "defective failed | seconds |", "|---|---|---|---|---:|---:|---:|---:|"]
    for category in args.classes:
        train, _ = class_splits(args.data, category)
        clouds = load_clouds(train)
        good, bad = test_scores(args.scores, category) if args.scores else (np.zeros(0), np.zeros(0))
        for name in args.variants:
            variant = VARIANTS[name]
            started = time.perf_counter()
            scores = calibration_scores(args.method, clouds, seed=args.seed, **variant)
            seconds = time.perf_counter() - started
            raw.setdefault(category, {})[name] = scores
            if args.json:
                atomic_write_text(args.json, json.dumps({"machine": where, "method": args.method, "seed": args.seed,
                                                         "scores": raw}, indent=1))
            for model in MODELS:
                threshold = fit_threshold(scores, args.rate, model)
                rows.append(
                    f"| {category} | {name} | {model} | {min(scores):.2f} / {np.median(scores):.2f} / "
                    f"{max(scores):.2f} | {threshold:.2f} | {np.mean(good > threshold):.2f} "
                    f"({int(np.sum(good > threshold))}/{len(good)}) | {np.mean(bad > threshold):.2f} | {seconds:.0f} |"
                )
                print(rows[-1], flush=True)
    text = "\n".join([f"Calibration check, {args.method}, rate {args.rate}, {where}; test scores from "
                      f"{args.scores}", "", *rows, ""])
    atomic_write_text(Path(__file__).parent / f"calibration_check_{args.tag}.md", text)
    print(text)


if __name__ == "__main__":
    main()
