"""The nuisance check with the power to decide it: each class's good scans of several seeds.

Per class and seed a benchmark has 20 good scans, too few to tell |rho| = 0.3 from chance
(`nuisance_null.md`: a detector whose scores follow no nuisance still fails "every |rho| <
0.3" with probability 1 - 2.7e-18). Here the good scans of one class over several seeds are
pooled, ranked within each seed first (`metrics.nuisance.pooled_nuisance`: a seed whose
scores run higher overall must not make a correlation), so each class x nuisance value rests
on 20 x seeds scans. The same statistic on scores drawn independently of the nuisances gives
the chance level beside it; Benjamini-Hochberg over all values of a method says which
correlations are more than chance.

A build with more good scans does the same in one seed: `mvr3d make-benchmark --preset
standard --good-scans 100 --seed 3 ...`, benchmarked as usual, then `--seeds 3` here (100
good scans a class: chance P(|rho| >= 0.3) ~ 0.003).

Reads what `mvr3d benchmark` runs already recorded (object scores per class) and the
builds' `meta.json` (each scan's nuisances); computes nothing on a GPU.

    python benchmarks/nuisance_seeds.py --seeds 0 1 2 --data '/work/data/std_s{seed}*' \\
        --method 'template=benchmarks/results/realistic/template-dense-s{seed}' \\
        --method 'mvr-reference=benchmarks/results/realistic/mvr-ring4x30+4x60-s{seed}*:sparse1.5' \\
        --out benchmarks/nuisance_seeds.md
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np
from scipy.stats import false_discovery_control

from common import markdown_table
from mvr3d.metrics.nuisance import NUISANCES, nuisance_values, pooled_nuisance
from mvr3d.utils.atomic import atomic_write_text

BAR = 0.3


def one_path(pattern: str, seed: int) -> Path:
    found = sorted(glob.glob(pattern.format(seed=seed)))
    if len(found) != 1:
        raise SystemExit(f"{pattern.format(seed=seed)!r} must match exactly one folder, found {found}")
    return Path(found[0])


def object_scores(run: Path, variant: str | None) -> dict[str, dict[str, float]]:
    """class -> {stem: object score} of one run: a `benchmark` results.json, or a variants
    run's classes/*.json (``variant`` names which)."""
    if (run / "results.json").exists() and variant is None:
        return {row["category"]: row["object_scores"] for row in json.loads((run / "results.json").read_text())["classes"]}
    rows = {}
    for path in sorted((run / "classes").glob("*.json")):
        entry = json.loads(path.read_text())
        rows[entry["category"]] = (entry["variants"][variant] if variant else entry)["object_scores"]
    return rows


def per_class_seeds(spec: str, seeds: list[int], data: str) -> dict[str, list[tuple[list[float], dict[str, list[float]]]]]:
    """class -> one (good scores, {nuisance: values}) per seed."""
    pattern, _, variant = spec.partition(":")
    out: dict[str, list] = {}
    for seed in seeds:
        scores = object_scores(one_path(pattern, seed), variant or None)
        meta = json.loads((one_path(data, seed) / "meta.json").read_text())
        for name, by_stem in scores.items():
            facts = meta["classes"][name]["scans"]
            good = [stem for stem in by_stem if stem.endswith("_good")]
            values = {nuisance: [nuisance_values(facts[stem])[nuisance] for stem in good] for nuisance in NUISANCES}
            out.setdefault(name, []).append(([by_stem[stem] for stem in good], values))
    return out


def good_per_seed(data: str, seeds: list[int]) -> list[int]:
    """Good test scans per class in each seed's build (20 in the standard preset; more with
    ``make-benchmark --good-scans``): the chance level depends on them."""
    counts = []
    for seed in seeds:
        classes = json.loads((one_path(data, seed) / "meta.json").read_text())["classes"]
        counts.append(min(entry["test_good"] for entry in classes.values()))
    return counts


def chance(sizes: list[int], draws: int, rng: np.random.Generator) -> np.ndarray:
    """|rho| of the same pooled statistic on scores independent of one nuisance."""
    rhos = []
    for _ in range(draws):
        strata = [(rng.normal(size=n), {"noise": rng.normal(size=n)}) for n in sizes]
        rhos.append(abs(pooled_nuisance(strata)[0].rho))
    return np.asarray(rhos)


def method_table(name: str, by_class: dict[str, list], seeds: list[int]) -> tuple[str, list[float], list[float]]:
    rows, rhos, p_values = [], [], []
    for category, strata in sorted(by_class.items()):
        if len(strata) != len(seeds):
            continue
        found = pooled_nuisance(strata)
        rhos += [abs(c.rho) for c in found]
        p_values += [c.p_value for c in found]
        worst = max(found, key=lambda c: abs(c.rho))
        cells = [f"{c.rho:+.2f}" for c in sorted(found, key=lambda c: NUISANCES.index(c.nuisance))]
        rows.append([category, str(found[0].scans), *cells, f"{abs(worst.rho):.2f} ({worst.nuisance})"])
    table = markdown_table(["class", "good scans", *NUISANCES, "largest abs(rho)"], rows)
    return f"### {name}\n\n{table}", rhos, p_values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--data", required=True, help="the seeds' benchmark folders, '{seed}' in the pattern")
    parser.add_argument("--method", action="append", required=True,
                        help="NAME=RUN_PATTERN[:VARIANT], '{seed}' in the pattern (glob allowed)")
    parser.add_argument("--draws", type=int, default=5000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sizes = good_per_seed(args.data, args.seeds)
    null = chance(sizes, args.draws, np.random.default_rng(0))
    p_chance = float(np.mean(null >= BAR))
    lines = [f"Nuisance check pooled over seeds {', '.join(map(str, args.seeds))}: per class and nuisance, Spearman rho "
             f"of the good scans' object scores ({' + '.join(map(str, sizes))} a class, ranked within each seed). Chance (scores "
             f"independent of the nuisance, {args.draws} draws): P(abs rho >= {BAR}) = {p_chance:.4f}, 95th / 99th "
             f"percentile {np.quantile(null, 0.95):.2f} / {np.quantile(null, 0.99):.2f}.", ""]
    summary = []
    for spec in args.method:
        name, _, pattern = spec.partition("=")
        text, rhos, p_values = method_table(name, per_class_seeds(pattern, args.seeds, args.data), args.seeds)
        lines += [text, ""]
        significant = int(np.sum(false_discovery_control(p_values) < 0.05)) if p_values else 0
        summary.append([name, str(len(rhos)), str(sum(r >= BAR for r in rhos)), f"{len(rhos) * p_chance:.1f}",
                        f"{(1 - p_chance) ** len(rhos):.2f}", f"{max(rhos):.2f}", str(significant)])
    lines += ["### Summary", "", markdown_table(
        ["method", "values", f"values >= {BAR}", "expected by chance", "P(all < bar) by chance", "largest",
         "more than chance (BH, 5 %)"], summary)]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
