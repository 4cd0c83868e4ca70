"""On-disk format of a fitted detector: safetensors weights plus a JSON config.

``config.json`` is written last and names the sha256 of every weight file, so a folder
is either a complete checkpoint or rejected with a clear error.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mvr3d import __version__
from mvr3d.errors import CheckpointError
from mvr3d.models.training_state import STATE_NAME
from mvr3d.models.weights import sha256_file
from mvr3d.utils.atomic import atomic_write, atomic_write_text
from mvr3d.utils.provenance import provenance

FORMAT = "mvr3d-detector"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
TEACHER_NAME = "teacher.safetensors"
STUDENT_NAME = "student.safetensors"
TEMPLATES_NAME = "templates.safetensors"


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> str:
    from safetensors.torch import save

    blob = save({k: v.detach().to("cpu", dtype).contiguous() for k, v in tensors.items()})
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
    # A fit's training state and its run lock may wait in the folder it writes to.
    if directory.exists() and any(f.name not in (STATE_NAME, ".mvr3d.lock") for f in directory.iterdir()):
        if not (directory / CONFIG_NAME).is_file():
            raise CheckpointError(f"{directory}: folder exists and is not an mvr3d checkpoint; not writing into it")
        if not overwrite:
            raise CheckpointError(f"{directory}: a checkpoint is already there (pass overwrite=True / --overwrite)")
    directory.mkdir(parents=True, exist_ok=True)
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


def _read_record(directory: Path) -> dict:
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory}: not a checkpoint ({CONFIG_NAME} missing)")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: corrupted JSON ({error})") from error
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an mvr3d detector checkpoint")
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} (written by mvr3d "
            f"{record.get('mvr3d_version')}); this mvr3d {__version__} reads version {FORMAT_VERSION}"
        )
    return record


def _read_tensors(path: Path, expected_sha: str | None, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

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
    files = record.get("files", {})
    teacher = _read_tensors(directory / TEACHER_NAME, files.get(TEACHER_NAME))
    student = _read_tensors(directory / STUDENT_NAME, files.get(STUDENT_NAME))
    templates = {}
    if TEMPLATES_NAME in files:
        templates = _read_tensors(directory / TEMPLATES_NAME, files[TEMPLATES_NAME], torch.float64)
    try:
        return record["config"], record["state"], teacher, student, templates
    except KeyError as error:
        raise CheckpointError(f"{directory / CONFIG_NAME}: missing field {error}") from error
