"""Plain-text point clouds: XYZ / TXT / CSV / PTS, one ``x y z [value]`` row per line."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mvr3d.errors import InputError
from mvr3d.io.cloud import PointCloud
from mvr3d.utils.atomic import atomic_write

__all__ = ["format_rows", "read_text", "write_text"]

_CHUNK_ROWS = 100_000


def read_text(path: str | Path) -> PointCloud:
    """Read ``x y z`` or ``x y z value`` rows, whitespace- or comma-separated.

    Blank lines and ``#`` comments are skipped, as is one non-numeric header line (and the
    point-count line of a ``.pts`` file).
    """
    path = Path(path)
    text = _decode(path.read_bytes(), path)
    start, lineno = _skip_preamble(text, path)
    if start >= len(text):
        return PointCloud(points=np.empty((0, 3)), path=path)
    first = _first_data_line(text, start)
    delimiter = "," if "," in first else None
    table = _parse_table(text[start:], lineno, delimiter, path)
    if table.size == 0:
        return PointCloud(points=np.empty((0, 3)), path=path)
    if table.shape[1] not in (3, 4):
        raise InputError(
            f"line {lineno}: expected 3 or 4 columns (x y z [value]), found {table.shape[1]}",
            path,
        )
    points = np.ascontiguousarray(table[:, :3])
    values = np.ascontiguousarray(table[:, 3]) if table.shape[1] == 4 else None
    return PointCloud(points=points, values=values, path=path)


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not a UTF-8 text file (byte {exc.start})", path) from None


def _iter_lines(text: str, pos: int) -> Iterator[tuple[int, str]]:
    """Yield (start offset, line) from ``pos`` without splitting the whole file."""
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        yield pos, text[pos:end]
        pos = end + 1


def _content(line: str) -> str:
    return line.split("#", 1)[0].strip()


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _is_header(line: str) -> bool:
    # A header has no numbers at all; "1 2 abc" is a bad data row, not a header.
    return not any(_is_number(t) for t in line.replace(",", " ").split())


def _skip_preamble(text: str, path: Path) -> tuple[int, int]:
    """Offset and 1-based line number of the first data row, past comments and a header."""
    skipped_header = False
    for lineno, (offset, line) in enumerate(_iter_lines(text, 0), start=1):
        content = _content(line)
        if not content:
            continue
        is_count = path.suffix.lower() == ".pts" and content.isdigit()
        if not skipped_header and (is_count or _is_header(content)):
            skipped_header = True
            continue
        return offset, lineno
    return len(text), 0


def _first_data_line(text: str, start: int) -> str:
    return next(_iter_lines(text, start))[1]


def _parse_table(body: str, first_lineno: int, delimiter: str | None, path: Path) -> np.ndarray:
    try:
        return np.loadtxt(
            io.StringIO(body), dtype=np.float64, delimiter=delimiter, comments="#", ndmin=2
        )
    except ValueError as exc:
        # numpy's message has no reliable line number; rescan (slowly, only on failure).
        _raise_bad_row(body, first_lineno, delimiter, path)
        raise InputError(f"cannot parse numbers ({exc})", path) from None


def _raise_bad_row(body: str, first_lineno: int, delimiter: str | None, path: Path) -> None:
    ncols = None
    for lineno, line in enumerate(body.splitlines(), start=first_lineno):
        content = _content(line)
        if not content:
            continue
        parts = [p.strip() for p in content.split(delimiter)]
        if ncols is None:
            ncols = len(parts)
        elif len(parts) != ncols:
            raise InputError(
                f"line {lineno}: expected {ncols} columns, found {len(parts)}: {content[:80]!r}",
                path,
            )
        for part in parts:
            if not _is_number(part):
                raise InputError(f"line {lineno}: {part[:40]!r} is not a number", path)


def _float_format(dtype: np.dtype) -> str:
    # 9 significant digits round-trip float32 exactly, 17 round-trip float64.
    return "%.9g" if np.dtype(dtype).itemsize <= 4 else "%.17g"


def format_rows(table: np.ndarray, formats: list[str], sep: str) -> Iterator[str]:
    """Yield text chunks of ``table`` rows, one %-format per column (fast: one % per chunk)."""
    row = sep.join(formats) + "\n"
    for start in range(0, table.shape[0], _CHUNK_ROWS):
        chunk = table[start : start + _CHUNK_ROWS]
        yield (row * chunk.shape[0]) % tuple(chunk.ravel().tolist())


def write_text(path: str | Path, points: np.ndarray, values: np.ndarray | None = None) -> None:
    """Write ``x y z [value]`` rows; CSV gets commas and a header line."""
    path = Path(path)
    sep = "," if path.suffix.lower() == ".csv" else " "
    formats = [_float_format(points.dtype)] * 3
    columns = [points.astype(np.float64, copy=False)]
    names = ["x", "y", "z"]
    if values is not None:
        integer = np.issubdtype(values.dtype, np.integer)
        formats.append("%d" if integer else _float_format(values.dtype))
        columns.append(values.astype(np.float64)[:, None])
        names.append("label" if integer else "score")
    table = np.hstack(columns) if len(columns) > 1 else columns[0]
    with atomic_write(path, "w") as handle:
        if sep == ",":
            handle.write(",".join(names) + "\n")
        for chunk in format_rows(table, formats, sep):
            handle.write(chunk)


def is_number(token: bytes | str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
