"""What the variant scripts share (template_variants.py, mvr_reference_variants.py,
mvr_multi_template.py): their common options, the per-class loop that resumes, each
variant's O-ROC, P-ROC and good-scan nuisance correlations from its object and point
scores, and the table of all of them."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common import machine
from mvr3d.data.real3d import list_categories
from mvr3d.metrics.nuisance import nuisance_correlations
from mvr3d.metrics.ranking import PooledScores, auroc
from mvr3d.utils.atomic import atomic_write_text
from mvr3d.utils.provenance import provenance


def variant_parser(doc: str) -> argparse.ArgumentParser:
    """--data, --out, --classes and --seed, which every variant script takes."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--classes", nargs="*")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def run_classes(args: argparse.Namespace, run_class: Callable[[str], dict], settings: dict | None = None) -> None:
    """``run_class(category)`` for every class without a result in OUT/classes yet (a rerun
    resumes), then OUT/table.md of all of them; with ``settings``, OUT/run.json records them
    with the data, machine and provenance."""
    folder = args.out / "classes"
    folder.mkdir(parents=True, exist_ok=True)
    if settings is not None:
        atomic_write_text(args.out / "run.json", json.dumps({
            **settings, "data": str(args.data), "machine": machine(), "provenance": provenance()}, indent=1) + "\n")
    results = []
    for category in args.classes or list_categories(args.data):
        target = folder / f"{category}.json"
        if not target.exists():
            result = run_class(category)
            atomic_write_text(target, json.dumps(result))
            print(category, {n: (round(v["o_roc"], 3), round(v["p_roc"], 3)) for n, v in result["variants"].items()},
                  flush=True)
        results.append(json.loads(target.read_text()))
    text = table(results)
    atomic_write_text(args.out / "table.md", text)
    print(text)


def facts_of(root: Path, category: str) -> dict[str, dict]:
    """Each test scan's nuisances, from the benchmark's meta.json."""
    meta = json.loads((root / "meta.json").read_text())
    return {stem: dict(entry) for stem, entry in meta["classes"][category]["scans"].items()}


def variant_results(objects: dict[str, dict[str, float]], pooled: dict[str, PooledScores], stems: list[str],
                    labels: list[int], facts: dict[str, dict]) -> dict[str, dict]:
    """Per variant: O-ROC, P-ROC, nuisance correlations of the good scans, object scores."""
    good = {stem for stem, label in zip(stems, labels, strict=True) if label == 0}
    out = {}
    for name, by_stem in objects.items():
        correlations = nuisance_correlations({s: v for s, v in by_stem.items() if s in good}, facts)
        worst = max(correlations, key=lambda c: abs(c.rho), default=None)
        out[name] = {
            "o_roc": auroc(np.array([by_stem[s] for s in stems]), np.array(labels)),
            "p_roc": pooled[name].auroc(),
            "nuisance": [c.to_dict() for c in correlations],
            "worst_nuisance": None if worst is None else [worst.nuisance, worst.rho],
            "object_scores": by_stem,
        }
    return out


def table(results: list[dict]) -> str:
    """One row per variant: O-ROC/P-ROC per class, the means and the largest nuisance |rho|."""
    names = list(results[0]["variants"])
    lines = ["| variant | " + " | ".join(r["category"] for r in results) + " | mean | max abs(rho) |",
             "|---" * (len(results) + 3) + "|"]
    for name in names:
        cells = [r["variants"][name] for r in results]
        mean_o = np.mean([c["o_roc"] for c in cells]) * 100
        mean_p = np.mean([c["p_roc"] for c in cells]) * 100
        worst = max((abs(c["worst_nuisance"][1]) for c in cells if c["worst_nuisance"]), default=float("nan"))
        row = [f"{c['o_roc'] * 100:.1f}/{c['p_roc'] * 100:.1f}" for c in cells]
        lines.append(f"| {name} | " + " | ".join(row) + f" | {mean_o:.1f}/{mean_p:.1f} | {worst:.2f} |")
    return "\n".join(lines) + "\n"
