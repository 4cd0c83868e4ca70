"""Reading the JSON record that heads a saved detector: checked like user input."""

from __future__ import annotations

import json
from pathlib import Path

from mvr3d import __version__
from mvr3d.errors import CheckpointError


def read_versioned_json(path: Path, fmt: str, version: int, *, missing: str, wrong_format: str, kind: str) -> dict:
    """The JSON object in ``path`` if it declares format ``fmt`` at ``version``; otherwise a
    :class:`CheckpointError` with ``missing`` (no file), ``wrong_format`` (another format or
    not an object) or a version message naming ``kind``."""
    if not path.is_file():
        raise CheckpointError(missing)
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: corrupted JSON ({error})") from error
    if not isinstance(record, dict) or record.get("format") != fmt:
        raise CheckpointError(f"{path}: {wrong_format}")
    found = record.get("format_version")
    if found != version:
        raise CheckpointError(
            f"{path}: {kind} format version {found} (written by mvr3d {record.get('mvr3d_version')}); "
            f"this mvr3d {__version__} reads version {version}"
        )
    return record
