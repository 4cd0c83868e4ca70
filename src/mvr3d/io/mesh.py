"""Triangle meshes (STL / OBJ / OFF / PLY) and uniform surface sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mvr3d.errors import InputError

__all__ = ["MESH_FORMATS", "read_mesh", "read_trimesh", "sample_surface"]

MESH_FORMATS = (".stl", ".obj", ".off")


def read_trimesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Load STL/OBJ/OFF with trimesh; faces may be empty for vertex-only OBJ files."""
    import trimesh  # local: heavy dependency, slow to import and only meshes need it

    path = Path(path)
    if path.suffix.lower() == ".stl":
        _check_stl(path)
    try:
        # process=False keeps OBJ/OFF vertices in file order; STL duplicates are merged below.
        mesh = trimesh.load(path, force="mesh", process=False)
        vertices = np.asarray(mesh.vertices, dtype=np.float64)
        faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
        if len(vertices) == 0 and path.suffix.lower() == ".obj":
            # force="mesh" drops the vertices of a face-less OBJ; a point cloud keeps them.
            loaded = trimesh.load(path, process=False)
            vertices = np.asarray(getattr(loaded, "vertices", np.empty((0, 3))), np.float64)
        elif path.suffix.lower() == ".stl" and len(faces):
            mesh.merge_vertices()
            vertices = np.asarray(mesh.vertices, dtype=np.float64)
            faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    except InputError:
        raise
    except Exception as exc:  # trimesh raises many types for malformed files
        raise InputError(f"cannot read mesh ({type(exc).__name__}: {exc})", path) from None
    return vertices.reshape(-1, 3), faces


def _check_stl(path: Path) -> None:
    """A binary STL's size is fixed by its triangle count; anything else must be ASCII STL.
    (trimesh would otherwise guess a text encoding and fail in odd ways.)"""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(84)
    if len(head) == 84:
        count = int.from_bytes(head[80:84], "little")
        if 84 + 50 * count == size:
            return
    if head.lstrip().lower().startswith(b"solid"):
        with path.open("rb") as handle:
            sample = handle.read(1 << 16)
        try:
            sample.decode("ascii")
            return
        except UnicodeDecodeError:
            pass
    if len(head) < 84:
        raise InputError(f"not an STL file: {size} bytes, shorter than a binary STL header (84)", path)
    raise InputError(
        f"binary STL header claims {count:,} triangles ({84 + 50 * count:,} bytes) but the file has "
        f"{size:,} bytes, and it is not ASCII STL either",
        path,
    )


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(vertices float64 (V, 3), faces int64 (M, 3))``; a mesh without faces fails."""
    from mvr3d.io import read_points  # local: import cycle, mvr3d.io imports this module

    path = Path(path)
    cloud = read_points(path)
    if cloud.faces is None or len(cloud.faces) == 0:
        raise InputError("file has no triangle faces (it is a point cloud, not a mesh)", path)
    return cloud.points.astype(np.float64), cloud.faces.astype(np.int64)


def _triangle_areas(corners: np.ndarray) -> np.ndarray:
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    return 0.5 * np.linalg.norm(cross, axis=1)


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, n_points: int, seed: int | None = 0
) -> np.ndarray:
    """Draw ``n_points`` points uniformly by area from a triangle mesh (seeded, vectorised)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if n_points < 1:
        raise InputError(f"n_points must be >= 1, got {n_points}")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise InputError(f"mesh has no triangle faces (faces shape {faces.shape})")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InputError(f"face indices out of range for {len(vertices)} vertices")
    corners = vertices[faces]
    areas = _triangle_areas(corners)
    cumulative = np.cumsum(areas)
    total = cumulative[-1]
    if not np.isfinite(total) or total <= 0:
        raise InputError(f"mesh surface area is {total}: all triangles are degenerate")
    rng = np.random.default_rng(seed)
    chosen = np.searchsorted(cumulative, rng.random(n_points) * total, side="right")
    chosen = np.minimum(chosen, len(faces) - 1)  # guards the r * total == total edge case
    # sqrt warps (r1, r2) so barycentric samples are uniform over each triangle.
    r1 = np.sqrt(rng.random(n_points))[:, None]
    r2 = rng.random(n_points)[:, None]
    a, b, c = (corners[chosen, i] for i in range(3))
    return (1.0 - r1) * a + r1 * (1.0 - r2) * b + r1 * r2 * c
