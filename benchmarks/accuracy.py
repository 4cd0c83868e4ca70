"""Accuracy of MVR (and ablations) on a Real3D-AD-layout benchmark; tables under docs/.

    python benchmarks/accuracy.py --data ROOT --out runs/accuracy --experiment main
    python benchmarks/accuracy.py --data ROOT --out runs/accuracy --experiment views --classes a b

Each experiment is a list of (label, MVRConfig overrides); every run is an ordinary
``mvr3d benchmark`` run (resumable, results.json with config, versions, git hash), and
the script appends a Markdown table per experiment to ``--table``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from common import machine
from mvr3d.engine.benchmark import markdown_table, run_benchmark
from mvr3d.engine.results import ClassResult
from mvr3d.models import MVRConfig
from mvr3d.render import RenderConfig
from mvr3d.utils.atomic import atomic_write_text

BASE_RENDER = dict(render_size=672, image_size=224, depth_range="scan")


def render(**changes) -> RenderConfig:
    return RenderConfig(**{**BASE_RENDER, **changes})


EXPERIMENTS: dict[str, list[tuple[str, dict]]] = {
    "main": [("MVR ViT-S, 27 views", {"views": "paper27"}), ("MVR ViT-S, 3 views (default)", {"views": "paper3"})],
    "image": [
        (f"{content}, depth range {rng}", {"render": render(content=content, depth_range=rng)})
        for content in ("depth", "shading", "depth+shading")
        for rng in ("scan", "near")
    ],
    "views": [(f"{n} views", {"views": n}) for n in (1, 3, 9, 15, 27)],
    "resolution": [
        (f"render {size}", {"render": render(render_size=size)}) for size in (224, 448, 672, 896)
    ],
    "smoothing": [(f"k-NN smoothing k={k}", {"smoothing_k": k}) for k in (0, 16)],
    "training": [
        ("64 augmented copies", {"augment_rotations": 64}),
        ("64 augmented copies, 1000 iterations", {"augment_rotations": 64, "iterations": 1000}),
        ("8 augmented copies, 1000 iterations", {"iterations": 1000}),
    ],
    "shading": [
        (f"shading normals smoothed, sigma {sigma}", {"render": render(shading_sigma=sigma)})
        for sigma in (1.0, 2.0, 3.0, 4.5)
    ],
    "deviation": [
        (f"MVR + template deviation, weight {w}", {"deviation_weight": w}) for w in (1.0, 0.5)
    ],
    "noise": [(f"scanner-noise augmentation {n}", {"augment_noise": n}) for n in (0.001, 0.002)],
    "quick": [("quick CPU check", {
        "render": render(render_size=336, image_size=112), "views": 9, "iterations": 100,
        "augment_rotations": 2, "map_blur_sigma": 2.0,
    })],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--experiment", nargs="+", default=["main"], choices=sorted(EXPERIMENTS))
    parser.add_argument("--classes", nargs="+")
    parser.add_argument("--base", type=Path, help="JSON of MVRConfig fields every run starts from")
    parser.add_argument("--table", type=Path, default=Path("docs/accuracy_runs.md"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", type=int, nargs="+", help="run only these settings (0-based) of each experiment")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    base = {"seed": args.seed, **(json.loads(args.base.read_text()) if args.base else {})}
    for experiment in args.experiment:
        rows: dict[str, list[ClassResult]] = {}
        print(f"[{experiment}] seed {args.seed}", flush=True)
        timings = []
        settings = EXPERIMENTS[experiment]
        if args.settings:
            settings = [settings[i] for i in args.settings]
        for label, overrides in settings:
            config = MVRConfig.from_dict({**base, "render": render(), **overrides})
            slug = label.replace(" ", "_").replace(",", "").replace("=", "")
            out = args.out / experiment / f"{slug}_seed{args.seed}"
            started = time.perf_counter()
            summary = run_benchmark(args.data, out, config, classes=args.classes, progress=False)
            timings.append((label, time.perf_counter() - started, summary))
            rows[label] = summary.classes
            print(f"[{experiment}] {label}: mean O-ROC {summary.mean_of('o_roc'):.3f} "
                  f"P-ROC {summary.mean_of('p_roc'):.3f}", flush=True)
        append_table(args.table, experiment, rows, timings)


def append_table(path: Path, experiment: str, rows: dict, timings: list) -> None:
    # MVRConfig's device "auto" runs on the GPU whenever there is one (so does machine('cuda')).
    lines = [f"## {experiment} ({machine('cuda')}, {time.strftime('%Y-%m-%d %H:%M')})", "", markdown_table(rows)]
    lines.append("| run | mean O-AUPR | mean P-AUPR | fit s/class | predict s/object | git |")
    lines.append("|---|---|---|---|---|---|")
    for label, _, summary in timings:
        fit = np.mean([c.fit_seconds for c in summary.classes])
        pred = np.mean([c.predict_seconds_per_object for c in summary.classes])
        lines.append(
            f"| {label} | {summary.mean_of('o_aupr') * 100:.1f} | {summary.mean_of('p_aupr') * 100:.1f} "
            f"| {fit:.1f} | {pred:.3f} | {summary.provenance.get('git')} |"
        )
    previous = path.read_text() if path.exists() else "# Accuracy runs (appended by benchmarks/accuracy.py)\n"
    atomic_write_text(path, previous + "\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
