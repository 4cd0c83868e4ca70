"""O-ROC and the good-scan nuisance check from the per-scan lines of a variant run's log, for
runs cut short (benchmarks/mvr_reference_variants.py prints one JSON line a scan).

  usage: python benchmarks/partial_table.py --data ROOT LOG [LOG ...] [--variants NAME ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mvr3d.metrics.nuisance import nuisance_correlations
from mvr3d.metrics.ranking import auroc
from variant_tables import facts_of


def scans_in(log: Path) -> list[dict]:
    return [json.loads(line[5:]) for line in log.read_text().splitlines() if line.startswith("scan {")]


def rows(data: Path, log: Path, variants: list[str] | None) -> list[str]:
    scans = scans_in(log)
    if not scans:
        return [f"| {log.name} | no scans scored |"]
    category = scans[0]["category"]
    facts = facts_of(data, category)
    labels = np.array([s["label"] for s in scans])
    out = []
    for name in variants or list(scans[0]["objects"]):
        values = np.array([s["objects"][name] for s in scans])
        good = {s["scan"]: s["objects"][name] for s in scans if s["label"] == 0}
        rhos = " / ".join(f"{c.rho:+.2f}" for c in nuisance_correlations(good, facts))
        out.append(f"| {category} ({len(good)} good, {int(labels.sum())} defective) | {name} | "
                   f"{auroc(values, labels) * 100:.1f} | {rhos} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("logs", type=Path, nargs="+")
    parser.add_argument("--variants", nargs="*")
    args = parser.parse_args()
    print("| class (scans scored) | variant | O-ROC | rho view x / y / z / visible / points / noise |\n|---|---|---|---|")
    for log in args.logs:
        print("\n".join(rows(args.data, log, args.variants)))


if __name__ == "__main__":
    main()
