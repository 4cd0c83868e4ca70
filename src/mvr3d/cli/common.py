"""Options shared by the sub-commands that build or use a detector."""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mvr3d.cli.options import add_dataclass_options, field_flag, given_values, scalar_fields
from mvr3d.detectors import list_detectors
from mvr3d.errors import InputError, MVR3DError
from mvr3d.models import MVRConfig
from mvr3d.models.mvr.config import Runtime, split_runtime
from mvr3d.models.mvr.config_check import config_problems
from mvr3d.models.mvr.presets import PRESETS, preset_fields
from mvr3d.models.registry import DEFAULT_METHOD
from mvr3d.render import RenderConfig
from mvr3d.render.poses import views_spec


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """MVR's settings (every field of MVRConfig and its RenderConfig) plus --config; the
    runtime ones (where and how a run executes, not what it computes) in their own group."""
    group = parser.add_argument_group("MVR model (--method mvr)")
    group.add_argument("--config", type=Path, help="JSON file with MVRConfig fields (flags override it)")
    group.add_argument("--preset", choices=sorted(PRESETS),
                       help="starting settings: 'default' (full size, for a GPU), 'cpu' (the demo's 112 px views "
                            "and 80 iterations: a class fits in about 2 minutes on 2 cores) or 'reference' (no "
                            "student: views compared with the registered template's, from the scanned side; "
                            "nothing to train); --config and flags override it")
    add_dataclass_options(group, MVRConfig, parsers={"views": views_spec})
    render = parser.add_argument_group("MVR rendering (--method mvr)")
    add_dataclass_options(render, RenderConfig, defaults=MVRConfig().render)
    runtime = parser.add_argument_group("runtime (not part of the results' config key)")
    add_dataclass_options(runtime, Runtime)


def add_method_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method", default=DEFAULT_METHOD, choices=list_detectors(),
        help=f"detector to use (default {DEFAULT_METHOD}, the most accurate on scans taken from any side; "
             "docs/accuracy.md); the model options other than --seed and --device are MVR's",
    )


_CONFIG_FIELDS = [f.name for f in scalar_fields(MVRConfig)]
_RENDER_FIELDS = [f.name for f in scalar_fields(RenderConfig)]
_RUNTIME_FIELDS = [f.name for f in scalar_fields(Runtime)]
# Options of add_model_options (and fit's --save-every) that only MVR reads; every method
# takes --seed and --device.
MVR_ONLY = tuple(
    ["config", "preset", *(n for n in _CONFIG_FIELDS + _RENDER_FIELDS if n not in ("seed", "device")), "save_every"]
)


def check_method_options(args: argparse.Namespace) -> None:
    """Refuse MVR's options with another method: silently ignoring them would let a user
    believe they changed the result."""
    if args.method == "mvr":
        return
    given = [name for name in MVR_ONLY if getattr(args, name, None) is not None]
    if given:
        flags = ", ".join(field_flag(name) for name in given)
        default = " (the default method)" if args.method == DEFAULT_METHOD else ""
        raise InputError(f"{flags} only apply to --method mvr, not {args.method}{default}; add --method mvr")


def config_from_args(args: argparse.Namespace) -> MVRConfig:
    """MVR's config: the ``--config`` file's fields, overridden by the flags given."""
    preset = preset_fields(getattr(args, "preset", None) or "default")
    data, _ = split_runtime(_config_file(args.config))
    render = {**preset.get("render", {}), **data.get("render", {}), **given_values(args, _RENDER_FIELDS)}
    data = {**preset, **data}
    data.update(given_values(args, _CONFIG_FIELDS))
    if render:  # on top of MVR's render defaults, not RenderConfig's (depth_range differs)
        data["render"] = {**dataclasses.asdict(MVRConfig().render), **render}
    problems = config_problems(data)
    if problems:
        raise InputError(f"invalid configuration: {'; '.join(problems)}")
    try:
        return MVRConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"invalid configuration: {error}") from error


def runtime_from_args(args: argparse.Namespace) -> Runtime:
    """How to run: the runtime fields of a ``--config`` file (a checkpoint's config.json
    saved before :class:`Runtime` was its own object has them), overridden by the flags."""
    _, data = split_runtime(_config_file(args.config))
    data.update(given_values(args, _RUNTIME_FIELDS))
    return Runtime(**data)


def _config_file(source: Path | None) -> dict:
    """The fields of a ``--config`` JSON file (or of a checkpoint's config.json), type-checked."""
    if source is None:
        return {}
    try:
        data = json.loads(Path(source).read_bytes())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read config ({error})", source) from error
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        data = data["config"]  # a checkpoint's config.json works too
    problems = config_problems(data)
    if problems:
        raise InputError(f"invalid configuration: {'; '.join(problems)}", source)
    return data


LOCK_NAME = ".mvr3d.lock"
# A lock file younger than this with no pid in it is being created by a live run.
_FRESH_LOCK_SECONDS = 10.0


@contextmanager
def output_lock(directory: Path) -> Iterator[None]:
    """Refuse to let two runs write into one output folder at the same time.

    The lock file holds the owner's pid and is flock()ed while the run lives, so a lock
    left by a killed run (dead pid, no pid at all, or any other text) is taken over.
    """
    if directory.exists() and not directory.is_dir():
        raise InputError("exists and is not a folder; choose another output folder", directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / LOCK_NAME
    for _ in range(5):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            _take_over_stale(lock, directory)
            continue
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # new file: nobody else holds it
        break
    else:
        raise MVR3DError(f"{directory}: cannot take the lock {lock}; another mvr3d run keeps replacing it")
    handle = os.fdopen(fd, "w")
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        handle.close()


def _take_over_stale(lock: Path, directory: Path) -> None:
    """Remove ``lock`` if its run is gone; raise if a live run holds it."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return  # released meanwhile: try again
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = False
        except BlockingIOError:
            held = True
        owner = os.read(fd, 64).decode(errors="replace").strip()
        age = time.time() - os.fstat(fd).st_mtime
        live_pid = owner.isdigit() and int(owner) != os.getpid() and _alive(int(owner))
        # An older mvr3d did not flock, so a live pid still counts; an empty file is only
        # trusted while it is fresh (its creator has yet to write the pid).
        if held or live_pid or (not owner and age < _FRESH_LOCK_SECONDS):
            raise MVR3DError(
                f"{directory}: another mvr3d run (pid {owner or '?'}) is writing here; wait for it or "
                "choose another output folder"
            )
        if owner:
            logging.getLogger(__name__).info("%s: removing a stale lock (%r) left by a killed run", lock, owner[:20])
        lock.unlink(missing_ok=True)  # left by a run that was killed
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
