"""O-ROC and nuisance correlations from the per-scan lines of ``template_twins.py`` logs, so
runs cut short can be read too.

  usage: python benchmarks/template_twins_table.py META.json CLASS LOG [--weights 0.5 1]
Prints, per variant, O-ROC over the scans logged and the Spearman rho of the good scans' object
scores with view x / view y / view z / visible share / points / noise; with --weights, also
``product - w * twin_loo`` for each w.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from mvr3d.metrics.nuisance import nuisance_values
from mvr3d.metrics.ranking import auroc


def read_log(path: Path) -> dict[str, dict[str, float]]:
    rows = {}
    for line in path.read_text().splitlines():
        if line.startswith("scan "):
            _, stem, values = line.split(" ", 2)
            # Logs of 2026-12-08 hold numpy floats by their repr, np.float64(x).
            rows[stem] = ast.literal_eval(re.sub(r"np\.float64\(([^)]*)\)", r"\1", values))
    return rows


def row(name: str, objects: dict[str, float], facts: dict[str, dict[str, float]]) -> str:
    stems = list(objects)
    labels = np.array([0 if stem in facts else 1 for stem in stems])
    o_roc = auroc(np.array([objects[s] for s in stems]), labels) if 0 < labels.sum() < len(labels) else float("nan")
    good = [s for s in stems if s in facts]
    names = list(facts[good[0]])
    rhos = [spearmanr([objects[s] for s in good], [facts[s][n] for s in good])[0] for n in names]
    return f"| {name} | {o_roc * 100:.1f} | " + " / ".join(f"{r:+.2f}" for r in rhos) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("meta", type=Path)
    parser.add_argument("category")
    parser.add_argument("log", type=Path)
    parser.add_argument("--weights", type=float, nargs="*", default=[])
    args = parser.parse_args()
    scans = json.loads(args.meta.read_text())["classes"][args.category]["scans"]
    rows = read_log(args.log)
    facts = {stem: nuisance_values(scans[stem]) for stem in rows if scans[stem].get("anomaly_fraction", 1) == 0}
    good = len(facts)
    print(f"{args.category}: {len(rows)} scans logged, {good} good")
    for name in next(iter(rows.values())):
        print(row(name, {s: v[name] for s, v in rows.items()}, facts))
    for weight in args.weights:
        print(row(f"product - {weight} x twin_loo", {s: v["product"] - weight * v["twin_loo"] for s, v in rows.items()},
                  facts))


if __name__ == "__main__":
    main()
