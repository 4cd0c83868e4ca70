"""``mvr3d fit``: train a detector on the normal scans of one class."""

from __future__ import annotations

import argparse
import errno
import logging
import sys
import time
from pathlib import Path

import torch

from mvr3d.cli.common import (
    add_method_option,
    add_model_options,
    check_method_options,
    config_from_args,
    output_lock,
    runtime_from_args,
)
from mvr3d.data import open_dataset
from mvr3d.engine.benchmark import make_detector
from mvr3d.errors import InputError, MVR3DError
from mvr3d.models import MVRConfig, persistence
from mvr3d.models.base import Detector
from mvr3d.models.mvr import checkpoint
from mvr3d.models.mvr.training_state import STATE_NAME
from mvr3d.models.thresholds import DEFAULT_FALSE_ALARM_RATE, check_rate

log = logging.getLogger(__name__)
# Out of disk, quota, read-only: the user's environment, not a bug.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG)
SAVE_EVERY = 50


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("fit", help="train a detector on normal scans")
    parser.add_argument("--data", type=Path, required=True, help="dataset root (Real3D-AD or folder layout)")
    parser.add_argument("--class", dest="category", help="class folder (Real3D-AD layout)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    add_method_option(parser)
    parser.add_argument(
        "--save-every", type=int, metavar="N",
        help="save the training state to OUT/training-state.pt every N iterations; an interrupted fit "
        f"run again with the same arguments resumes from it (default {SAVE_EVERY}; MVR only)",
    )
    parser.add_argument(
        "--false-alarm-rate", type=float, metavar="RATE", default=DEFAULT_FALSE_ALARM_RATE,
        help="calibrate a pass/fail threshold that a normal part exceeds with this probability, from views of "
        "the training scans each scored by a detector fitted on the others (costs about 8 scans scored per "
        f"training scan); 0: no threshold (default {DEFAULT_FALSE_ALARM_RATE})",
    )
    add_model_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_method_options(args)
    if args.false_alarm_rate:
        check_rate(args.false_alarm_rate)
    config = config_from_args(args)
    train = open_dataset(args.data, args.category, "train")
    _check_output(args.out, args.overwrite)
    for path, reason in getattr(train, "skipped", []):
        print(f"warning: skipped {path}: {reason}", file=sys.stderr)
    _hint_cpu_preset(args, config)
    state = args.out / STATE_NAME
    try:
        with output_lock(args.out):
            removed = checkpoint.remove_stale_temps(args.out)
            if removed:
                log.info("removed %d temporary file(s) left by a killed run: %s", len(removed), ", ".join(removed))
            started = time.perf_counter()
            detector = _fit(args, config, train, state)
            detector.save(args.out, overwrite=args.overwrite)
            state.unlink(missing_ok=True)
            if args.false_alarm_rate:
                _calibrate(args, train, detector)
    except OSError as error:
        if error.errno not in _WRITE_ERRNOS:
            raise
        raise MVR3DError(
            f"{args.out}: cannot write the checkpoint ({error.strerror}); what is there is complete, and the "
            "same command resumes from the last saved training state once there is room"
        ) from None
    print(f"fitted on {len(train)} scans in {time.perf_counter() - started:.1f} s; saved to {args.out}")
    return 0


def _hint_cpu_preset(args: argparse.Namespace, config: MVRConfig) -> None:
    """Full-size MVR on a CPU runs for hours: say so before it starts, and what fits in minutes."""
    if args.method != "mvr" or args.preset == "cpu" or config.render.image_size < 224 or config.reference != "student":
        return  # the template reference trains nothing
    device = runtime_from_args(args).device
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        print(f"note: full-size MVR ({config.render.image_size} px views, {config.iterations} iterations) on the "
              "CPU takes hours (~25 s an iteration on 2 cores); --preset cpu fits in about 2 minutes with "
              "smaller views", file=sys.stderr)


def _fit(args: argparse.Namespace, config: MVRConfig, train: object, state: Path) -> Detector:
    """The ``--method`` detector fitted on ``train``; MVR saves its training state as it goes."""
    detector = make_detector(args.method, config, runtime_from_args(args))
    if args.method != "mvr":
        return detector.fit(train)
    if state.is_file():
        print(f"resuming the interrupted fit saved in {state}")
    save_every = SAVE_EVERY if args.save_every is None else args.save_every
    return detector.fit(train, state_file=state, save_every=save_every)


def _calibrate(args: argparse.Namespace, train: object, detector: Detector) -> None:
    """Thresholds from normal views of the training scans; MVR scores its own (one fit is costly)."""
    started = time.perf_counter()
    try:
        threshold = detector.calibrate(train, args.false_alarm_rate)
    except InputError as error:
        print(f"warning: the detector is saved without a pass/fail threshold: {error}", file=sys.stderr)
        return
    threshold.save(args.out)
    print(f"threshold for a {100 * threshold.false_alarm_rate:g} % false-alarm rate: object score "
          f"{threshold.object_threshold:.5g} ({threshold.normal_scans} normal views, {threshold.strategy}, "
          f"{time.perf_counter() - started:.1f} s)")


def _check_output(out: Path, overwrite: bool) -> None:
    """Before any work: never write into a foreign folder or over a checkpoint unasked.

    A folder holding only what a killed fit of ours leaves (training state, weight files
    without config.json, temporary files, a stale lock) is resumed into.
    """
    if out.exists() and not out.is_dir():
        raise InputError("--out exists and is not a folder; choose another --out", out)
    if not out.is_dir():
        return
    complete = persistence.is_checkpoint(out)
    foreign = [] if complete else persistence.foreign_files(out)
    checkpoint.refuse_unsafe_target(out, complete, foreign, overwrite, hint="pass --overwrite to replace it")
