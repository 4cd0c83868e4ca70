"""NumPy point clouds: ``.npy`` (N, 3) / (N, 4) arrays and ``.npz`` archives."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from mvr3d.errors import InputError
from mvr3d.io.cloud import PointCloud
from mvr3d.utils.atomic import atomic_write

__all__ = ["read_npy", "read_npz", "write_npy", "write_npz"]

VALUE_KEYS = ("values", "labels", "scores", "label", "score")


def _split_table(table: np.ndarray, path: Path) -> PointCloud:
    """(N, 3) -> points; (N, 4) -> points plus the last column as values."""
    if table.ndim != 2 or table.shape[1] not in (3, 4):
        raise InputError(f"expected an array of shape (N, 3) or (N, 4), got {table.shape}", path)
    values = np.ascontiguousarray(table[:, 3]) if table.shape[1] == 4 else None
    return PointCloud(points=np.ascontiguousarray(table[:, :3]), values=values, path=path)


def read_npy(path: str | Path) -> PointCloud:
    path = Path(path)
    try:
        # Memory-mapping checks the header's shape against the file size before anything
        # is allocated, so a header claiming 10^12 points fails fast instead of raising
        # MemoryError (or allocating) while reading.
        table = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # numpy's header parser (ast, tokenize) raises many types
        raise InputError(f"not a readable .npy file ({type(exc).__name__}: {exc})", path) from None
    if not isinstance(table, np.ndarray):  # np.load opens zip archives whatever the name
        table.close()
        raise InputError("is a .npz archive, not a .npy array; rename it to .npz", path)
    check_budget(table.nbytes, f"array of shape {table.shape} ({table.dtype})", path)
    return _split_table(np.array(table), path)  # a copy, so the mapping can be closed


def read_npz(path: str | Path) -> PointCloud:
    """Read key ``points`` (+ ``values``/``labels``/``scores``), or an archive of one array."""
    path = Path(path)
    try:
        _check_member_sizes(path)
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except InputError:
        raise
    except MemoryError:
        raise  # a real array too large for memory, not a malformed file
    except Exception as exc:  # as in read_npy, plus zip and zlib errors
        raise InputError(f"not a readable .npz file ({type(exc).__name__}: {exc})", path) from None
    if "points" in arrays:
        values = next((arrays[k] for k in VALUE_KEYS if k in arrays), None)
        cloud = _split_table(arrays["points"], path)
        if values is not None:
            if values.shape != (len(cloud),):
                raise InputError(
                    f"values have shape {values.shape}, expected ({len(cloud)},)", path
                )
            cloud.values = values
        return cloud
    if len(arrays) == 1:
        return _split_table(next(iter(arrays.values())), path)
    raise InputError(
        f"expected a 'points' array or a single array, found keys {sorted(arrays)[:10]}", path
    )


# Reading makes about this many copies of an array (decompressing, float64 points, checks);
# measured peak RSS of a 1.2 GB member: 4.7 GB.
READ_COPIES = 4


def _available_memory() -> int | None:
    """Free memory for this process: MemAvailable, or less under a cgroup limit."""
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            free = min(free if free is not None else 1 << 62, int(limit) - used)
    except (OSError, ValueError):
        pass
    return free


def check_budget(claimed: int, what: str, path: Path) -> None:
    """Refuse, before allocating, an array that reading cannot hold in memory."""
    free = _available_memory()
    if free is not None and claimed * READ_COPIES > free:
        raise InputError(
            f"{what} needs about {claimed * READ_COPIES / 2**30:.1f} GiB to read ({claimed / 2**30:.1f} GiB of "
            f"data) but only {free / 2**30:.1f} GiB of memory is free",
            path,
        )


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _check_member_sizes(path: Path) -> None:
    """Compare each member's header with its stored size before numpy allocates the array:
    a header claiming 10^12 points in a small (compressed) member is a malformed file."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = _HEADER_READERS.get(version)
                if read_header is None:  # a newer format: numpy's own checks apply
                    continue
                shape, _, dtype = read_header(member)
                header = member.tell()
            claimed = math.prod(shape) * dtype.itemsize
            if claimed > info.file_size - header:
                raise InputError(
                    f"member {info.filename!r} claims shape {shape} of {dtype} ({claimed:,} bytes) "
                    f"but holds {info.file_size - header:,} bytes",
                    path,
                )
            check_budget(claimed, f"member {info.filename!r} of shape {shape} ({dtype})", path)


def write_npy(path: str | Path, points: np.ndarray, values: np.ndarray | None = None) -> None:
    """(N, 3) points, or (N, 4) with values as the last column (in their common dtype)."""
    table = points if values is None else np.column_stack([points, values])
    with atomic_write(path, "wb") as handle:
        np.save(handle, table, allow_pickle=False)


def write_npz(path: str | Path, points: np.ndarray, values: np.ndarray | None = None) -> None:
    arrays = {"points": points} if values is None else {"points": points, "values": values}
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)
