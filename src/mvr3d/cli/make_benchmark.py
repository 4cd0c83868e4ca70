"""``mvr3d make-benchmark``: build a Real3D-AD-style benchmark from meshes."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mvr3d.data.builder import make_benchmark
from mvr3d.data.demo import demo_shapes_dir
from mvr3d.data.presets import PRESETS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-benchmark",
        help="build a Real3D-AD-style benchmark (templates, partial test scans, defects)",
        description="Build a Real3D-AD-style benchmark: complete templates for training, "
        "partial posed test scans with bulge/sink defects and per-point labels.",
    )
    parser.add_argument("--shapes", type=Path, default=None, metavar="DIR",
                        help="folder of meshes, one class each (default: built-in demo shapes)")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, metavar="ROOT", help="output folder")
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="tiny", help="size (default tiny)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: preset's)")
    parser.add_argument("--scan-points", type=int, nargs=2, default=None, metavar=("MIN", "MAX"),
                        help="points per test scan, instead of the preset's range (e.g. 100000 100000)")
    parser.add_argument("--good-scans", type=int, default=None, metavar="N",
                        help="good test scans per class, instead of the preset's (e.g. 200 for a nuisance "
                             "check with the power to decide it)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    shapes = args.shapes if args.shapes is not None else demo_shapes_dir()
    start = time.perf_counter()
    meta = make_benchmark(
        shapes, args.out, preset=args.preset, seed=args.seed, workers=args.workers,
        scan_points=None if args.scan_points is None else tuple(args.scan_points),
        good_scans=args.good_scans,
    )
    elapsed = time.perf_counter() - start
    print(f"{meta['preset']} benchmark, seed {meta['seed']}, in {args.out} ({elapsed:.1f} s)")
    print(f"{'class':<18}{'source':<22}{'train':>6}{'good':>6}{'defect':>7}"
          f"{'test points':>17}{'anomalous %':>16}")  # fmt: skip
    for name, entry in meta["classes"].items():
        points = f"{entry['test_points_min']}-{entry['test_points_max']}"
        share = (
            f"{100 * entry['anomaly_fraction_min']:.2f}-{100 * entry['anomaly_fraction_max']:.2f}"
        )
        print(f"{name:<18}{entry['source']:<22}{entry['templates']:>6}{entry['test_good']:>6}"
              f"{entry['test_defective']:>7}{points:>17}{share:>16}")  # fmt: skip
    return 0
