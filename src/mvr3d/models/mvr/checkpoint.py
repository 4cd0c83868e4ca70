"""On-disk format of a fitted detector: safetensors weights plus a JSON config.

``config.json`` is written last and names the sha256 of every weight file, so a folder
is either a complete checkpoint or rejected with a clear error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as encode_tensors

from mvr3d import __version__
from mvr3d.errors import CheckpointError
from mvr3d.models.components.weights import sha256_file
from mvr3d.models.mvr.config import MVRConfig, split_runtime
from mvr3d.models.mvr.config_check import config_problems
from mvr3d.models.mvr.training_state import STATE_NAME
from mvr3d.utils.atomic import atomic_write, atomic_write_text
from mvr3d.utils.provenance import provenance
from mvr3d.utils.records import read_versioned_json

FORMAT = "mvr3d-detector"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
TEACHER_NAME = "teacher.safetensors"
STUDENT_NAME = "student.safetensors"
TEMPLATES_NAME = "templates.safetensors"


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> str:
    blob = encode_tensors({k: v.detach().to("cpu", dtype).contiguous() for k, v in tensors.items()})
    with atomic_write(path, "wb") as handle:
        handle.write(blob)
    return sha256_file(path)


def save(
    directory: Path,
    config: dict,
    state: dict,
    teacher: dict[str, torch.Tensor],
    student: dict[str, torch.Tensor],
    templates: dict[str, torch.Tensor] | None = None,
    overwrite: bool = False,
) -> Path:
    # A fit's training state, its run lock and what a killed fit left may wait in the folder.
    _replace_other_format(directory, overwrite)
    if directory.exists():
        complete = (directory / CONFIG_NAME).is_file()
        refuse_unsafe_target(directory, complete, [] if complete else foreign_files(directory), overwrite)
    directory.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(directory)
    (directory / THRESHOLD_NAME).unlink(missing_ok=True)  # the replaced detector's, not this one's
    files = {
        TEACHER_NAME: _write_tensors(directory / TEACHER_NAME, teacher, torch.float16),
        STUDENT_NAME: _write_tensors(directory / STUDENT_NAME, student, torch.float32),
    }
    if templates:
        files[TEMPLATES_NAME] = _write_tensors(directory / TEMPLATES_NAME, templates, torch.float64)
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mvr3d_version": __version__,
        "config": config,
        "state": state,
        "files": files,
        "provenance": provenance(),
    }
    atomic_write_text(directory / CONFIG_NAME, json.dumps(record, indent=2))
    return directory


# The calibrated thresholds of a detector (models/thresholds.py), beside either format.
THRESHOLD_NAME = "threshold.json"
_OWN_NAMES = (CONFIG_NAME, TEACHER_NAME, STUDENT_NAME, TEMPLATES_NAME, STATE_NAME)
OWN_NAMES = _OWN_NAMES  # config.json first: removed first, the folder is never a checkpoint with parts missing


def refuse_unsafe_target(folder: Path, complete: bool, foreign: list[str], overwrite: bool,
                         hint: str = "pass overwrite=True / --overwrite") -> None:
    """The one check before writing a detector into ``folder`` (MVR or array-state format,
    API or CLI): never over a complete checkpoint unasked, never among someone else's files."""
    if complete and not overwrite:
        raise CheckpointError(f"{folder}: a checkpoint is already there ({hint})")
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise CheckpointError(f"{folder}: folder exists and is not an mvr3d checkpoint ({shown}); not writing into it")


def _replace_other_format(directory: Path, overwrite: bool) -> None:
    """Remove a saved non-MVR detector (:mod:`mvr3d.models.persistence`) that ``overwrite``
    replaces; refuse without it."""
    from mvr3d.models import persistence  # local: import cycle, persistence imports this module

    if not (directory / persistence.DETECTOR_NAME).is_file():
        return
    refuse_unsafe_target(directory, True, [], overwrite)
    for name in (persistence.DETECTOR_NAME, persistence.STATE_NAME):  # detector.json first, as for config.json
        (directory / name).unlink(missing_ok=True)


LOCK_NAME = ".mvr3d.lock"


def _is_own_temp(name: str) -> bool:
    """A temporary file of :func:`mvr3d.utils.atomic.atomic_write` for one of our files."""
    return name.endswith(".tmp") and any(name.startswith(f".{own}.") for own in (*_OWN_NAMES, THRESHOLD_NAME))


def foreign_files(directory: Path) -> list[str]:
    """Files in ``directory`` that neither a fit nor a killed fit of ours leaves there.

    A fit writes its training state, then (after the last iteration) the weight files and
    config.json last; a kill at any point leaves a subset of these plus temporary files.
    Weight files without config.json only count as ours beside a training state, which a
    fit keeps until its checkpoint is complete.
    """
    names = [entry.name for entry in directory.iterdir()]
    has_state = STATE_NAME in names
    own = {STATE_NAME, LOCK_NAME, CONFIG_NAME, THRESHOLD_NAME}
    if has_state or CONFIG_NAME in names:
        own |= {TEACHER_NAME, STUDENT_NAME, TEMPLATES_NAME}
    return sorted(name for name in names if name not in own and not _is_own_temp(name))


def remove_stale_temps(directory: Path) -> list[str]:
    """Delete temporary files a killed writer left (call while holding the folder's lock)."""
    removed = []
    for entry in directory.iterdir():
        if _is_own_temp(entry.name) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


def _read_record(directory: Path) -> dict:
    return read_versioned_json(
        directory / CONFIG_NAME, FORMAT, FORMAT_VERSION, kind="checkpoint",
        missing=f"{directory}: not a checkpoint ({CONFIG_NAME} missing)",
        wrong_format="not an mvr3d detector checkpoint",
    )


def _read_tensors(path: Path, expected_sha: str | None, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: weight file missing")
    if expected_sha is not None and sha256_file(path) != expected_sha:
        raise CheckpointError(f"{path}: checksum mismatch, the file is corrupted or was replaced")
    try:
        return {k: v.to(dtype) for k, v in load_file(str(path)).items()}
    except Exception as error:  # safetensors raises several types for damaged files
        raise CheckpointError(f"{path}: cannot read weights ({error})") from error


def load(directory: Path) -> tuple[dict, dict, dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """Config, fitted state, teacher and student weights and templates of a saved detector."""
    record = _read_record(directory)
    config, state, files = _validated(record, directory / CONFIG_NAME)
    teacher = _read_tensors(directory / TEACHER_NAME, files.get(TEACHER_NAME))
    student = _read_tensors(directory / STUDENT_NAME, files.get(STUDENT_NAME))
    templates = {}
    if TEMPLATES_NAME in files:
        templates = _read_tensors(directory / TEMPLATES_NAME, files[TEMPLATES_NAME], torch.float64)
    return config, state, teacher, student, templates


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _validated(record: dict, path: Path) -> tuple[dict, dict, dict]:
    """The config, state and files of a config.json, checked like any user input (it is a
    text file anyone may edit)."""
    for key in ("config", "state"):
        if key not in record:
            raise CheckpointError(f"{path}: missing field '{key}'")
    config, state, files = record["config"], record["state"], record.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise CheckpointError(f"{path}: field 'files' must map file names to sha256 strings")
    problems = config_problems(config)
    if problems:
        raise CheckpointError(f"{path}: config: {'; '.join(problems)}")
    try:
        MVRConfig.from_dict(split_runtime(config)[0])  # older checkpoints saved their runtime settings too
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: config: {error}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: field 'state' must be a JSON object, got {type(state).__name__}")
    if "radius" not in state:
        raise CheckpointError(f"{path}: missing field 'state.radius'")
    if not _is_number(state["radius"]) or state["radius"] <= 0:
        raise CheckpointError(f"{path}: field 'state.radius' must be a positive number, got {state['radius']!r}"[:300])
    history = state.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, (int, float)) and not isinstance(h, bool) for h in history):
        raise CheckpointError(f"{path}: field 'state.history' must be a list of numbers")
    centres = state.get("template_centres", [])
    if not isinstance(centres, list) or not all(
        isinstance(c, list) and len(c) == 3 and all(_is_number(v) for v in c) for c in centres
    ):
        raise CheckpointError(f"{path}: field 'state.template_centres' must be a list of [x, y, z] numbers")
    voxel = state.get("align_voxel")
    if voxel is not None and (not _is_number(voxel) or voxel <= 0):
        raise CheckpointError(f"{path}: field 'state.align_voxel' must be a positive number or null, got {voxel!r}"[:300])
    return config, state, files
