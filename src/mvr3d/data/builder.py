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

Presets are in ``data/presets.py`` and the scanner simulation in ``data/scanner.py``;
this module runs one job per class and writes the files and ``meta.json``.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from mvr3d.data.presets import (
    PRESETS,
    BenchmarkPreset,
    choose_shapes,
    class_name,
    licence_of,
    with_good_scans,
    with_scan_points,
)
from mvr3d.data.scanner import Scan, load_mesh, make_template, make_test_scan, shuffled_kinds
from mvr3d.errors import InputError
from mvr3d.io import write_points
from mvr3d.utils.atomic import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

GENERATOR = "mvr3d.make_benchmark"

META_NAME = "meta.json"


@dataclass(frozen=True)
class ClassJob:
    """Everything one worker needs to build one class; plain data so it pickles."""

    name: str
    mesh_path: str
    out_dir: str
    preset: BenchmarkPreset
    seed: int


def class_rng(seed: int, name: str, *stream: int) -> np.random.Generator:
    """Independent stream per (class, role, index): classes build in any order or process."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), *stream])


def gt_text(points: np.ndarray, labels: np.ndarray) -> bytes:
    """``x y z label`` lines; one C-level format call instead of a Python loop per row."""
    table = np.empty((len(points), 4), dtype=object)
    table[:, :3] = points.astype(np.float64)
    table[:, 3] = labels.astype(np.int64)
    row = "%.6f %.6f %.6f %d\n"
    return ((row * len(points)) % tuple(table.ravel().tolist())).encode()


def write_scan(path: Path, points: np.ndarray) -> None:
    write_points(path, points)  # atomic: a killed build leaves no half-written scan


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
    scan_points: tuple[int, int] | None = None,
    good_scans: int | None = None,
) -> dict[str, Any]:
    """Build a benchmark in the Real3D-AD layout under ``out_root``; returns meta.json's
    content. ``scan_points`` (min, max) overrides the preset's test scan sizes, ``good_scans``
    its number of good test scans per class."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        preset = PRESETS[preset]
    if scan_points is not None:
        preset = with_scan_points(preset, *scan_points)
    if good_scans is not None:
        preset = with_good_scans(preset, good_scans)
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
