"""What the variant scripts share (template_variants.py, mvr_reference_variants.py): each
variant's O-ROC, P-ROC and good-scan nuisance correlations from its object and point
scores, and the table of all of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mvr3d.metrics.nuisance import nuisance_correlations
from mvr3d.metrics.ranking import PooledScores, auroc


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
