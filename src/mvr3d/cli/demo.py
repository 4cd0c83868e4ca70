"""``mvr3d demo``: the whole pipeline on built-in shapes, offline, in a few minutes on a CPU."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mvr3d.cli.common import output_lock
from mvr3d.detectors import DEFAULT_METHOD, list_detectors
from mvr3d.engine.demo import run_demo
from mvr3d.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run fit, predict and evaluation on built-in demo data")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=list_detectors(),
                        help=f"detector to demonstrate (default {DEFAULT_METHOD}); mvr takes ~5 min on 2 CPU cores")
    parser.add_argument("--weights", help="MVR's backbone weights file, or 'random' (default: offline DINOv2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.weights is not None and args.method != "mvr":
        raise InputError(f"--weights only applies to --method mvr, not {args.method}")
    started = time.perf_counter()
    with output_lock(args.out):
        demo = run_demo(args.out, args.seed, args.weights, args.method)
    print((demo.results_dir / "results.md").read_text())
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    print(f"  data:        {demo.data}")
    print(f"  results:     {demo.results_dir / 'results.json'}")
    for path in demo.predictions:
        print(f"  predictions: {path}  (one good and one defective scan: <scan>.txt scores, <scan>.ply heatmaps, "
              "scores.csv)")
    return 0
