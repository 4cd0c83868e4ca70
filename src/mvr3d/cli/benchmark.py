"""``mvr3d benchmark``: fit, predict and evaluate every class of a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from mvr3d.cli.common import (
    add_method_option,
    add_model_options,
    check_method_options,
    config_from_args,
    output_lock,
    runtime_from_args,
)
from mvr3d.cli.predict import add_scaleout_options
from mvr3d.engine.benchmark import run_benchmark
from mvr3d.engine.scaleout import benchmark_on_ray, require_ray
from mvr3d.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("benchmark", help="evaluate a method on every class of a dataset")
    parser.add_argument("--data", type=Path, required=True, help="Real3D-AD layout root")
    add_method_option(parser)
    parser.add_argument("--classes", nargs="+", help="classes to run (default: all)")
    parser.add_argument("--out", type=Path, required=True, help="results folder (reruns resume)")
    parser.add_argument("--false-alarm-rate", type=float, metavar="RATE",
                        help="also calibrate each class's pass/fail threshold as `fit --false-alarm-rate` does and "
                             "report how often good and defective test scans fail it")
    add_model_options(parser)
    add_scaleout_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_method_options(args)
    config, runtime = config_from_args(args), runtime_from_args(args)
    if args.ray_workers is not None and args.ray is None:
        raise InputError("--ray-workers needs --ray")
    if args.ray is not None:
        require_ray()  # before any work, the one line saying how to get it
    with output_lock(args.out):
        if args.ray is not None:
            summary = benchmark_on_ray(args.data, args.out, config, args.method, args.classes, address=args.ray or None,
                                       workers=args.ray_workers, device=runtime.device,
                                       false_alarm_rate=args.false_alarm_rate, runtime=runtime)
        else:
            summary = run_benchmark(args.data, args.out, config, args.method, args.classes,
                                    false_alarm_rate=args.false_alarm_rate, runtime=runtime)
    print((args.out / "results.md").read_text())
    print(f"mean O-ROC {summary.mean_of('o_roc'):.3f}  P-ROC {summary.mean_of('p_roc'):.3f}; results in {args.out}")
    return 0
