"""Benchmark presets and the shapes they use, with each shape's licence."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

from mvr3d.errors import InputError

log = logging.getLogger(__name__)

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


def with_scan_points(preset: BenchmarkPreset, low: int, high: int) -> BenchmarkPreset:
    """``preset`` with test scans of ``low`` to ``high`` points (e.g. 100 k each, where a
    speed target is stated for such scans); its name says so, so a build of it never
    mixes with one of the plain preset."""
    if not 1 <= low <= high:
        raise InputError(f"scan points must be 1 <= MIN <= MAX, got {low} and {high}")
    return replace(preset, name=f"{preset.name}-points-{low}-{high}", scan_points=(low, high))


def with_good_scans(preset: BenchmarkPreset, count: int) -> BenchmarkPreset:
    """``preset`` with ``count`` good test scans per class (the defective ones unchanged).
    A nuisance check needs many: with 20, a detector whose scores follow no nuisance still
    shows abs(Spearman) >= 0.3 somewhere almost surely (benchmarks/nuisance_null.md)."""
    if count < 1:
        raise InputError(f"good scans must be at least 1, got {count}")
    return replace(preset, name=f"{preset.name}-good-{count}", n_test_good=count)


PRESETS: dict[str, BenchmarkPreset] = {
    "tiny": TINY, "standard": STANDARD, "standard-topview": STANDARD_TOPVIEW,
}  # fmt: skip


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
