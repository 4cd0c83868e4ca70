"""Point-cloud and mesh I/O: read and write PCD, PLY, XYZ/TXT/CSV, NPY/NPZ; read STL/OBJ/OFF.

>>> cloud = read_points("part.pcd")          # PointCloud(points (N, 3), values, faces, path)
>>> write_points("part.ply", cloud.points, scores, colors=colormap(scores))
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mvr3d.errors import InputError
from mvr3d.io.arrays import read_npy, read_npz, write_npy, write_npz
from mvr3d.io.cloud import PointCloud, all_finite, validate_points, validate_values
from mvr3d.io.mesh import read_mesh, read_trimesh, sample_surface
from mvr3d.io.pcd import read_pcd, write_pcd
from mvr3d.io.ply import read_ply, write_ply
from mvr3d.io.text import read_text, write_text

__all__ = [
    "READ_FORMATS",
    "WRITE_FORMATS",
    "file_problem",
    "PointCloud",
    "load_surface",
    "read_mesh",
    "read_points",
    "sample_surface",
    "validate_points",
    "write_points",
]


def _read_mesh_file(path: Path) -> PointCloud:
    vertices, faces = read_trimesh(path)
    return PointCloud(points=vertices, faces=faces if len(faces) else None, path=path)


_READERS: dict[str, Callable[[Path], PointCloud]] = {
    ".pcd": read_pcd,
    ".ply": read_ply,
    ".xyz": read_text,
    ".txt": read_text,
    ".csv": read_text,
    ".pts": read_text,
    ".npy": read_npy,
    ".npz": read_npz,
    ".stl": _read_mesh_file,
    ".obj": _read_mesh_file,
    ".off": _read_mesh_file,
}
READ_FORMATS: tuple[str, ...] = tuple(_READERS)
WRITE_FORMATS: tuple[str, ...] = (".pcd", ".ply", ".txt", ".xyz", ".csv", ".npy", ".npz")
NONFINITE_POLICIES = ("error", "drop")


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a scan, or None for a regular file.

    FIFOs block in open() and devices (a link to /dev/zero) never end, so only regular
    files are read; symbolic links to regular files are fine.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "broken symbolic link (its target does not exist)" if path.is_symlink() else "file not found"
    except OSError as exc:
        return f"cannot access the file ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, expected a point-cloud file"
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket"
    return f"is {kind}, not a regular file: only regular files are read"


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    problem = file_problem(path)
    if problem is not None:
        raise InputError(problem, path)
    return path


def _suffix(path: Path, formats: tuple[str, ...], action: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in formats:
        raise InputError(
            f"cannot {action} {suffix or 'files without an extension'!s}; "
            f"supported: {' '.join(formats)}",
            path,
        )
    return suffix


def read_points(path: str | Path, *, nonfinite: str = "error") -> PointCloud:
    """Read a point cloud (or a mesh's vertices and faces), dispatching on the extension.

    ``nonfinite="drop"`` removes points with NaN/inf coordinates (organised scans pad with
    them) instead of raising :class:`InputError`.
    """
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"nonfinite must be one of {NONFINITE_POLICIES}, got {nonfinite!r}")
    path = Path(path)
    suffix = _suffix(path, READ_FORMATS, "read")
    path = _existing_file(path)
    try:
        cloud = _READERS[suffix](path)
    except (InputError, MemoryError):
        raise
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror or exc})", path) from None
    cloud.path = path
    if nonfinite == "drop":
        cloud = _drop_nonfinite(cloud)
    cloud.points = validate_points(cloud.points, path)
    cloud.values = validate_values(cloud.values, len(cloud.points), path)
    return cloud


def _drop_nonfinite(cloud: PointCloud) -> PointCloud:
    points = cloud.points
    if points.ndim != 2 or not np.issubdtype(points.dtype, np.floating) or all_finite(points):
        return cloud
    keep = np.isfinite(points).all(axis=1)
    faces = cloud.faces
    if faces is not None:
        # Re-index faces onto the kept vertices; faces touching a dropped vertex go too.
        new_index = np.cumsum(keep) - 1
        faces = new_index[faces[keep[faces].all(axis=1)]]
    values = None if cloud.values is None else cloud.values[keep]
    return PointCloud(cloud.points[keep], values, faces, cloud.path)


def _as_colors(colors: np.ndarray, n: int, path: Path) -> np.ndarray:
    arr = np.asarray(colors)
    if arr.shape != (n, 3):
        raise InputError(f"expected colors of shape ({n}, 3), got {arr.shape}", path)
    if arr.dtype.kind == "f":
        # Float colours are taken as 0..1, the matplotlib convention.
        return np.rint(np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def write_points(
    path: str | Path,
    points: np.ndarray,
    values: np.ndarray | None = None,
    *,
    colors: np.ndarray | None = None,
) -> Path:
    """Write ``points`` (+ optional per-point ``values``) atomically; returns the path.

    ``colors`` (N, 3) is stored by PLY only. No colours are made up here: which scale a
    heatmap uses is the caller's choice (``mvr3d.utils.colormap``).
    """
    path = Path(path)
    suffix = _suffix(path, WRITE_FORMATS, "write")
    points = validate_points(points, path)
    values = validate_values(values, len(points), path)
    if suffix == ".ply":
        rgb = None if colors is None else _as_colors(colors, len(points), path)
        write_ply(path, points, values, colors=rgb)
    elif suffix == ".pcd":
        write_pcd(path, points, values)
    elif suffix == ".npy":
        write_npy(path, points, values)
    elif suffix == ".npz":
        write_npz(path, points, values)
    else:
        write_text(path, points, values)
    return path


def load_surface(path: str | Path, n_points: int, seed: int | None = 0) -> np.ndarray:
    """Points on an object's surface: sampled from a mesh file, or a cloud's own points."""
    cloud = read_points(path)
    if cloud.faces is not None and len(cloud.faces):
        return sample_surface(cloud.points, cloud.faces, n_points, seed)
    return cloud.points
