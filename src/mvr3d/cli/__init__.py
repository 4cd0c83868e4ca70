"""The ``mvr3d`` command line; each sub-command lives in its own module and mirrors the API."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mvr3d import __version__
from mvr3d.errors import MVR3DError

# Sub-command name -> module under mvr3d.cli exposing ``register(subparsers)``.
COMMANDS = {
    "demo": "demo",
    "make-benchmark": "make_benchmark",
    "render": "render",
    "fit": "fit",
    "predict": "predict",
    "benchmark": "benchmark",
    "weights": "weights",
    "report": "report",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mvr3d", description="Unsupervised 3D anomaly detection by multi-view reconstruction."
    )
    parser.add_argument("--version", action="version", version=f"mvr3d {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMANDS.values():
        importlib.import_module(f"mvr3d.cli.{module_name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except MVR3DError as error:
        print(f"mvr3d {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # The machine's state (disk full, permissions, a path taken by a file): one line.
        where = f"{error.filename}: " if error.filename else ""
        print(f"mvr3d {args.command}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mvr3d {args.command}: interrupted", file=sys.stderr)
        return 130
