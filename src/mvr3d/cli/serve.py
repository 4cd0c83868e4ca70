"""``mvr3d serve``: answer inspections over HTTP with a fitted detector."""

from __future__ import annotations

import argparse
from pathlib import Path

from mvr3d.detectors import load_detector
from mvr3d.errors import InputError
from mvr3d.service.app import (
    BATCH_WINDOW_S,
    DEFAULT_MAX_UPLOAD_MB,
    MAX_BATCH,
    create_app,
    require_service,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve a fitted detector over HTTP (POST /inspect?filename=NAME with the scan as body)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="folder written by `mvr3d fit`")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--device", help="override the checkpoint's device")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                        help=f"largest scan file accepted, in MiB (default {DEFAULT_MAX_UPLOAD_MB}); larger ones get 413")
    parser.add_argument("--max-batch", type=int, default=MAX_BATCH,
                        help=f"most requests scored together (default {MAX_BATCH})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _, uvicorn = require_service()  # before loading a model, so a missing extra fails fast
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be in 1-65535, got {args.port}")
    if args.max_upload_mb <= 0 or args.max_batch < 1:
        raise InputError("--max-upload-mb must be positive and --max-batch at least 1")
    detector = load_detector(args.checkpoint, device=args.device)
    app = create_app(detector, int(args.max_upload_mb * 2**20), BATCH_WINDOW_S, args.max_batch)
    threshold = "with" if detector.threshold_ is not None else "without"
    print(f"serving {detector.name} from {args.checkpoint} ({threshold} a pass/fail threshold) on "
          f"http://{args.host}:{args.port}; POST /inspect?filename=NAME, GET /health")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
