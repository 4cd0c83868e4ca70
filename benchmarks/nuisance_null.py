"""How large do nuisance correlations get when scores follow no nuisance at all? (issue 15)

The nuisance check correlates the object scores of a class's good test scans with six
nuisances (Spearman). With 20 good scans per class, sampling alone spreads rho widely, so
the check's bar (|rho| < 0.3 for every class and nuisance) is compared here with what a
detector whose scores are independent of every nuisance gets: scores drawn at random,
correlated with the real nuisance values of each class (``meta.json`` is not needed: rho
under independence does not depend on the nuisance values, only on n).

    python benchmarks/nuisance_null.py [--runs benchmarks/results/realistic/template-dense-s0 ...]

Prints a table and writes ``benchmarks/nuisance_null.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

BAR = 0.3
CLASSES, NUISANCES, SEEDS = 10, 6, 3


def null_rhos(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    return np.array([spearmanr(rng.normal(size=n), rng.normal(size=n))[0] for _ in range(draws)])


def measured(run: Path) -> list[float]:
    """Every per-class |rho| of a benchmark run's results.json."""
    data = json.loads((run / "results.json").read_text())
    return [abs(c["rho"]) for r in data["classes"] for c in r.get("nuisance", []) if c.get("rho") is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, nargs="*", default=[])
    parser.add_argument("--draws", type=int, default=20000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    lines = [f"Spearman rho between scores and a nuisance they do not depend on ({args.draws} random draws "
             "each; seed 0). Values: 10 classes x 6 nuisances, per seed (3 seeds) or pooled over the seeds.", "",
             "| good scans per correlation | values | P(abs rho >= 0.3) | expected values >= 0.3 | "
             "P(all values < 0.3) | 95th / 99th percentile of abs rho |", "|---:|---:|---:|---:|---:|---|"]
    for n, values in ((20, CLASSES * NUISANCES * SEEDS), (60, CLASSES * NUISANCES), (200, CLASSES * NUISANCES)):
        rho = np.abs(null_rhos(n, args.draws, rng))
        p = float(np.mean(rho >= BAR))
        low, high = np.quantile(rho, [0.95, 0.99])
        lines.append(f"| {n} | {values} | {p:.3f} | {values * p:.1f} | {(1 - p) ** values:.1e} | "
                     f"{low:.2f} / {high:.2f} |")
    for run in args.runs:
        rho = measured(run)
        lines.append(f"\n{run}: {sum(r >= BAR for r in rho)} of {len(rho)} per-class values >= {BAR}")
    text = "\n".join(lines) + "\n"
    print(text)
    (Path(__file__).parent / "nuisance_null.md").write_text(text)


if __name__ == "__main__":
    main()
