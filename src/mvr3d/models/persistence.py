"""On-disk format of a fitted detector whose state is a few arrays (every method but MVR).

A folder holds ``state.safetensors`` (the fitted arrays, exact dtypes) and
``detector.json`` (method name, constructor parameters, versions, the sha256 of the
state file). Both are written atomically and ``detector.json`` last, so a folder is a
complete detector or is refused with an error naming the file. No pickle: loading
a folder runs no code from it. MVR keeps its own format (``config.json`` and weight
files, :mod:`mvr3d.models.mvr.checkpoint`); :func:`checkpoint_method` tells the two apart.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from safetensors.numpy import save as encode

from mvr3d import __version__
from mvr3d.errors import CheckpointError
from mvr3d.models.components.weights import sha256_file
from mvr3d.models.mvr import checkpoint
from mvr3d.utils.atomic import atomic_write_bytes, atomic_write_text
from mvr3d.utils.provenance import provenance
from mvr3d.utils.records import read_versioned_json

FORMAT = "mvr3d-detector-state"
FORMAT_VERSION = 1
DETECTOR_NAME = "detector.json"
STATE_NAME = "state.safetensors"
_OWN_NAMES = (DETECTOR_NAME, STATE_NAME)


def checkpoint_method(folder: Path) -> str | None:
    """The method of the detector saved in ``folder``: the name in ``detector.json``, "mvr"
    for an MVR checkpoint (``config.json``; those never had a detector.json), else None."""
    if (folder / DETECTOR_NAME).is_file():
        return str(read_record(folder)["method"])
    if (folder / checkpoint.CONFIG_NAME).is_file():
        return "mvr"
    return None


def is_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds a complete saved detector of either format."""
    return (folder / DETECTOR_NAME).is_file() or (folder / checkpoint.CONFIG_NAME).is_file()


# --------------------------------------------------------------------------- writing
def save(folder: Path, method: str, params: dict, arrays: dict[str, np.ndarray], overwrite: bool = False) -> Path:
    """Write ``arrays`` and then ``detector.json``; refuse to replace a checkpoint unasked
    or to write into a folder holding files of someone else."""
    _check_target(folder, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_temps(folder)
    (folder / checkpoint.THRESHOLD_NAME).unlink(missing_ok=True)  # the replaced detector's, not this one's
    blob = encode({key: np.ascontiguousarray(value) for key, value in arrays.items()})
    atomic_write_bytes(folder / STATE_NAME, blob)
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "method": method,
        "params": params,
        "mvr3d_version": __version__,
        "files": {STATE_NAME: sha256_file(folder / STATE_NAME)},
        "provenance": provenance(),
    }
    atomic_write_text(folder / DETECTOR_NAME, json.dumps(record, indent=2))
    return folder


def _check_target(folder: Path, overwrite: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder}: exists and is not a folder")
    if not folder.is_dir():
        return
    complete = is_checkpoint(folder)
    checkpoint.refuse_unsafe_target(folder, complete, [] if complete else foreign_files(folder), overwrite)
    if complete:
        # An MVR checkpoint is replaced: its config.json goes first, so that what is left
        # is never mistaken for a complete MVR checkpoint.
        for name in checkpoint.OWN_NAMES:
            (folder / name).unlink(missing_ok=True)
        checkpoint.refuse_unsafe_target(folder, False, foreign_files(folder), overwrite)


def foreign_files(folder: Path) -> list[str]:
    """Files in ``folder`` that neither this format, an MVR fit nor our run lock left there."""
    mvr_foreign = set(checkpoint.foreign_files(folder))
    return sorted(name for name in mvr_foreign if name not in _OWN_NAMES and not _is_own_temp(name))


def _is_own_temp(name: str) -> bool:
    """A temporary file of :func:`mvr3d.utils.atomic.atomic_write` for one of our files."""
    return name.endswith(".tmp") and any(name.startswith(f".{own}.") for own in _OWN_NAMES)


def _remove_temps(folder: Path) -> None:
    for entry in folder.iterdir():
        if _is_own_temp(entry.name) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)


# --------------------------------------------------------------------------- reading
def read_record(folder: Path) -> dict:
    """``detector.json`` of ``folder``, checked like user input (anyone may edit it)."""
    path = folder / DETECTOR_NAME
    record = read_versioned_json(
        path, FORMAT, FORMAT_VERSION, kind="detector",
        missing=f"{folder}: not a saved detector ({DETECTOR_NAME} missing)",
        wrong_format=f"not an mvr3d detector (field 'format' is not {FORMAT!r})",
    )
    if not isinstance(record.get("method"), str):
        raise CheckpointError(f"{path}: field 'method' must be a method name, got {record.get('method')!r}"[:300])
    if not isinstance(record.get("params"), dict):
        raise CheckpointError(f"{path}: field 'params' must be a JSON object")
    files = record.get("files")
    if not isinstance(files, dict) or not isinstance(files.get(STATE_NAME), str):
        raise CheckpointError(f"{path}: field 'files' must give the sha256 of {STATE_NAME}")
    return record


def load(folder: Path, method: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Constructor parameters and fitted arrays of the ``method`` detector saved in ``folder``."""
    record = read_record(folder)
    if record["method"] != method:
        raise CheckpointError(
            f"{folder / DETECTOR_NAME}: field 'method' is {record['method']!r}, not {method!r}; "
            "load it with mvr3d.detectors.load_detector()"
        )
    return record["params"], _read_arrays(folder / STATE_NAME, record["files"][STATE_NAME])


def _read_arrays(path: Path, expected_sha: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise CheckpointError(f"{path}: state file missing")
    if sha256_file(path) != expected_sha:
        raise CheckpointError(f"{path}: checksum mismatch, the file is corrupted or was replaced")
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises several types for damaged files
        raise CheckpointError(f"{path}: cannot read the state ({error})") from error


def check_array(arrays: dict[str, np.ndarray], key: str, shape: tuple[int | None, ...], path: Path,
                dtype: type = np.float64) -> np.ndarray:
    """``arrays[key]`` if it has ``shape`` (None: any length), ``dtype`` and finite values."""
    if key not in arrays:
        raise CheckpointError(f"{path}: array {key!r} missing")
    array = arrays[key]
    fits = array.ndim == len(shape) and all(
        want is None or got == want for got, want in zip(array.shape, shape, strict=True)
    )
    if not fits:
        wanted = "(" + ", ".join("N" if n is None else str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"
        raise CheckpointError(f"{path}: array {key!r} has shape {array.shape}, expected {wanted}")
    if array.dtype != dtype:
        raise CheckpointError(f"{path}: array {key!r} has dtype {array.dtype}, expected {np.dtype(dtype)}")
    if not np.isfinite(array).all():
        raise CheckpointError(f"{path}: array {key!r} holds NaN or infinite values")
    return array


def check_params(params: dict, defaults: dict[str, object], path: Path) -> dict:
    """``params`` if every key is a constructor parameter and each value has the JSON type
    of its default (an int is a float too); the constructor checks the ranges."""
    for key, value in params.items():
        if key not in defaults:
            raise CheckpointError(f"{path}: field 'params.{key}' is not a parameter of this method")
        if not _same_kind(value, defaults[key]):
            raise CheckpointError(
                f"{path}: field 'params.{key}' must be {type(defaults[key]).__name__}, got {value!r}"[:300]
            )
    return params


def _same_kind(value: object, default: object) -> bool:
    if default is None:
        return value is None or isinstance(value, (str, int, float))
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, type(default))
