"""``mvr3d report``: one offline HTML page comparing benchmark results."""

from __future__ import annotations

import argparse
from pathlib import Path

from mvr3d.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="write an HTML report comparing benchmark results")
    parser.add_argument(
        "results", nargs="+", type=Path, metavar="RESULTS",
        help="results.json files of `mvr3d benchmark` (or folders holding one), one per method/run",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for report.html and figures/")
    parser.add_argument(
        "--predictions", action="append", default=[], metavar="CLASS=DIR",
        help="`mvr3d predict` output of one class (repeatable); a plain DIR means one "
        "sub-folder per class, as `mvr3d demo` writes",
    )
    parser.add_argument(
        "--data", type=Path, help="dataset root with the ground truth (default: from results.json)"
    )
    parser.set_defaults(func=run)


def parse_predictions(values: list[str]) -> dict[str, Path]:
    """``CLASS=DIR`` pairs, or a folder whose sub-folders are named after the classes."""
    folders: dict[str, Path] = {}
    for value in values:
        for category, folder in _expand(value):
            if category in folders:
                raise InputError(f"--predictions names class {category!r} twice")
            folders[category] = folder
    return folders


def _expand(value: str) -> list[tuple[str, Path]]:
    category, sep, folder = value.partition("=")
    if sep:
        if not category or not folder:
            raise InputError(f"--predictions expects CLASS=DIR, got {value!r}")
        return [(category, Path(folder))]
    parent = Path(value)
    if not parent.is_dir():
        raise InputError("predictions folder not found", parent)
    found = [(p.name, p) for p in sorted(parent.iterdir()) if (p / "scores.csv").is_file()]
    if not found:
        hint = "give CLASS=DIR" if (parent / "scores.csv").is_file() else "no sub-folder has scores.csv"
        raise InputError(f"cannot tell the class of these predictions: {hint}", parent)
    return found


def run(args: argparse.Namespace) -> int:
    from mvr3d.visualization.report import write_report  # local: keeps `mvr3d --help` fast

    predictions = parse_predictions(args.predictions)
    path = write_report(args.results, args.out, predictions or None, args.data)
    print(f"wrote {path}")
    return 0
