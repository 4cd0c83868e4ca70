"""Build Real3D-AD-style benchmarks from meshes.

Each class is one mesh, rescaled to millimetres. Every scan comes from a simulated range
scanner: a z-buffer decides what one direction sees, the point density falls with the
incidence angle (a real scanner samples a steep face sparsely), and depth noise runs
along the line of sight. Train: complete 360-degree "templates", each merged from scans
taken all around the part with that same noise (as real templates are made). Test:
partial one-sided scans from a random direction (anywhere on the sphere in the realistic
presets) in a random rigid pose; half carry a bulge or sink defect whose per-point labels
go to ``gt/<stem>.txt``. meta.json records each test scan's nuisances (view direction,
visible share of the surface, point count, noise level) so that a detector can be checked
for scores that follow them. Everything is derived from the seed, so the same seed and
shapes give byte-identical files.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

from mvr3d.data.defects import DEFECT_KINDS, add_defect
from mvr3d.errors import InputError
from mvr3d.render.poses import cone_direction
from mvr3d.utils.atomic import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

GENERATOR = "mvr3d.make_benchmark"
META_NAME = "meta.json"
MESH_EXTENSIONS = (".stl", ".obj", ".off", ".ply", ".glb", ".gltf")

# Test models of the trimesh project (github mikedh/trimesh, models/): MIT.
TRIMESH_MODELS = frozenset(
    name.lower()
    for name in (
        "1002_tray_bottom.STL", "ADIS16480.STL", "angle_block.STL", "busted.STL",
        "counter.unitsmm.STL", "cycloidal.ply", "featuretype.STL", "fuze.ply",
        "idler_riser.STL", "octagonal_pocket.stl", "plate_holes.STL", "round.stl",
    )
)  # fmt: skip
# Classic test models (alecjacobson/common-3d-test-models, libigl-tutorial-data).
RESEARCH_MODELS = frozenset(
    name.lower()
    for name in (
        "alligator.obj", "cheburashka.obj", "cow.obj", "fandisk.obj", "homer.obj", "igea.ply",
        "nefertiti.obj", "rocker-arm.obj", "spot.obj", "stanford-bunny.obj", "woody.obj",
        "beetle.off", "bumpy-cube.obj", "camelhead.off", "decimated-knight.off", "fertility.off",
        "screwdriver.off", "truck.obj",
    )
)  # fmt: skip
MIT_LICENCE = "MIT (github mikedh/trimesh test models; LICENSE-trimesh-models.md)"
RESEARCH_LICENCE = (
    "terms of the original source (common 3D test models): research use with credit, "
    "do not redistribute"
)
UNKNOWN_LICENCE = "unknown (user-supplied mesh)"

# A test scan keeps about this share of a closed surface; used to size the dense sample.
VISIBLE_SHARE = 0.3
# z-buffer cell edge in mean point spacings of the dense sample; depth tolerance in cells.
CELL_SPACINGS = 2.5
DEPTH_TOLERANCE_CELLS = 2.0
MAX_DEFECT_TRIES = 20
# Faces seen this close to edge-on return no usable range data on a real scanner.
MIN_FACING_COSINE = 0.05
MIN_INCIDENCE_DENSITY = 0.15


@dataclass(frozen=True)
class BenchmarkPreset:
    """How big a benchmark is; ``shapes`` lists preferred meshes, in class order."""

    name: str
    shapes: tuple[str, ...]
    n_classes: int
    n_templates: int
    n_test_good: int
    n_test_defective: int
    template_points: int
    scan_points: tuple[int, int]
    size_mm: tuple[float, float] = (50.0, 150.0)
    noise: tuple[float, float] = (0.001, 0.003)
    template_jitter: float = 0.0002
    outlier_fraction: float = 0.0001
    max_rotation_deg: float = 30.0
    max_translation: float = 0.1
    anomaly_fraction: tuple[float, float] = (0.01, 0.05)
    workers: int = 0
    # The scanner looks from within this angle of the mesh's +z axis (180 = from anywhere:
    # a part on a line can lie any way up, and Real3D-AD scans both sides).
    view_cone_deg: float = 180.0
    # Templates merged from this many noisy scans all around the part; 0 = noise-free
    # samples of the mesh (the old, unrealistic templates).
    template_scans: int = 12
    # Points are kept with probability ~ max(cos(incidence), floor): steep faces are sparse.
    incidence_density: bool = True


TINY = BenchmarkPreset(
    name="tiny",
    shapes=("angle_block.STL", "idler_riser.STL"),
    n_classes=2,
    n_templates=4,
    n_test_good=4,
    n_test_defective=4,
    template_points=8000,
    scan_points=(3000, 5000),
    outlier_fraction=0.0,
    max_rotation_deg=20.0,
    anomaly_fraction=(0.01, 0.045),
    template_scans=8,
    workers=1,
)

STANDARD_SHAPES = (
    "angle_block.STL",
    "busted.STL",
    "cycloidal.ply",
    "fandisk.obj",
    "featuretype.STL",
    "idler_riser.STL",
    "rocker-arm.obj",
    "plate_holes.STL",
    "cow.obj",
    "fertility.off",
)  # fmt: skip

# Realistic: scanner directions over the whole sphere, merged noisy templates, 0-20 deg
# pose change and +-10 % shift, incidence-dependent density, 1.0-4.5 % anomalous points.
STANDARD = BenchmarkPreset(
    name="standard",
    shapes=STANDARD_SHAPES,
    n_classes=10,
    n_templates=4,
    n_test_good=20,
    n_test_defective=20,
    template_points=200_000,
    scan_points=(40_000, 120_000),
    max_rotation_deg=20.0,
    anomaly_fraction=(0.01, 0.045),
)

# The first sessions' preset, kept for comparison only: the scanner looks from within
# 60 deg of +z and the templates are noise-free samples of the mesh. Detectors tuned on
# it learned the side a scan was taken from, not the defects.
STANDARD_TOPVIEW = replace(
    STANDARD, name="standard-topview", max_rotation_deg=30.0, anomaly_fraction=(0.01, 0.05),
    view_cone_deg=60.0, template_scans=0, incidence_density=False,
)

PRESETS: dict[str, BenchmarkPreset] = {
    "tiny": TINY, "standard": STANDARD, "standard-topview": STANDARD_TOPVIEW,
}  # fmt: skip


@dataclass(frozen=True)
class ClassJob:
    """Everything one worker needs to build one class; plain data so it pickles."""

    name: str
    mesh_path: str
    out_dir: str
    preset: BenchmarkPreset
    seed: int


def class_name(path: Path) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.name.split(".")[0].lower()).strip("_")


def licence_of(path: Path) -> str:
    name = path.name.lower()
    if name in TRIMESH_MODELS:
        return MIT_LICENCE
    return RESEARCH_LICENCE if name in RESEARCH_MODELS else UNKNOWN_LICENCE


def choose_shapes(shapes_dir: Path, preset: BenchmarkPreset) -> list[Path]:
    """Preset's preferred meshes that exist, then any other meshes, up to ``n_classes``."""
    if not shapes_dir.is_dir():
        raise InputError("shapes folder not found", shapes_dir)
    available = sorted(
        p for p in shapes_dir.iterdir() if p.is_file() and p.suffix.lower() in MESH_EXTENSIONS
    )
    by_name = {p.name.lower(): p for p in available}
    preferred = [by_name[s.lower()] for s in preset.shapes if s.lower() in by_name]
    unique: dict[str, Path] = {}  # class names must differ: "Round.stl" vs "round.obj"
    for path in preferred + available:
        unique.setdefault(class_name(path), path)
    chosen = list(unique.values())
    if not chosen:
        raise InputError(f"no meshes ({'/'.join(MESH_EXTENSIONS)}) found", shapes_dir)
    if len(chosen) < preset.n_classes:
        log.warning(
            "preset %s wants %d classes, %s has only %d meshes",
            preset.name, preset.n_classes, shapes_dir, len(chosen),
        )  # fmt: skip
    return chosen[: preset.n_classes]


def class_rng(seed: int, name: str, *stream: int) -> np.random.Generator:
    """Independent stream per (class, role, index): classes build in any order or process."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), *stream])


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
class Camera:
    """A scanner looking along ``-view``; ``cell`` is its z-buffer resolution."""

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
        camera = Camera(view, CELL_SPACINGS * np.sqrt(mesh.area / n_dense), mesh.is_watertight)
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
    camera: Camera,
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


def gt_text(points: np.ndarray, labels: np.ndarray) -> bytes:
    """``x y z label`` lines; one C-level format call instead of a Python loop per row."""
    table = np.empty((len(points), 4), dtype=object)
    table[:, :3] = points.astype(np.float64)
    table[:, 3] = labels.astype(np.int64)
    row = "%.6f %.6f %.6f %d\n"
    return ((row * len(points)) % tuple(table.ravel().tolist())).encode()


def write_scan(path: Path, points: np.ndarray) -> None:
    from mvr3d.io import write_points  # writes atomically

    write_points(path, points)


def build_class(job: ClassJob) -> dict[str, Any]:
    """Write one class folder; returns its entry of meta.json."""
    preset, out = job.preset, Path(job.out_dir)
    size_mm = float(np.round(class_rng(job.seed, job.name, 0).uniform(*preset.size_mm), 1))
    mesh = load_mesh(Path(job.mesh_path), size_mm)
    for folder in ("train", "test", "gt"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for k in range(preset.n_templates):
        template = make_template(mesh, preset, class_rng(job.seed, job.name, 1, k))
        write_scan(out / "train" / f"{k}_template.pcd", template.points)
    scans: dict[str, dict[str, Any]] = {}
    for k, kind in enumerate(shuffled_kinds(preset, class_rng(job.seed, job.name, 2))):
        scan = make_test_scan(mesh, kind, preset, class_rng(job.seed, job.name, 3, k))
        stem = f"{k}_{kind}"
        write_scan(out / "test" / f"{stem}.pcd", scan.points)
        if scan.labels is not None:
            atomic_write_bytes(out / "gt" / f"{stem}.txt", gt_text(scan.points, scan.labels))
        scans[stem] = scan_entry(scan)
    return class_entry(job, mesh, size_mm, scans)


def scan_entry(scan: Scan) -> dict[str, Any]:
    """Per-scan facts for meta.json; the pose lets registration methods be checked."""
    assert scan.rotation is not None and scan.translation is not None and scan.view is not None
    return {
        "points": len(scan.points),
        "anomaly_fraction": round(scan.anomaly_fraction, 6),
        "view": scan.view.tolist(),
        "noise": scan.noise,
        "visible_share": None if scan.visible_share is None else round(scan.visible_share, 6),
        "rotation": scan.rotation.tolist(),
        "translation": scan.translation.tolist(),
    }


def class_entry(
    job: ClassJob, mesh: trimesh.Trimesh, size_mm: float, scans: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    path, preset = Path(job.mesh_path), job.preset
    defective = [s["anomaly_fraction"] for n, s in scans.items() if not n.endswith("_good")]
    counts = [s["points"] for s in scans.values()]
    return {
        "source": path.name,
        "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "licence": licence_of(path),
        "size_mm": size_mm,
        "faces": len(mesh.faces),
        "templates": preset.n_templates,
        "template_points": preset.template_points,
        "test_good": len(scans) - len(defective),
        "test_defective": len(defective),
        "test_points_min": min(counts),
        "test_points_max": max(counts),
        "anomaly_fraction_min": min(defective, default=0.0),
        "anomaly_fraction_max": max(defective, default=0.0),
        "anomaly_fraction_mean": round(float(np.mean(defective)), 6) if defective else 0.0,
        "scans": scans,
    }


def read_meta(out_root: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((out_root / META_NAME).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("generator") == GENERATOR else None


def prepare_out(out_root: Path, preset: BenchmarkPreset, classes: list[str]) -> None:
    """Refuse foreign non-empty folders; clear the classes of an earlier build of this preset."""
    if out_root.exists() and not out_root.is_dir():
        raise InputError("output path exists and is not a folder", out_root)
    if out_root.is_dir() and any(out_root.iterdir()):
        meta = read_meta(out_root)
        if meta is None or meta.get("preset") != preset.name:
            found = (
                "not an mvr3d benchmark" if meta is None else f"a {meta.get('preset')!r} benchmark"
            )
            raise InputError(
                f"output folder is not empty and is {found}; refusing to overwrite it "
                f"(choose an empty or new folder, or a previous {preset.name!r} benchmark)",
                out_root,
            )
        for name in set(meta.get("class_names", [])) | set(classes):
            if re.fullmatch(r"[a-z0-9_]+", name) and (out_root / name).is_dir():
                shutil.rmtree(out_root / name)
    out_root.mkdir(parents=True, exist_ok=True)
    # Marks the folder as ours before any scan lands, so an interrupted build can be redone.
    write_meta(out_root, {"generator": GENERATOR, "preset": preset.name, "complete": False,
                          "class_names": classes})  # fmt: skip


def write_meta(out_root: Path, meta: dict[str, Any]) -> None:
    atomic_write_text(out_root / META_NAME, json.dumps(meta, indent=2, sort_keys=False) + "\n")


def run_jobs(jobs: list[ClassJob], workers: int) -> list[dict[str, Any]]:
    """Classes are independent and seeded by name, so parallel output equals serial output."""
    if workers <= 1 or len(jobs) <= 1:
        return [build_class(job) for job in jobs]
    # spawn, not fork: the parent may hold torch/OpenMP threads that fork would orphan.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(build_class, jobs))


def make_benchmark(
    shapes_dir: str | Path,
    out_root: str | Path,
    preset: str | BenchmarkPreset = "tiny",
    seed: int = 0,
    workers: int | None = None,
) -> dict[str, Any]:
    """Build a benchmark in the Real3D-AD layout under ``out_root``; returns meta.json's content."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        preset = PRESETS[preset]
    shapes_dir, out_root = Path(shapes_dir), Path(out_root)
    shapes = choose_shapes(shapes_dir, preset)
    names = [class_name(p) for p in shapes]
    prepare_out(out_root, preset, names)
    jobs = [
        ClassJob(n, str(p), str(out_root / n), preset, seed)
        for n, p in zip(names, shapes, strict=True)
    ]
    if workers is None:
        workers = preset.workers or min(os.cpu_count() or 1, len(jobs))
    entries = run_jobs(jobs, workers)
    meta = {
        "generator": GENERATOR,
        "complete": True,
        "preset": preset.name,
        "seed": seed,
        "layout": "real3d-ad",
        "class_names": names,
        "settings": asdict(preset),
        "sources": {e["source"]: e["licence"] for e in entries},
        "classes": dict(zip(names, entries, strict=True)),
    }
    write_meta(out_root, meta)
    return json.loads(json.dumps(meta))  # the same plain lists and dicts as meta.json
