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
    "serve": "serve",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or with ``command`` one whose other sub-commands are bare names:
    a sub-command's module imports what it needs (torch among them), so building only the
    one asked for keeps ``mvr3d --version`` and errors in the arguments fast."""
    parser = argparse.ArgumentParser(
        prog="mvr3d", description="Unsupervised 3D anomaly detection by multi-view reconstruction."
    )
    parser.add_argument("--version", action="version", version=f"mvr3d {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        if command is None or command == name:
            importlib.import_module(f"mvr3d.cli.{module_name}").register(subparsers)
        else:
            subparsers.add_parser(name)
    return parser


def _requested(argv: list[str]) -> str | None:
    """The sub-command to build alone: the first word naming one, or "" (none of them) for
    a bare ``--version``; None when the whole parser is wanted (help, a typo, nothing)."""
    for word in argv:
        if word in COMMANDS:
            return word
        if word in ("-h", "--help") or not word.startswith("-"):
            return None
    return "" if "--version" in argv else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_requested(argv))
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
