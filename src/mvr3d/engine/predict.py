"""Score files and write per-point scores, heatmaps and an object-score table."""

from __future__ import annotations

import csv
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mvr3d.errors import InputError
from mvr3d.io import READ_FORMATS, read_points, write_points
from mvr3d.models import MVRDetector
from mvr3d.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)


def list_scans(path: Path) -> list[Path]:
    """A single scan file, or every readable scan directly inside a folder (sorted)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError("input not found", path)
    scans = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in READ_FORMATS)
    if not scans:
        raise InputError(f"no scans with a readable extension ({', '.join(sorted(READ_FORMATS))})", path)
    stems = [p.stem for p in scans]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise InputError(f"several scans share the stem(s) {clashes}; outputs would collide", path)
    return scans


def _guard_inputs(scans: list[Path], output: Path) -> None:
    inputs = {p.resolve() for p in scans}
    for scan in scans:
        for suffix in (".txt", ".ply"):
            if (output / f"{scan.stem}{suffix}").resolve() in inputs:
                raise InputError(f"output would overwrite the input {scan}; choose another --output", output)


def predict_files(
    detector: MVRDetector, inputs: Path, output: Path, heatmaps: bool = True, batch: int = 4
) -> list[dict]:
    """Score every scan; write ``<stem>.txt``, ``<stem>.ply`` and ``scores.csv`` under output.

    Scans are scored ``batch`` at a time (their views share network batches) while a
    background thread reads the next batch, so disk and parsing overlap the scoring.
    """
    if batch < 1:
        raise InputError(f"batch must be a positive number of scans, got {batch}")
    scans = list_scans(inputs)
    _guard_inputs(scans, output)
    output.mkdir(parents=True, exist_ok=True)
    groups = [scans[i : i + batch] for i in range(0, len(scans), batch)]
    rows = []
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(_read_all, groups[0])
        for index, group in enumerate(groups):
            clouds = pending.result()
            if index + 1 < len(groups):
                pending = reader.submit(_read_all, groups[index + 1])
            results = detector.score_many(clouds)
            for path, cloud, result in zip(group, clouds, results, strict=True):
                rows.append(_write_outputs(path, cloud, result, output, heatmaps))
    _write_table(output / "scores.csv", rows)
    return rows


def _read_all(paths: list[Path]) -> list:
    return [read_points(path) for path in paths]


def _write_outputs(path: Path, cloud, result, output: Path, heatmaps: bool) -> dict:
    points = np.asarray(cloud.points)
    write_points(output / f"{path.stem}.txt", points, result.point_scores)
    if heatmaps:
        write_points(output / f"{path.stem}.ply", points, result.point_scores)
    log.info("%s: object score %.5f (%d points)", path.name, result.object_score, len(points))
    return {"file": path.stem, "object_score": result.object_score, "coverage": result.coverage}


def _write_table(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "object_score"])
    for row in rows:
        writer.writerow([row["file"], f"{row['object_score']:.8g}"])
    atomic_write_text(path, buffer.getvalue())
