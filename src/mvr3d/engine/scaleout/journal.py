"""Which scans a scaled-out predict has finished, so that a rerun skips them.

Plain ``predict`` writes ``scores.csv`` at the end, from rows in memory; a scaled-out run
is longer and its workers can fail, so it also appends one line per finished scan (its
row and regions, after its point files are written) to a hidden journal in the output
folder. A rerun with the same checkpoint and options takes those rows back and scores
only the rest. A scan counts as finished only while its input file and its outputs are
the ones the journal saw (size and modification time), so a changed scan, or outputs
another run rewrote, are scored again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from mvr3d.engine.results import Region
from mvr3d.utils.atomic import atomic_write_text

JOURNAL_NAME = ".mvr3d-predict-done.jsonl"
_FORMAT = "mvr3d-predict-done"


def run_key(checkpoint: Path, options: dict) -> str:
    """Hash of the checkpoint's files and the options that change the outputs."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    for path in sorted(p for p in Path(checkpoint).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(checkpoint)).encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def stamp(path: Path) -> list[int]:
    info = os.stat(path)
    return [info.st_size, info.st_mtime_ns]


class Journal:
    """Append-only: a line is one finished scan; a torn last line (a killed run) is ignored."""

    def __init__(self, output: Path, key: str) -> None:
        self.path = output / JOURNAL_NAME
        self.key = key

    def finished(self) -> dict[str, dict]:
        """Entries by output name, when the journal was made with this key (else none)."""
        lines = self.path.read_text().splitlines() if self.path.is_file() else []
        entries = [entry for entry in map(_parse, lines) if entry is not None]
        if not entries or entries[0] != {"format": _FORMAT, "key": self.key}:
            return {}
        return {entry["row"]["file"]: entry for entry in entries[1:] if "row" in entry}

    def start(self, kept: list[dict]) -> None:
        """Rewrite the journal (atomically) with its header and the ``kept`` entries only."""
        lines = [{"format": _FORMAT, "key": self.key}, *kept]
        atomic_write_text(self.path, "".join(json.dumps(line) + "\n" for line in lines))

    def add(self, row: dict, regions: list[Region], source: Path, outputs: list[Path]) -> dict:
        entry = {"row": row, "regions": [region.to_dict() for region in regions], "source": stamp(source),
                 "outputs": {path.name: stamp(path) for path in outputs}}
        with self.path.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the scan counts as done
        return entry


def still_valid(entry: dict, source: Path, output: Path, names: list[str]) -> bool:
    """Whether ``entry`` still describes ``source`` and the files ``names`` in ``output``."""
    try:
        return entry["source"] == stamp(source) and all(entry["outputs"][n] == stamp(output / n) for n in names)
    except (OSError, KeyError, TypeError):
        return False


def regions_of(entry: dict) -> list[Region]:
    return [Region(**{k: tuple(v) if isinstance(v, list) else v for k, v in r.items()}) for r in entry["regions"]]


def _parse(line: str) -> dict | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None
