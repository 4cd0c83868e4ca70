"""``mvr3d fit``: train a detector on the normal scans of one class."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mvr3d.cli.common import add_model_options, config_from_args
from mvr3d.data import open_dataset
from mvr3d.models import MVRDetector


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("fit", help="train a detector on normal scans")
    parser.add_argument("--data", type=Path, required=True, help="dataset root (Real3D-AD or folder layout)")
    parser.add_argument("--class", dest="category", help="class folder (Real3D-AD layout)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    add_model_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    train = open_dataset(args.data, args.category, "train")
    started = time.perf_counter()
    detector = MVRDetector(config).fit(train)
    detector.save(args.out, overwrite=args.overwrite)
    print(f"fitted on {len(train)} scans in {time.perf_counter() - started:.1f} s; saved to {args.out}")
    return 0
