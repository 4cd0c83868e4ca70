"""``mvr3d render``: render a scan from several views and write PNGs plus a contact sheet."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mvr3d.cli.options import add_dataclass_options, given_values, scalar_fields
from mvr3d.errors import InputError
from mvr3d.io import read_points
from mvr3d.render import RenderConfig, make_poses, render_views
from mvr3d.render.poses import views_spec
from mvr3d.render.sheet import save_views


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render",
        help="render a scan to multi-view images",
        description="Render a point cloud from several poses (z-buffer with visibility test) "
        "and write one PNG per view plus contact_sheet.png.",
    )
    parser.add_argument("scan", type=Path, help="point cloud file (PCD, PLY, XYZ/TXT, NPY)")
    parser.add_argument(
        "--views",
        default="27",
        help="number of views (<= 27: the least-rotated paper poses; more: Fibonacci sphere), "
        "'paper27', 'fibonacciN' or 'ringNxT' (one straight view and N views T degrees off it) (default: 27)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    add_dataclass_options(parser.add_argument_group("rendering"), RenderConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = RenderConfig(**given_values(args, (f.name for f in scalar_fields(RenderConfig))))
    poses = make_poses(views_spec(args.views))
    if args.out.exists() and not args.out.is_dir():
        raise InputError("--out exists and is not a folder; choose another --out", args.out)
    points = _read_points(args.scan)
    try:
        multiview = render_views(points, poses, config)
    except InputError as error:
        if error.path is not None:
            raise
        raise InputError(str(error), args.scan) from None
    seen = int(multiview.seen.sum())
    print(
        f"visible in at least one view: {100.0 * seen / multiview.num_points:.1f} % "
        f"of {multiview.num_points:,} points ({multiview.num_views} views)"
    )
    for path in save_views(multiview, args.out):
        print(path)
    return 0


def _read_points(path: Path) -> np.ndarray:
    return read_points(path).points
