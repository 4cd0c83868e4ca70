"""``mvr3d predict``: score scans with a saved detector."""

from __future__ import annotations

import argparse
from pathlib import Path

from mvr3d.cli.common import output_lock
from mvr3d.engine import predict_files
from mvr3d.models import MVRDetector


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="score scans with a fitted detector")
    parser.add_argument("--checkpoint", type=Path, required=True, help="folder written by `mvr3d fit`")
    parser.add_argument("--input", type=Path, required=True, help="a scan file or a folder of scans")
    parser.add_argument("--output", type=Path, required=True, help="folder for scores and heatmaps")
    parser.add_argument("--no-heatmaps", action="store_true", help="skip the coloured PLY files")
    parser.add_argument("--device", help="override the checkpoint's device")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    detector = MVRDetector.load(args.checkpoint, device=args.device)
    with output_lock(args.output):
        rows = predict_files(detector, args.input, args.output, heatmaps=not args.no_heatmaps)
    width = max(len(r["file"]) for r in rows)
    for row in rows:
        print(f"{row['file']:<{width}}  {row['object_score']:.5f}")
    print(f"wrote {len(rows)} result(s) to {args.output}")
    return 0
