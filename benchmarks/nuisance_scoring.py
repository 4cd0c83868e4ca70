"""Template scoring rules compared on identical registrations: accuracy and nuisance check.

Reads the per-scan deviations that `template_deviations.py` dumped (DIR/s<seed>/<class>.npz)
and scores each scan under each rule below, then gives per class and seed O-ROC / P-ROC and,
per class over all seeds given (good scans ranked within each seed, as
`nuisance_seeds.py`), the Spearman rho of good scans' object scores with each nuisance.

Rules (z = robust z-scores per scan; sm = smoothed deviations; s = the spread of the scan's
raw plane offsets, 1.4826 MAD; k = 256, the smoothing's neighbourhood):
  z          (sm - median) / spread(sm)                 the method before the noise floor
  floor<c>   (sm - median) / sqrt(spread(sm)^2 + (c s / sqrt(k))^2)   the floor, c times
             the standard error of a k-point mean of the raw offsets (the product: c = 1)

    python benchmarks/nuisance_scoring.py --dumps DIR --seeds 0 --rules z floor0.5 floor1 floor2 --out T.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from common import markdown_table
from mvr3d.metrics.nuisance import NUISANCES, pooled_nuisance
from mvr3d.utils.atomic import atomic_write_text

K = 256
TOP = 0.01


def spread(values: np.ndarray) -> float:
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def point_scores(rule: str, smoothed: np.ndarray, raw_spread: float) -> np.ndarray:
    centred = smoothed - np.median(smoothed)
    if rule == "z":
        return centred / max(spread(smoothed), 1e-30)
    if rule.startswith("floor"):
        return centred / max(np.hypot(spread(smoothed), float(rule[5:]) * raw_spread / K**0.5), 1e-30)
    raise SystemExit(f"unknown rule {rule!r}")


def object_score(scores: np.ndarray) -> float:
    count = max(1, int(round(TOP * len(scores))))
    return float(np.partition(scores, -count)[-count:].mean())


def load(path: Path) -> list[tuple[str, np.ndarray, float, np.ndarray, np.ndarray]]:
    data = np.load(path)
    rows = []
    for stem in data["stems"]:
        raw = float(data[f"{stem}/spread"]) if f"{stem}/spread" in data else spread(data[f"{stem}/signed"].astype(np.float64))
        rows.append((str(stem), data[f"{stem}/smoothed"].astype(np.float64), raw, data[f"{stem}/labels"],
                     data[f"{stem}/nuisance"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dumps", type=Path, nargs="+", required=True, help="folders holding s<seed>/<class>.npz")
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--rules", nargs="+", default=["z", "floor1"])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    files = sorted({path.stem: path for folder in args.dumps for seed in args.seeds
                    for path in (folder / f"s{seed}").glob("*.npz")}.keys())
    accuracy: dict[str, list[list[str]]] = {rule: [] for rule in args.rules}
    nuisance_rows: dict[str, list[list[str]]] = {rule: [] for rule in args.rules}
    means: dict[str, list[tuple[float, float]]] = {rule: [] for rule in args.rules}
    largest: dict[str, list[float]] = {rule: [] for rule in args.rules}
    for name in files:
        per_seed = {}
        for seed in args.seeds:
            found = [folder / f"s{seed}" / f"{name}.npz" for folder in args.dumps if (folder / f"s{seed}" / f"{name}.npz").exists()]
            if found:
                per_seed[seed] = load(found[0])
        for rule in args.rules:
            strata, cells = [], []
            for rows in per_seed.values():
                scores = [point_scores(rule, smoothed, raw) for _, smoothed, raw, _, _ in rows]
                objects = [object_score(s) for s in scores]
                truth = [0 if stem.endswith("_good") else 1 for stem, *_ in rows]
                o_roc = roc_auc_score(truth, objects)
                p_roc = roc_auc_score(np.concatenate([r[3] for r in rows]), np.concatenate(scores))
                means[rule].append((o_roc, p_roc))
                cells.append(f"{100 * o_roc:.1f}/{100 * p_roc:.1f}")
                good = [i for i, t in enumerate(truth) if t == 0]
                values = np.array([rows[i][4] for i in good])
                strata.append(([objects[i] for i in good], {n: values[:, j] for j, n in enumerate(NUISANCES)}))
            accuracy[rule].append([name, *cells])
            if len(strata) == len(args.seeds):
                found = pooled_nuisance(strata)
                largest[rule] += [abs(c.rho) for c in found]
                nuisance_rows[rule].append([name, *[f"{c.rho:+.2f}" for c in found]])
    lines = [f"Template scoring rules on identical registrations, seeds {', '.join(map(str, args.seeds))} "
             f"(dumps: {', '.join(map(str, args.dumps))}).", ""]
    summary = []
    for rule in args.rules:
        lines += [f"### {rule}: O-ROC / P-ROC per seed", "",
                  markdown_table(["class", *[f"seed {s}" for s in args.seeds]], accuracy[rule]),
                  f"### {rule}: Spearman rho of good scans' object scores, seeds pooled", "",
                  markdown_table(["class", *NUISANCES], nuisance_rows[rule])]
        o, p = np.mean(means[rule], axis=0) if means[rule] else (np.nan, np.nan)
        worst = max(largest[rule]) if largest[rule] else np.nan
        summary.append([rule, f"{100 * o:.1f}", f"{100 * p:.1f}", f"{100 * min(m[0] for m in means[rule]):.1f}",
                        str(sum(r >= 0.3 for r in largest[rule])), str(len(largest[rule])), f"{worst:.2f}"])
    lines += ["### Summary", "", markdown_table(
        ["rule", "mean O-ROC", "mean P-ROC", "lowest class O-ROC", "nuisance values >= 0.3", "values", "largest abs(rho)"],
        summary)]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
