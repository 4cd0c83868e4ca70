"""The in-memory point cloud and the checks every reader and writer shares."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mvr3d.errors import InputError

__all__ = [
    "MAX_COORDINATE", "PointCloud", "all_finite", "check_layout", "check_range", "check_values", "extremes_ok",
    "validate_points", "validate_values", "xyz_from_records",
]


@dataclass
class PointCloud:
    """Points in file order, with an optional per-point value column and triangle faces."""

    points: np.ndarray
    values: np.ndarray | None = None
    faces: np.ndarray | None = None
    path: Path | None = None

    def __len__(self) -> int:
        return int(self.points.shape[0])


def check_layout(
    shape: tuple[int, ...], dtype: object, real: bool, source: str | Path | None = None, *, min_points: int = 2
) -> None:
    """The checks that need no coordinate values: shape (N, 3), real numbers (``real``; the
    ``dtype`` is only named in the message) and at least ``min_points`` points. Shared by
    numpy arrays (:func:`validate_points`) and tensors (:func:`mvr3d.render.camera.as_points`)."""
    if len(shape) != 2 or shape[1] != 3:
        raise InputError(f"expected points of shape (N, 3), got shape {tuple(shape)}", source)
    if not real:
        raise InputError(f"expected numeric coordinates, got dtype {dtype}", source)
    n = shape[0]
    if n == 0:
        raise InputError(f"point cloud is empty (0 points): need at least {min_points} points", source)
    if n < min_points:
        what = "one-point cloud (a single point has no extent)" if n == 1 else f"only {n} points"
        raise InputError(f"{what}: need at least {min_points} points", source)


def extremes_ok(low: float, high: float, *, bounded: bool) -> bool:
    """Whether coordinates whose minimum and maximum are ``low`` and ``high`` are finite (min
    and max propagate NaN and expose inf) and, if ``bounded``, within +-MAX_COORDINATE: two
    reductions, so a tensor can be checked on its device without copying it to the host."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return False
    return not bounded or max(-low, high) <= MAX_COORDINATE


def check_values(arr: np.ndarray, source: str | Path | None = None, *, bounded: bool = False) -> None:
    """Raise :class:`InputError` naming the first bad point when coordinates are not finite
    or (``bounded``) beyond +-MAX_COORDINATE; ``arr`` has passed :func:`check_layout`."""
    if extremes_ok(float(arr.min()), float(arr.max()), bounded=bounded):
        return
    if not all_finite(arr):
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise InputError(
            f"{bad.size} of {arr.shape[0]} points have non-finite (NaN/inf) coordinates "
            f"(first at index {bad[0]})",
            source,
        )
    check_range(arr, source)


def validate_points(
    points: np.ndarray, source: str | Path | None = None, *, min_points: int = 2, bounded: bool = False
) -> np.ndarray:
    """Return ``points`` as a float (N, 3) array or raise :class:`InputError`: the one source
    of the point checks (files read and written, scans given to a detector, the renderer).

    float32 and float64 are kept as they are; other dtypes become float64. ``bounded`` also
    refuses coordinates beyond +-MAX_COORDINATE, which cannot be computed with (a file with
    them is still read and written).
    """
    arr = np.asarray(points)
    real = np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.complexfloating)
    check_layout(arr.shape, arr.dtype, bool(real), source, min_points=min_points)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    check_values(arr, source, bounded=bounded)
    return arr


# Beyond this, squared distances (float64) and projected depths (float32) overflow or keep
# no precision; no scanner measures 10^15 of any unit.
MAX_COORDINATE = 1e15


def check_range(arr: np.ndarray, source: str | Path | None = None) -> None:
    """Raise :class:`InputError` for finite coordinates too large to compute with."""
    if arr.size and float(np.abs(arr).max()) > MAX_COORDINATE:
        bad = np.flatnonzero((np.abs(arr) > MAX_COORDINATE).any(axis=1))
        raise InputError(
            f"{bad.size} of {arr.shape[0]} points have coordinates beyond +-{MAX_COORDINATE:.0e} (first at index "
            f"{bad[0]}: {arr[bad[0]].tolist()}); rescale the scan to sensible units (e.g. millimetres)",
            source,
        )


def all_finite(arr: np.ndarray) -> bool:
    """Whether every element is finite; min/max propagate NaN and expose inf, and two
    SIMD reductions are ~15x faster than a per-row ``isfinite(...).all(axis=1)``."""
    return arr.size == 0 or bool(np.isfinite(arr.min()) and np.isfinite(arr.max()))


def validate_values(values: np.ndarray | None, n: int, source: str | Path | None = None):
    """Return ``values`` as a numeric (N,) array matching ``n`` points, or None."""
    if values is None:
        return None
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.shape != (n,):
        raise InputError(f"expected values of shape ({n},), got shape {arr.shape}", source)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"expected numeric values, got dtype {arr.dtype}", source)
    return arr


def xyz_from_records(records: np.ndarray, names: tuple[str, str, str]) -> np.ndarray:
    """Gather three fields of a structured array into a native-endian (N, 3) float array.

    When the fields are adjacent and share one float type (the usual ``x y z`` layout) this
    is a strided view plus at most one copy, which is what makes binary reads fast.
    """
    if records.shape[0] == 0:
        return np.empty((0, 3), dtype=np.float32)
    fields = [records.dtype.fields[name] for name in names]
    dtypes = {f[0] for f in fields}
    base = fields[0][0]
    offsets = [f[1] for f in fields]
    adjacent = all(offsets[i + 1] - offsets[i] == base.itemsize for i in range(2))
    if len(dtypes) == 1 and base.kind == "f" and adjacent:
        view = np.ndarray(
            shape=(records.shape[0], 3),
            dtype=base,
            buffer=records,
            offset=offsets[0],
            strides=(records.dtype.itemsize, base.itemsize),
        )
        native = base.newbyteorder("=") if base.itemsize >= 4 else np.dtype(np.float32)
        return np.ascontiguousarray(view, dtype=native)
    all_f4 = all(d.kind == "f" and d.itemsize == 4 for d in dtypes)
    common = np.float32 if all_f4 else np.float64
    out = np.empty((records.shape[0], 3), dtype=common)
    for i, name in enumerate(names):
        out[:, i] = records[name]
    return out


def native_column(column: np.ndarray) -> np.ndarray:
    """A contiguous, native-endian copy-if-needed of one structured-array column."""
    return np.ascontiguousarray(column, dtype=column.dtype.newbyteorder("="))
