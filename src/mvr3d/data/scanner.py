"""A simulated range scanner: what one direction sees of a mesh, with incidence-dependent
density and depth noise along the line of sight; complete templates merged from scans all
around, partial test scans in a new pose, with defects placed where the scanner sees them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

from mvr3d.data.defects import DEFECT_KINDS, add_defect
from mvr3d.data.presets import BenchmarkPreset
from mvr3d.errors import InputError
from mvr3d.render.poses import cone_direction

# A test scan keeps about this share of a closed surface; used to size the dense sample.
VISIBLE_SHARE = 0.3

# z-buffer cell edge in mean point spacings of the dense sample; depth tolerance in cells.
CELL_SPACINGS = 2.5

DEPTH_TOLERANCE_CELLS = 2.0

MAX_DEFECT_TRIES = 20

# Faces seen this close to edge-on return no usable range data on a real scanner.
MIN_FACING_COSINE = 0.05

MIN_INCIDENCE_DENSITY = 0.15


def load_mesh(path: Path, size_mm: float) -> trimesh.Trimesh:
    """Load, make normals point outwards, centre on the box and scale to ``size_mm`` diagonal."""
    try:
        mesh = trimesh.load(path, force="mesh")
    except Exception as error:  # trimesh raises many types for unreadable files
        raise InputError(f"cannot read mesh: {error}", path) from error
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise InputError("file holds no triangle mesh", path)
    mesh.remove_unreferenced_vertices()
    if not mesh.is_winding_consistent or (mesh.is_watertight and mesh.volume < 0):
        trimesh.repair.fix_normals(mesh)
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    mesh.apply_scale(size_mm / float(np.linalg.norm(mesh.extents)))
    return mesh


def sample_with_normals(
    mesh: trimesh.Trimesh, n_points: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    seed = int(rng.integers(2**31))
    points, faces = trimesh.sample.sample_surface(mesh, n_points, seed=seed)
    return np.asarray(points, dtype=np.float64), np.asarray(mesh.face_normals[faces], np.float64)


def random_direction(rng: np.random.Generator) -> np.ndarray:
    direction = rng.normal(size=3)
    return direction / np.linalg.norm(direction)


def visible_from(
    points: np.ndarray,
    view: np.ndarray,
    cell: float,
    tolerance: float,
    normals: np.ndarray | None = None,
) -> np.ndarray:
    """Orthographic z-buffer seen from ``+view``: keep points near the front depth of their cell.

    With outward ``normals``, back faces are dropped and the tolerance grows with the
    surface's slope, so steep faces are kept whole instead of in aliased stripes.
    """
    helper = np.eye(3)[np.argmin(np.abs(view))]
    u = np.cross(view, helper)
    u /= np.linalg.norm(u)
    plane = points @ np.stack([u, np.cross(view, u)], axis=1)
    depth = points @ view
    ij = np.floor((plane - plane.min(axis=0)) / cell).astype(np.int64)
    key = ij[:, 0] * (ij[:, 1].max() + 1) + ij[:, 1]
    if normals is None:
        facing, slack = np.ones(len(points), dtype=bool), np.full(len(points), tolerance)
    else:
        cosine = normals @ view
        facing = cosine > MIN_FACING_COSINE
        slope = np.sqrt(1 - np.clip(cosine, 0.2, 1) ** 2) / np.clip(cosine, 0.2, 1)
        slack = tolerance + 1.5 * cell * slope
    front = np.full(key.max() + 1, -np.inf)
    np.maximum.at(front, key[facing], depth[facing])
    return facing & (depth >= front[key] - slack)


def random_pose(
    rng: np.random.Generator, max_deg: float, max_shift: float
) -> tuple[np.ndarray, np.ndarray]:
    axis = random_direction(rng)
    angle = np.deg2rad(rng.uniform(-max_deg, max_deg))
    rotation = Rotation.from_rotvec(axis * angle).as_matrix()
    return rotation, rng.uniform(-max_shift, max_shift, size=3)


@dataclass
class Scan:
    points: np.ndarray  # float32, as written
    labels: np.ndarray | None
    # Test scans: points = template_frame @ rotation.T + translation; view in template frame.
    rotation: np.ndarray | None = None
    translation: np.ndarray | None = None
    view: np.ndarray | None = None
    noise: float | None = None  # depth-noise sigma as a share of the object's diagonal
    visible_share: float | None = None

    @property
    def anomaly_fraction(self) -> float:
        return 0.0 if self.labels is None else float(self.labels.mean())


def make_template(mesh: trimesh.Trimesh, preset: BenchmarkPreset, rng: np.random.Generator) -> Scan:
    """A complete template: merged noisy scans from all around, or (``template_scans=0``)
    a noise-free sample of the mesh with a little jitter."""
    size = float(np.linalg.norm(mesh.extents))
    if preset.template_scans == 0:
        points, _ = sample_with_normals(mesh, preset.template_points, rng)
        points += rng.normal(scale=preset.template_jitter * size, size=points.shape)
        return Scan(points.astype(np.float32), None)
    directions = Rotation.random(random_state=int(rng.integers(2**31))).apply(
        sphere_directions(preset.template_scans)
    )
    per_scan = int(np.ceil(preset.template_points / preset.template_scans))
    parts = []
    for view in directions:
        seen = scan_surface(mesh, view, per_scan, "good", preset, rng)
        sigma = rng.uniform(*preset.noise) * size
        parts.append(seen.points + np.outer(rng.normal(scale=sigma, size=len(seen.points)), view))
    return Scan(np.concatenate(parts).astype(np.float32), None)


def sphere_directions(count: int) -> np.ndarray:
    """``count`` near-uniform unit vectors (Fibonacci spiral)."""
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    ring = np.sqrt(1.0 - z * z)
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([ring * np.cos(phi), ring * np.sin(phi), z], axis=1)


@dataclass(frozen=True)
class Scanner:
    """A range scanner looking along ``-view``; ``cell`` is its z-buffer resolution.

    Not the renderer's camera (``render.Camera`` makes network images): this one decides
    which surface samples a physical scanner returns, with back-face culling and a depth
    tolerance that grows with slope. It stays numpy and separate so that a seed keeps
    giving byte-identical benchmark files whatever the renderer becomes."""

    view: np.ndarray
    cell: float
    cull_back_faces: bool

    def visible(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        tolerance = DEPTH_TOLERANCE_CELLS * self.cell
        facing = normals if self.cull_back_faces else None
        return visible_from(points, self.view, self.cell, tolerance, facing)


@dataclass
class Seen:
    """What one scanner direction returns, in the mesh frame, before noise."""

    points: np.ndarray
    labels: np.ndarray | None
    visible_share: float  # share of the surface area the scanner sees


def scan_surface(
    mesh: trimesh.Trimesh, view: np.ndarray, target: int, kind: str,
    preset: BenchmarkPreset, rng: np.random.Generator,
) -> Seen:
    """About ``target`` points of what a scanner at ``view`` sees; a defect is applied to
    the whole surface before the visibility cut."""
    n_dense = int(np.ceil(target / VISIBLE_SHARE))
    for _ in range(4):  # grow the dense sample when this view sees less than expected
        points, normals = sample_with_normals(mesh, n_dense, rng)
        # Open meshes have no reliable outside, so only the z-buffer decides there.
        camera = Scanner(view, CELL_SPACINGS * np.sqrt(mesh.area / n_dense), mesh.is_watertight)
        visible = camera.visible(points, normals)
        density = incidence_weights(normals, view, preset)
        if density[visible].sum() >= target:
            break
        n_dense = int(np.ceil(n_dense * 1.2 * target / max(density[visible].sum(), 1)))
    share = float(visible.mean())
    returned = rng.random(len(points)) < density  # thinning by incidence
    labels = None
    if kind != "good":
        points, labels, visible = place_defect(points, normals, kind, visible & returned, camera, preset, rng, returned)
    keep = np.flatnonzero(visible & returned)
    if len(keep) > target:
        keep = np.sort(rng.choice(keep, target, replace=False))
    return Seen(points[keep], None if labels is None else labels[keep], share)


def incidence_weights(normals: np.ndarray, view: np.ndarray, preset: BenchmarkPreset) -> np.ndarray:
    """Chance that a scanner returns a point: ~cos(incidence), floored so steep faces keep some."""
    if not preset.incidence_density:
        return np.ones(len(normals))
    return np.clip(np.abs(normals @ view), MIN_INCIDENCE_DENSITY, 1.0)


def make_test_scan(
    mesh: trimesh.Trimesh, kind: str, preset: BenchmarkPreset, rng: np.random.Generator
) -> Scan:
    """One partial scan from a random direction of the preset's cone, in a new pose."""
    size = float(np.linalg.norm(mesh.extents))
    target = int(rng.integers(*preset.scan_points, endpoint=True))
    view = cone_direction(preset.view_cone_deg, rng)
    seen = scan_surface(mesh, view, target, kind, preset, rng)
    scan = finish_scan(seen.points, seen.labels, view, size, preset, rng)
    scan.visible_share = seen.visible_share
    return scan


def place_defect(
    points: np.ndarray,
    normals: np.ndarray,
    kind: str,
    visible: np.ndarray,
    camera: Scanner,
    preset: BenchmarkPreset,
    rng: np.random.Generator,
    returned: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Retry until the labelled share of what the scanner returns lies in the preset's range."""
    low, high = preset.anomaly_fraction
    # Aim inside the range: the visibility cut and subsampling move the share a little.
    aim = (low + 0.2 * (high - low), high - 0.2 * (high - low))
    for _ in range(MAX_DEFECT_TRIES):
        moved, labels = add_defect(points, normals, kind, rng, aim, visible_mask=visible)
        seen = camera.visible(moved, normals)
        if returned is not None:
            seen &= returned
        share = labels[seen].mean() if seen.any() else 0.0
        if low + 0.001 <= share <= high - 0.001 and seen.sum() >= 0.8 * visible.sum():
            return moved, labels, seen
    raise InputError(
        f"could not place a {kind} covering {low:.0%}-{high:.0%} of a scan in "
        f"{MAX_DEFECT_TRIES} tries (mesh too fragmented?)"
    )


def finish_scan(
    points: np.ndarray,
    labels: np.ndarray | None,
    view: np.ndarray,
    size: float,
    preset: BenchmarkPreset,
    rng: np.random.Generator,
) -> Scan:
    """Scanner noise along the line of sight, a few stray points, then a new pose."""
    noise = rng.uniform(*preset.noise)
    points = points + np.outer(rng.normal(scale=noise * size, size=len(points)), view)
    n_outliers = int(round(preset.outlier_fraction * len(points)))
    if n_outliers:
        stray = rng.choice(len(points), n_outliers, replace=False)
        offsets = rng.uniform(0.005, 0.015, n_outliers) * size * rng.choice([-1.0, 1.0], n_outliers)
        points[stray] += np.outer(offsets, view)
    rotation, shift = random_pose(rng, preset.max_rotation_deg, preset.max_translation * size)
    points = points @ rotation.T + shift
    return Scan(points.astype(np.float32), labels, rotation, shift, view, noise)


def shuffled_kinds(preset: BenchmarkPreset, rng: np.random.Generator) -> list[str]:
    """Good and defective scans in a shuffled order, so an index says nothing about the label."""
    defective = [DEFECT_KINDS[i % len(DEFECT_KINDS)] for i in range(preset.n_test_defective)]
    kinds = ["good"] * preset.n_test_good + defective
    return [kinds[i] for i in rng.permutation(len(kinds))]
