"""``mvr3d predict``: score scans with a saved detector."""

from __future__ import annotations

import argparse
from pathlib import Path

from mvr3d.cli.common import output_lock
from mvr3d.cli.options import field_help
from mvr3d.detectors import Detector, load_detector
from mvr3d.engine import predict_files
from mvr3d.engine.predict import check_output
from mvr3d.errors import InputError
from mvr3d.models import MVRConfig, MVRDetector
from mvr3d.visualization.inspection import write_inspection_report


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="score scans with a fitted detector")
    parser.add_argument("--checkpoint", type=Path, required=True, help="folder written by `mvr3d fit`")
    parser.add_argument("--input", type=Path, required=True, help="a scan file or a folder of scans")
    parser.add_argument("--output", type=Path, required=True, help="folder for scores and heatmaps")
    parser.add_argument("--no-heatmaps", action="store_true", help="skip the coloured PLY files")
    parser.add_argument("--no-txt", action="store_true",
                        help="skip the x y z score text files (~47 bytes a point; the PLY keeps the scores)")
    parser.add_argument("--device", help="override the checkpoint's device")
    parser.add_argument("--max-points", type=int, help=field_help(MVRConfig, "max_points") + "; MVR only")
    parser.add_argument("--batch", type=int, default=4, help="scans scored together (default 4)")
    parser.add_argument("--compile", action="store_true", help=field_help(MVRConfig, "compile") + "; MVR only")
    parser.add_argument("--report", action="store_true",
                        help="also write OUT/report.html: verdicts, score histogram, regions and 3D heatmaps of "
                             "every part (offline; needs the 'report' extra)")
    parser.add_argument("--fail-exit-code", action="store_true",
                        help="exit with status 1 when any scan fails its threshold (set by `fit --false-alarm-rate`)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Before the lock, which creates the folder (and its lock file) even among the inputs.
    if args.no_txt and args.no_heatmaps:
        raise InputError("--no-txt with --no-heatmaps would keep no point scores; drop one of them")
    check_output(args.input, args.output, heatmaps=not args.no_heatmaps, txt=not args.no_txt)
    detector = _with_options(load_detector(args.checkpoint, device=args.device), args)
    threshold = detector.threshold_
    if threshold is None and args.fail_exit_code:
        raise InputError("--fail-exit-code needs a threshold; this checkpoint has none (fit it with "
                         "--false-alarm-rate)", args.checkpoint)
    with output_lock(args.output):
        rows = predict_files(detector, args.input, args.output, heatmaps=not args.no_heatmaps, batch=args.batch,
                             checkpoint=args.checkpoint, threshold=threshold, txt=not args.no_txt)
        if args.report:
            print(f"wrote {write_inspection_report(args.output)}")
    _print_table(rows, threshold is not None)
    print(f"wrote {len(rows)} result(s) to {args.output}")
    failed = [row for row in rows if row.get("verdict") == "fail"]
    if threshold is not None:
        print(f"{len(failed)} of {len(rows)} failed the threshold (false-alarm rate "
              f"{100 * threshold.false_alarm_rate:g} %, object score {threshold.object_threshold:.5g})")
    return 1 if failed and args.fail_exit_code else 0


def _print_table(rows: list[dict], verdicts: bool) -> None:
    width = max(len("file"), *(len(r["file"]) for r in rows))
    extra = "  normalised  verdict  regions" if verdicts else ""
    print(f"{'file':<{width}}  object_score  coverage{extra}")
    for row in rows:
        line = f"{row['file']:<{width}}  {row['object_score']:12.5f}  {row['coverage']:8.3f}"
        if verdicts:
            line += f"  {row['normalised_score']:10.3f}  {row['verdict']:<7}  {row['regions']:7d}"
        print(line)


def _with_options(detector: Detector, args: argparse.Namespace) -> Detector:
    """MVR with ``--max-points`` / ``--compile`` applied; refused for other methods, which
    have no such settings (ignoring them would mislead)."""
    changes = {"max_points": args.max_points} if args.max_points is not None else {}
    if args.compile:
        changes["compile"] = True
    if not changes:
        return detector
    if not isinstance(detector, MVRDetector):
        flags = ", ".join("--" + name.replace("_", "-") for name in changes)
        raise InputError(f"{flags} only apply to MVR checkpoints; {args.checkpoint} holds a {detector.name} detector")
    detector.config = MVRConfig.from_dict({**detector.config.to_dict(), **changes})
    return detector
