"""``mvr3d predict``: score scans with a saved detector."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from pathlib import Path

from mvr3d.cli.common import output_lock
from mvr3d.cli.options import field_help
from mvr3d.detectors import Detector, load_detector
from mvr3d.engine import predict_files
from mvr3d.engine.predict import Threshold, check_output
from mvr3d.engine.scaleout import (
    INSTALL_HINT,
    WorkerSpec,
    default_threads,
    device_batches,
    parse_devices,
    predict_scaled,
    ray_batches,
    require_ray,
)
from mvr3d.errors import InputError
from mvr3d.models import MVRConfig, MVRDetector, Runtime
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
    parser.add_argument("--batch", type=int,
                        help="scans scored together (default: the method's, 32 for template, 4 for MVR)")
    parser.add_argument("--compile", action="store_true", help=field_help(Runtime, "compile") + "; MVR only")
    parser.add_argument("--report", action="store_true",
                        help="also write OUT/report.html: verdicts, score histogram, regions and 3D heatmaps of "
                             "every part (offline; needs the 'report' extra)")
    parser.add_argument("--fail-exit-code", action="store_true",
                        help="exit with status 1 when any scan fails its threshold (set by `fit --false-alarm-rate`)")
    add_scaleout_options(parser)
    parser.add_argument("--devices", metavar="LIST",
                        help="score on several devices of this machine, one worker process each (e.g. "
                             "cuda:0,cuda:1 or cpu,cpu); a rerun skips the scans already finished")
    parser.set_defaults(func=run)


def add_scaleout_options(parser: argparse.ArgumentParser) -> None:
    """--ray and --ray-workers (benchmark has them too)."""
    parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="run on a Ray cluster: ADDRESS (e.g. ray://head:10001 or auto), or a new local one "
                             f"when left out; a rerun resumes (needs the 'ray' extra: {INSTALL_HINT})")
    parser.add_argument("--ray-workers", type=int, metavar="N",
                        help="Ray workers at once (default: one per GPU of the cluster, or one per CPU without GPUs)")


def run(args: argparse.Namespace) -> int:
    # Before the lock, which creates the folder (and its lock file) even among the inputs.
    if args.no_txt and args.no_heatmaps:
        raise InputError("--no-txt with --no-heatmaps would keep no point scores; drop one of them")
    check_output(args.input, args.output, heatmaps=not args.no_heatmaps, txt=not args.no_txt)
    devices = _check_scaleout(args)
    # Scaled out, the workers load their own copies; this one only describes the run and
    # holds the threshold, so it stays off the GPUs the workers need.
    device = "cpu" if devices or args.ray is not None else args.device
    detector = _with_options(load_detector(args.checkpoint, device=device), args)
    threshold = detector.threshold_
    args.batch = args.batch or detector.score_batch
    if threshold is None and args.fail_exit_code:
        raise InputError("--fail-exit-code needs a threshold; this checkpoint has none (fit it with "
                         "--false-alarm-rate, the default)", args.checkpoint)
    if threshold is None and not args.no_heatmaps:
        print("note: this checkpoint has no threshold, so each PLY heatmap spans its own scan's score range and "
              "colours do not compare across parts; fit with --false-alarm-rate (the default) for one scale",
              file=sys.stderr)
    with output_lock(args.output):
        if devices or args.ray is not None:
            rows = _predict_scaled(detector, threshold, devices, args)
        else:
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


def _check_scaleout(args: argparse.Namespace) -> list[str]:
    """The --devices list (empty without it); refuses flags that cannot go together."""
    if args.ray is not None and args.devices:
        raise InputError("--ray and --devices exclude each other: Ray places its workers itself")
    if args.ray_workers is not None and args.ray is None:
        raise InputError("--ray-workers needs --ray")
    if args.ray is not None:
        require_ray()  # before any work, the one line saying how to get it
        return []
    if args.devices is None:
        return []
    if args.device is not None:
        raise InputError("--device and --devices exclude each other; list the devices in --devices")
    return parse_devices(args.devices)


def _predict_scaled(detector: Detector, threshold: Threshold | None, devices: list[str],
                    args: argparse.Namespace) -> list[dict]:
    # Each worker applies --max-points / --compile with this command's own function.
    spec = WorkerSpec(args.checkpoint, functools.partial(_with_options, args=args),
                      default_threads(max(1, len(devices))))
    if devices:
        batches = device_batches(spec, devices)
    else:
        batches = ray_batches(spec, args.ray or None, args.ray_workers, args.device)
    return predict_scaled(detector, spec, args.input, args.output, batches, heatmaps=not args.no_heatmaps,
                          batch=args.batch, threshold=threshold, txt=not args.no_txt)


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
    if args.max_points is not None:
        detector.config = MVRConfig.from_dict({**detector.config.to_dict(), "max_points": args.max_points})
    if args.compile:
        detector.runtime = dataclasses.replace(detector.runtime, compile=True)
    return detector
