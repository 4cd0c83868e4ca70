"""Options shared by the sub-commands that build or use a detector."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mvr3d.errors import InputError, MVR3DError
from mvr3d.models import MVRConfig


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--config", type=Path, help="JSON file with MVRConfig fields (flags override it)")
    group.add_argument("--backbone", help="dinov2_vits14 (default), dinov2_vitb14, ..._reg, tiny_test")
    group.add_argument("--weights", help="backbone weights: a .safetensors/.pth file, or 'random'")
    group.add_argument("--views", help="'paper3' (default), 'paper27', 'fibonacciN' or a number of views")
    group.add_argument("--iterations", type=int, help="training iterations (default 300)")
    group.add_argument("--batch-size", type=int)
    group.add_argument("--render-size", type=int, help="z-buffer resolution (default 672)")
    group.add_argument("--image-size", type=int, help="network input resolution (default 224)")
    group.add_argument("--content", choices=["depth", "shading", "depth+shading"])
    group.add_argument("--smoothing-k", type=int, help="k-NN smoothing of point scores (0 = off)")
    group.add_argument("--max-points", type=int, help=MAX_POINTS_HELP)
    group.add_argument("--deviation-weight", type=float, help=DEVIATION_HELP)
    group.add_argument("--seed", type=int)
    group.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    group.add_argument("--compile", action="store_true", default=None, help=COMPILE_HELP)


MAX_POINTS_HELP = (
    "voxel-downsample scans with more points to about this many before scoring; every original "
    "point still gets a score (default: score every point)"
)
DEVIATION_HELP = (
    "add this weight x each point's distance to its registered template (robust z-scores per scan); "
    "not part of MVR, pays with exact templates and geometric defects (default 0: MVR alone)"
)
COMPILE_HELP = (
    "torch.compile the network and renderer for scoring: faster on a GPU after a one-off compile of "
    "~45 s, so worth it for many scans"
)
_TOP_LEVEL = (
    "backbone", "weights", "iterations", "batch_size", "smoothing_k", "max_points", "seed", "device", "compile",
    "deviation_weight",
)
_RENDER = ("render_size", "image_size", "content")


def config_from_args(args: argparse.Namespace) -> MVRConfig:
    data: dict = {}
    if args.config is not None:
        try:
            data = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(f"cannot read config ({error})", args.config) from error
        data = data.get("config", data)  # a checkpoint's config.json works too
    for name in _TOP_LEVEL:
        if getattr(args, name, None) is not None:
            data[name] = getattr(args, name)
    if getattr(args, "views", None) is not None:
        data["views"] = int(args.views) if str(args.views).isdigit() else args.views
    render = dict(data.get("render", {}))
    for name in _RENDER:
        if getattr(args, name, None) is not None:
            render[name] = getattr(args, name)
    if render:
        data["render"] = render
    try:
        return MVRConfig.from_dict(data)
    except TypeError as error:
        raise InputError(f"invalid configuration: {error}") from error


LOCK_NAME = ".mvr3d.lock"


@contextmanager
def output_lock(directory: Path) -> Iterator[None]:
    """Refuse to let two runs write into one output folder at the same time."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / LOCK_NAME
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        owner = lock.read_text().strip() if lock.exists() else "?"
        if owner.isdigit() and not _alive(int(owner)):
            lock.unlink(missing_ok=True)  # left by a run that was killed
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        else:
            raise MVR3DError(
                f"{directory}: another mvr3d run (pid {owner}) is writing here; wait for it or "
                "choose another output folder"
            ) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
