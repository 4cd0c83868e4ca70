"""``mvr3d demo``: the whole pipeline on built-in shapes, offline, in a few minutes on a CPU."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mvr3d.cli.common import output_lock
from mvr3d.engine.demo import run_demo


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run fit, predict and evaluation on built-in demo data")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    parser.add_argument("--weights", help="backbone weights file, or 'random' (default: offline DINOv2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    with output_lock(args.out):
        demo = run_demo(args.out, args.seed, args.weights)
    print((demo.results_dir / "results.md").read_text())
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    print(f"  data:        {demo.data}")
    print(f"  results:     {demo.results_dir / 'results.json'}")
    for path in demo.predictions:
        print(f"  predictions: {path}  (<scan>.txt scores, <scan>.ply heatmaps, scores.csv)")
    return 0
