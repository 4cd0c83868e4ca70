"""``mvr3d export``: write an MVR checkpoint's network as ONNX or TorchScript."""

from __future__ import annotations

import argparse
from pathlib import Path

from mvr3d.detectors import load_detector
from mvr3d.engine.export import FORMATS, TOLERANCE_RULE, export_network, require_onnxruntime


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export an MVR checkpoint's network as ONNX or TorchScript",
        description="Export the network of an MVR checkpoint: rendered RGB views (batch, 3, H, W) in [0, 1] "
        "to token-level anomaly maps (batch, H/14, W/14), batch axis dynamic. The export is run in its own "
        f"runtime and compared with eager PyTorch before it is written (tolerance {TOLERANCE_RULE}); "
        "FILE.json records the check, the input/output contract and the versions.",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, metavar="DIR",
                        help="folder written by `mvr3d fit --method mvr`")
    parser.add_argument("--format", choices=FORMATS, default="onnx",
                        help="onnx (needs `pip install 'mvr3d[export]'`) or torchscript (default onnx)")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE",
                        help="file to write (replaced if it exists), with FILE.json beside it")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.format == "onnx":
        require_onnxruntime()  # before loading the checkpoint, so a missing extra fails fast
    # On the CPU: the export is a one-off, and the file should not depend on a GPU.
    detector = load_detector(args.checkpoint, device="cpu")
    report = export_network(detector, args.out, args.format, checkpoint=args.checkpoint)
    print(report.summary())
    print(f"wrote {report.sidecar}")
    return 0
