"""The ``mvr3d`` command line; each sub-command lives in its own module and mirrors the API."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NamedTuple

from mvr3d import __version__
from mvr3d.errors import MVR3DError


class Command(NamedTuple):
    module: str  # under mvr3d.cli, exposing ``register(subparsers)``
    # The help its register() gives add_parser, repeated so that ``mvr3d --help`` lists the
    # commands without importing them (torch: seconds); tests/test_cli_startup.py keeps
    # the two equal.
    help: str


COMMANDS: dict[str, Command] = {
    "demo": Command("demo", "run fit, predict and evaluation on built-in demo data"),
    "make-benchmark": Command(
        "make_benchmark", "build a Real3D-AD-style benchmark (templates, partial test scans, defects)"),
    "render": Command("render", "render a scan to multi-view images"),
    "fit": Command("fit", "train a detector on normal scans"),
    "predict": Command("predict", "score scans with a fitted detector"),
    "benchmark": Command("benchmark", "evaluate a method on every class of a dataset"),
    "weights": Command("weights", "list backbones or prepare offline weights"),
    "report": Command("report", "write an HTML report comparing benchmark results"),
    "serve": Command(
        "serve", "serve a fitted detector over HTTP (POST /inspect?filename=NAME with the scan as body)"),
    "export": Command("export", "export an MVR checkpoint's network as ONNX or TorchScript"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or with ``command`` one whose other sub-commands are bare (their
    name and help only): a sub-command's module imports what it needs (torch among them),
    so building only the one asked for ("" for none) keeps ``mvr3d --help``, ``--version``
    and errors in the arguments fast."""
    parser = argparse.ArgumentParser(
        prog="mvr3d", description="Unsupervised 3D anomaly detection by multi-view reconstruction."
    )
    parser.add_argument("--version", action="version", version=f"mvr3d {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, spec in COMMANDS.items():
        if command is None or command == name:
            importlib.import_module(f"mvr3d.cli.{spec.module}").register(subparsers)
        else:
            subparsers.add_parser(name, help=spec.help)
    return parser


def _requested(argv: list[str]) -> str | None:
    """The sub-command to build alone: the first word naming one, or "" (none of them) for
    a bare ``--version``; None for top-level help, a typo or no command, which ``main``
    answers with bare sub-commands too (their names and help are all argparse prints)."""
    for word in argv:
        if word in COMMANDS:
            return word
        if word in ("-h", "--help") or not word.startswith("-"):
            return None
    return "" if "--version" in argv else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    requested = _requested(argv)
    parser = build_parser("" if requested is None else requested)
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
