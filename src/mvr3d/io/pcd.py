"""PCD v0.7 point clouds (Point Cloud Library): DATA ascii, binary and binary_compressed."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mvr3d.errors import InputError
from mvr3d.io import lzf
from mvr3d.io.cloud import PointCloud, native_column, xyz_from_records
from mvr3d.io.text import format_rows, is_number
from mvr3d.utils.atomic import atomic_write

__all__ = ["PCDHeader", "read_pcd", "write_pcd"]

VALUE_FIELDS = ("label", "score")
DATA_KINDS = ("ascii", "binary", "binary_compressed")
_KEYS = (
    "VERSION",
    "FIELDS",
    "SIZE",
    "TYPE",
    "COUNT",
    "WIDTH",
    "HEIGHT",
    "VIEWPOINT",
    "POINTS",
    "DATA",
)
_REQUIRED = ("FIELDS", "SIZE", "TYPE", "DATA")
_MAX_HEADER_BYTES = 1 << 20
# LZF cannot expand 3 bytes into more than 264; anything beyond this ratio is a lie.
_MAX_LZF_RATIO = 100
# numpy dtypes (and so records) must fit a C int; PCL's largest descriptors are ~1 KiB.
_MAX_RECORD_BYTES = (1 << 31) - 1


@dataclass(frozen=True)
class PCDHeader:
    fields: tuple[str, ...]
    dtypes: tuple[np.dtype, ...]
    counts: tuple[int, ...]
    points: int
    data: str
    data_offset: int

    @property
    def keys(self) -> tuple[str, ...]:
        """Unique structured-dtype names (PCL pads records with repeated ``_`` fields)."""
        seen: set[str] = set()
        keys = []
        for i, name in enumerate(self.fields):
            keys.append(name if name not in seen else f"{name}__{i}")
            seen.add(name)
        return tuple(keys)

    @property
    def record_size(self) -> int:
        """Bytes per point, computed without building a (possibly absurd) dtype."""
        return sum(dt.itemsize * c for dt, c in zip(self.dtypes, self.counts, strict=True))

    @property
    def record_dtype(self) -> np.dtype:
        return np.dtype(
            [
                (key, dt, (count,)) if count != 1 else (key, dt)
                for key, dt, count in zip(self.keys, self.dtypes, self.counts, strict=True)
            ]
        )

    def key(self, field: str) -> str | None:
        """The dtype name of ``field`` when present with COUNT 1 (the first such field)."""
        for name, key, count in zip(self.fields, self.keys, self.counts, strict=True):
            if name == field and count == 1:
                return key
        return None


def read_pcd(path: str | Path) -> PointCloud:
    """Read a PCD file; ``label`` or ``score`` fields become ``values``."""
    path = Path(path)
    with open(path, "rb") as handle:
        header = _read_header(handle, path)
        available = os.fstat(handle.fileno()).st_size - header.data_offset
        if header.data == "binary":
            return _read_binary(handle, header, available, path)
        if header.data == "binary_compressed":
            return _read_compressed(handle, header, available, path)
        return _read_ascii(handle.read(), header, path)


def _read_header(handle: BinaryIO, path: Path) -> PCDHeader:
    entries: dict[str, list[str]] = {}
    consumed = 0
    while "DATA" not in entries:
        raw = handle.readline(_MAX_HEADER_BYTES - consumed)
        if not raw:
            missing = ", ".join(k for k in _REQUIRED if k not in entries)
            raise InputError(f"not a PCD file: header ended without {missing}", path)
        consumed += len(raw)
        if consumed >= _MAX_HEADER_BYTES:
            raise InputError("not a PCD file: no DATA line in the first 1 MiB", path)
        try:
            line = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise InputError("not a PCD file: header contains non-ASCII bytes", path) from None
        if not line or line.startswith("#"):
            continue
        key, *rest = line.split()
        key = key.upper()
        if key not in _KEYS:
            raise InputError(f"not a PCD file: unknown header key {key[:40]!r}", path)
        entries[key] = rest
    return _parse_header(entries, consumed, path)


def _ints(entries: dict[str, list[str]], key: str, path: Path) -> list[int]:
    try:
        values = [int(v) for v in entries[key]]
    except ValueError:
        raise InputError(f"header {key} must be integers, got {entries[key][:8]}", path) from None
    if any(v < 0 for v in values):
        raise InputError(f"header {key} must be non-negative, got {entries[key][:8]}", path)
    return values


def _parse_header(entries: dict[str, list[str]], data_offset: int, path: Path) -> PCDHeader:
    missing = [k for k in _REQUIRED if k not in entries]
    if "POINTS" not in entries and "WIDTH" not in entries:
        missing.append("POINTS")
    if missing:
        raise InputError(f"PCD header is missing {', '.join(missing)}", path)
    fields = tuple(entries["FIELDS"])
    sizes = _ints(entries, "SIZE", path)
    types = [t.upper() for t in entries["TYPE"]]
    counts = _ints(entries, "COUNT", path) if "COUNT" in entries else [1] * len(fields)
    for key, got in (("SIZE", sizes), ("TYPE", types), ("COUNT", counts)):
        if len(got) != len(fields):
            raise InputError(f"header has {len(fields)} FIELDS but {len(got)} {key} entries", path)
    dtypes = tuple(
        _field_dtype(t, s, f, path) for f, t, s in zip(fields, types, sizes, strict=True)
    )
    for axis in ("x", "y", "z"):
        if axis not in fields:
            raise InputError(f"PCD has no '{axis}' field (FIELDS {' '.join(fields)})", path)
        if counts[fields.index(axis)] != 1:
            raise InputError(f"field '{axis}' must have COUNT 1", path)
    points = _point_count(entries, path)
    data = entries["DATA"][0].lower() if entries["DATA"] else ""
    if data not in DATA_KINDS:
        raise InputError(f"unsupported DATA {data!r}; expected one of {DATA_KINDS}", path)
    header = PCDHeader(fields, dtypes, tuple(counts), points, data, data_offset)
    if header.record_size > _MAX_RECORD_BYTES:
        raise InputError(f"header COUNT gives {header.record_size} bytes per point", path)
    return header


def _field_dtype(kind: str, size: int, field: str, path: Path) -> np.dtype:
    codes = {"F": "f", "I": "i", "U": "u"}
    if kind not in codes or size not in ((2, 4, 8) if kind == "F" else (1, 2, 4, 8)):
        raise InputError(f"field '{field}' has unsupported TYPE {kind} with SIZE {size}", path)
    return np.dtype(f"<{codes[kind]}{size}")


def _point_count(entries: dict[str, list[str]], path: Path) -> int:
    width = _ints(entries, "WIDTH", path) if "WIDTH" in entries else None
    height = _ints(entries, "HEIGHT", path) if "HEIGHT" in entries else [1]
    points = _ints(entries, "POINTS", path) if "POINTS" in entries else None
    for key, value in (("WIDTH", width), ("HEIGHT", height), ("POINTS", points)):
        if value is not None and len(value) != 1:
            raise InputError(f"header {key} must be one integer", path)
    if points is None:
        return width[0] * height[0]
    if width is not None and width[0] * height[0] != points[0]:
        raise InputError(
            f"header POINTS {points[0]} != WIDTH {width[0]} x HEIGHT {height[0]}", path
        )
    return points[0]


def _check_size(expected: int, available: int, n: int, path: Path) -> None:
    if available < expected:
        raise InputError(
            f"truncated: header says {n} points ({expected} bytes) but file has {available} bytes",
            path,
        )
    if available > expected:
        raise InputError(
            f"header says {n} points ({expected} bytes) but file has {available} bytes "
            f"({available - expected} unexplained extra bytes)",
            path,
        )


def _cloud_from_records(records: np.ndarray, header: PCDHeader, path: Path) -> PointCloud:
    xyz = tuple(header.key(a) for a in ("x", "y", "z"))
    points = xyz_from_records(records, xyz)  # type: ignore[arg-type]
    value_key = next((header.key(f) for f in VALUE_FIELDS if header.key(f)), None)
    values = native_column(records[value_key]) if value_key else None
    return PointCloud(points=points, values=values, path=path)


def _read_binary(handle: BinaryIO, header: PCDHeader, available: int, path: Path) -> PointCloud:
    expected = header.points * header.record_size
    # Compare sizes before allocating: a header may claim 10^12 points.
    _check_size(expected, available, header.points, path)
    dtype = header.record_dtype
    buffer = np.empty(expected, dtype=np.uint8)  # aligned and writable, unlike bytes
    if handle.readinto(memoryview(buffer)) != expected:
        raise InputError("file changed while reading", path)
    return _cloud_from_records(buffer.view(dtype), header, path)


def _read_compressed(handle: BinaryIO, header: PCDHeader, available: int, path: Path) -> PointCloud:
    n = header.points
    expected = n * header.record_size
    if available < 8:
        raise InputError(
            f"truncated: binary_compressed data needs an 8-byte size prefix, file has "
            f"{available} bytes",
            path,
        )
    compressed_size, raw_size = struct.unpack("<II", handle.read(8))
    if raw_size != expected:
        raise InputError(
            f"header says {n} points ({expected} bytes) but the compressed block "
            f"holds {raw_size} bytes",
            path,
        )
    if raw_size > _MAX_LZF_RATIO * compressed_size + 64:
        raise InputError(f"corrupt compressed block ({compressed_size} -> {raw_size} bytes)", path)
    if compressed_size != available - 8:
        what = "truncated: " if compressed_size > available - 8 else ""
        raise InputError(
            f"{what}compressed block is {compressed_size} bytes but file has "
            f"{available - 8} bytes after the size prefix",
            path,
        )
    try:
        raw = lzf.decompress(handle.read(compressed_size), raw_size)
    except lzf.LZFError as exc:
        raise InputError(f"corrupt binary_compressed data: {exc}", path) from None
    return _cloud_from_columns(_split_fields(raw, header), header, path)


def _split_fields(raw: bytes, header: PCDHeader) -> dict[str, np.ndarray]:
    """binary_compressed stores fields one after another (all x, then all y, ...)."""
    columns: dict[str, np.ndarray] = {}
    offset = 0
    n = header.points
    for key, dtype, count in zip(header.keys, header.dtypes, header.counts, strict=True):
        columns[key] = np.frombuffer(raw, dtype=dtype, count=n * count, offset=offset)
        offset += n * count * dtype.itemsize
    return columns


def _cloud_from_columns(
    columns: dict[str, np.ndarray], header: PCDHeader, path: Path
) -> PointCloud:
    xyz = [columns[header.key(a)] for a in ("x", "y", "z")]  # type: ignore[index]
    all_f4 = all(c.dtype == np.float32 for c in xyz)
    points = np.stack(xyz, axis=1).astype(np.float32 if all_f4 else np.float64, copy=False)
    value_key = next((header.key(f) for f in VALUE_FIELDS if header.key(f)), None)
    values = native_column(columns[value_key]) if value_key else None
    return PointCloud(points=points, values=values, path=path)


def _read_ascii(body: bytes, header: PCDHeader, path: Path) -> PointCloud:
    n = header.points
    width = sum(header.counts)
    tokens = body.split()
    if len(tokens) != n * width:
        what = "truncated: " if len(tokens) < n * width else ""
        raise InputError(
            f"{what}header says {n} points x {width} values ({n * width} numbers) but "
            f"ASCII data has {len(tokens)} numbers",
            path,
        )
    try:
        table = np.array(tokens, dtype=np.float64).reshape(n, width)
    except ValueError:
        bad = next(i for i, t in enumerate(tokens) if not is_number(t))
        raise InputError(
            f"ASCII data value {tokens[bad][:40]!r} of point {bad // max(width, 1)} "
            "is not a number",
            path,
        ) from None
    columns: dict[str, np.ndarray] = {}
    start = 0
    for key, dtype, count in zip(header.keys, header.dtypes, header.counts, strict=True):
        if count == 1:
            columns[key] = _cast(table[:, start], dtype)
        start += count
    return _cloud_from_columns(columns, header, path)


def _cast(column: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        return column.astype(dtype.newbyteorder("="))
    # Integer fields: out-of-range or fractional text would wrap silently, so clip.
    info = np.iinfo(dtype)
    clean = np.nan_to_num(column, nan=0.0, posinf=info.max, neginf=info.min)
    return np.clip(np.rint(clean), info.min, info.max).astype(dtype.newbyteorder("="))


def write_pcd(
    path: str | Path,
    points: np.ndarray,
    values: np.ndarray | None = None,
    *,
    data: str = "binary",
    value_field: str | None = None,
) -> None:
    """Write x y z float32 (+ a float32 ``label`` or ``score`` field) as PCD v0.7.

    ``value_field`` defaults to ``label`` for integer values and ``score`` otherwise.
    """
    if data not in DATA_KINDS:
        raise ValueError(f"data must be one of {DATA_KINDS}, got {data!r}")
    names = ["x", "y", "z"]
    if values is not None:
        integer = np.issubdtype(np.asarray(values).dtype, np.integer)
        names.append(value_field or ("label" if integer else "score"))
    n = points.shape[0]
    records = np.empty(n, dtype=[(name, "<f4") for name in names])
    for i, axis in enumerate(("x", "y", "z")):
        records[axis] = points[:, i]
    if values is not None:
        records[names[3]] = values
    header = _format_header(names, n, data)
    with atomic_write(path, "wb") as handle:
        handle.write(header.encode("ascii"))
        handle.write(_encode_body(records, data))


def _format_header(names: list[str], n: int, data: str) -> str:
    k = len(names)
    return (
        "# .PCD v0.7 - Point Cloud Data file format\n"
        "VERSION 0.7\n"
        f"FIELDS {' '.join(names)}\n"
        f"SIZE {' '.join(['4'] * k)}\n"
        f"TYPE {' '.join(['F'] * k)}\n"
        f"COUNT {' '.join(['1'] * k)}\n"
        f"WIDTH {n}\n"
        "HEIGHT 1\n"
        "VIEWPOINT 0 0 0 1 0 0 0\n"
        f"POINTS {n}\n"
        f"DATA {data}\n"
    )


def _encode_body(records: np.ndarray, data: str) -> bytes:
    if data == "binary":
        return records.tobytes()
    if data == "binary_compressed":
        raw = b"".join(records[name].tobytes() for name in records.dtype.names)
        packed = lzf.compress(raw)
        return struct.pack("<II", len(packed), len(raw)) + packed
    table = np.column_stack([records[name] for name in records.dtype.names])
    formats = ["%.9g"] * table.shape[1]
    return "".join(format_rows(table.astype(np.float64), formats, " ")).encode("ascii")
