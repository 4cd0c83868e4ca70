"""Score files and write per-point scores, heatmaps and an object-score table."""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mvr3d.data.folder import LABELS_SUFFIX
from mvr3d.engine.results import REGIONS_FILE, SCORES_FILE, ScoreRow, write_regions, write_scores
from mvr3d.errors import InputError, MVR3DError
from mvr3d.io import READ_FORMATS, file_problem, read_points, write_points
from mvr3d.models.base import Detector
from mvr3d.models.inspection import inspect_result
from mvr3d.models.thresholds import Threshold
from mvr3d.utils.atomic import atomic_write_text
from mvr3d.utils.colormap import colormap
from mvr3d.utils.provenance import provenance

log = logging.getLogger(__name__)


MANIFEST_NAME = ".mvr3d-predict.json"
# What made the scores: detector, its settings, the checkpoint, versions and git hash.
RECORD_NAME = "predict.json"
# Below this share of points seen in a view, a scan's scores are mostly borrowed: say so.
LOW_COVERAGE = 0.5
TABLE_NAME = SCORES_FILE
# The inspection page `predict --report` adds (visualization/inspection.py writes it).
REPORT_NAME = "report.html"
_MANIFEST_FORMAT = "mvr3d-predict"
_OWN_HIDDEN = (MANIFEST_NAME, ".mvr3d.lock")  # the lock is cli.common.LOCK_NAME


def list_scans(path: Path) -> list[Path]:
    """A single scan file, or every readable scan in a folder and its subfolders (sorted),
    so ``test/`` with ``good/`` and ``bump/`` inside works; per-point label files
    (``<stem>.labels.txt``) and hidden files are not scans and are skipped."""
    if not path.is_dir():
        problem = file_problem(path)
        if problem is not None:
            raise InputError("input not found" if problem == "file not found" else problem, path)
        return [path]
    named = sorted(p for p in _files_below(path) if _is_scan_name(p.relative_to(path)))
    unreadable = [f"{p.relative_to(path)} ({file_problem(p)})" for p in named if file_problem(p) is not None]
    if unreadable:
        raise InputError(f"not regular scan files, move them away: {'; '.join(unreadable[:5])}", path)
    scans = named
    if not scans:
        raise InputError(f"no scans with a readable extension ({', '.join(sorted(READ_FORMATS))})", path)
    names = [scan_name(p, path) for p in scans]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise InputError(f"several scans share the name(s) {clashes}; outputs would collide", path)
    return scans


def _files_below(folder: Path) -> list[Path]:
    """Files in ``folder`` and its subfolders; links to folders are not followed (no loops)."""
    found = []
    for directory, subfolders, files in os.walk(folder):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        found += [Path(directory) / name for name in files]
    return found


def _is_scan_name(relative: Path) -> bool:
    if any(part.startswith(".") for part in relative.parts):
        return False
    return relative.suffix.lower() in READ_FORMATS and not relative.name.lower().endswith(LABELS_SUFFIX)


def scan_name(scan: Path, root: Path | None = None) -> str:
    """What a scan's outputs are called: its stem, prefixed by its subfolders below ``root``
    joined with "__" (``bump/bump_00.pcd`` -> ``bump__bump_00``)."""
    if root is None or not root.is_dir():
        return scan.stem
    return "__".join((*scan.relative_to(root).parent.parts, scan.stem))


def planned_outputs(scans: list[Path], heatmaps: bool = True, root: Path | None = None, txt: bool = True) -> list[str]:
    """Names ``predict`` writes into its output folder for these scans."""
    suffixes = tuple(s for s, wanted in ((".txt", txt), (".ply", heatmaps)) if wanted)
    return [f"{scan_name(scan, root)}{suffix}" for scan in scans for suffix in suffixes] + [TABLE_NAME, REGIONS_FILE,
                                                                                             RECORD_NAME, REPORT_NAME]


def check_output(inputs: Path, output: Path, heatmaps: bool = True, txt: bool = True) -> list[Path]:
    """Refuse an output folder predict may not write into; returns the scans.

    The folder must be new, empty, or one predict wrote (its manifest lists the files),
    and never the input folder, inside it, or a path onto an input file.
    """
    scans = list_scans(inputs)
    names = planned_outputs(scans, heatmaps, inputs, txt)
    out = output.resolve()
    if inputs.is_dir() and (out == inputs.resolve() or inputs.resolve() in out.parents):
        raise InputError(f"the output folder is (inside) the input folder {inputs}; choose another --output", output)
    scan_paths = {p.resolve() for p in scans}
    if any((out / name).resolve() in scan_paths for name in names):
        raise InputError("output would overwrite an input scan; choose another --output", output)
    if output.exists() or output.is_symlink():
        if not output.is_dir():
            raise InputError("--output exists and is not a folder", output)
        _check_owned(output, names)
    return scans


def _read_manifest(output: Path) -> list[str] | None:
    path = output / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        files = record["files"] if record.get("format") == _MANIFEST_FORMAT else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        files = None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise InputError(f"{MANIFEST_NAME} is damaged; delete it if this folder holds only predict results", output)
    return files


def _is_our_temp(name: str, known: set[str]) -> bool:
    """``.<name>.XXXX.tmp`` left by an interrupted atomic write of one of our files."""
    match = re.fullmatch(r"\.(.+)\.[^.]+\.tmp", name)
    return match is not None and match.group(1) in known


def _check_owned(output: Path, names: list[str]) -> None:
    owned = set(_read_manifest(output) or [])
    known = owned | set(names) | {MANIFEST_NAME}
    entries = [p.name for p in output.iterdir() if p.name not in _OWN_HIDDEN and not _is_our_temp(p.name, known)]
    foreign = sorted(name for name in entries if name not in owned)
    if not owned and foreign:
        raise InputError(
            f"folder holds files predict did not write ({', '.join(foreign[:5])}); choose a new or empty --output",
            output,
        )
    clashes = sorted(set(foreign) & set(names))
    if clashes:
        raise InputError(f"would overwrite files predict did not write: {', '.join(clashes[:5])}", output)
    for name in names:
        target = output / name
        if target.exists() and not target.is_file():
            raise InputError(f"{name} exists and is not a regular file", output)


def _claim(output: Path, names: list[str]) -> None:
    """Record (atomically, before any result) what predict writes here; drop stale temps."""
    output.mkdir(parents=True, exist_ok=True)
    files = sorted(set(_read_manifest(output) or []) | set(names))
    record = {"format": _MANIFEST_FORMAT, "version": 1, "files": files}
    atomic_write_text(output / MANIFEST_NAME, json.dumps(record, indent=1) + "\n")
    for path in output.iterdir():
        if _is_our_temp(path.name, set(files) | {MANIFEST_NAME}):
            path.unlink(missing_ok=True)  # the lock keeps other runs out, so none is live


def predict_files(
    detector: Detector, inputs: Path, output: Path, heatmaps: bool = True, batch: int | None = None,
    checkpoint: Path | None = None, threshold: Threshold | None = None, txt: bool = True,
) -> list[dict]:
    """Score every scan; write ``<name>.txt``, ``<name>.ply``, ``scores.csv`` and
    ``predict.json`` (what made them: detector, settings, ``checkpoint``, versions) under output;
    with a ``threshold`` also verdicts and ``regions.csv`` (connected anomalous points).

    Scans are scored ``batch`` at a time (default: the method's ``score_batch``; MVR's views
    share network batches, the template method's pose searches one ICP batch) while a
    background thread reads the next batch, so disk and parsing overlap the scoring.
    """
    batch = detector.score_batch if batch is None else batch
    if batch < 1:
        raise InputError(f"batch must be a positive number of scans, got {batch}")
    detector.check_is_fitted()  # before any output is claimed
    scans = check_output(inputs, output, heatmaps, txt)
    with output_errors(output):
        _claim(output, planned_outputs(scans, heatmaps, inputs, txt))
        rows = _predict(detector, scans, output, (txt, heatmaps), batch, inputs, threshold)
        _write_record(output / RECORD_NAME, detector, inputs, checkpoint, len(rows), threshold)
        return rows


@contextmanager
def output_errors(output: Path) -> Iterator[None]:
    """A full or read-only disk as one :class:`MVR3DError` line (scaled-out predict shares it)."""
    try:
        yield
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            # Every file is written atomically: what exists is complete, the rest absent.
            raise MVR3DError(f"{output}: cannot write results ({error.strerror}); files already written are complete") from None
        raise


def _predict(
    detector: Detector, scans: list[Path], output: Path, files: tuple[bool, bool], batch: int,
    root: Path | None = None, threshold: Threshold | None = None,
) -> list[dict]:
    groups = [scans[i : i + batch] for i in range(0, len(scans), batch)]
    rows, regions = [], []
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(_read_all, groups[0])
        for index, group in enumerate(groups):
            clouds = pending.result()
            if index + 1 < len(groups):
                pending = reader.submit(_read_all, groups[index + 1])
            results = detector.score_many(clouds)
            for path, cloud, result in zip(group, clouds, results, strict=True):
                row, found = write_scan(scan_name(path, root), path, cloud, result, output, files, threshold)
                if threshold is not None:
                    regions.append((row["file"], found))
                rows.append(row)
    _write_table(output / TABLE_NAME, rows)
    if threshold is not None:
        write_regions(output / REGIONS_FILE, regions)
    return rows


def write_scan(name: str, path: Path, cloud, result, output: Path, files: tuple[bool, bool],
               threshold: Threshold | None = None) -> tuple[dict, list]:
    """One scored scan's point files, its scores.csv row and (with a threshold) its verdict
    and anomalous regions; shared with the scaled-out predict (engine/scaleout)."""
    row = _write_outputs(name, path, cloud, result, output, files, threshold)
    if threshold is None:
        return row, []
    decided = inspect_result(np.asarray(cloud.points), result, threshold)
    row.update(normalised_score=decided.normalised_score, verdict=decided.verdict, regions=len(decided.regions))
    return row, decided.regions


def _write_record(path: Path, detector: Detector, inputs: Path, checkpoint: Path | None, scans: int,
                  threshold: Threshold | None) -> None:
    if hasattr(detector, "config"):
        settings = detector.config.to_dict()
    else:
        settings = detector.get_params() if hasattr(detector, "get_params") else {}
    runtime = getattr(detector, "runtime", None)
    record = {
        "method": detector.name, "settings": settings, "runtime": None if runtime is None else asdict(runtime), "checkpoint": None if checkpoint is None else str(checkpoint),
        "inputs": str(inputs), "scans": scans, "threshold": None if threshold is None else asdict(threshold),
        "provenance": provenance(),
    }
    atomic_write_text(path, json.dumps(record, indent=1, default=str) + "\n")


def _read_all(paths: list[Path]) -> list:
    return [read_points(path) for path in paths]


def heatmap_colors(scores: np.ndarray, threshold: Threshold | None = None) -> np.ndarray:
    """RGB per point: on one scale for every part when there is a threshold (the point
    threshold at the middle of the map, twice it at the hot end), else this scan's range."""
    if threshold is not None and threshold.point_threshold > 0:
        return colormap(scores, vmin=0.0, vmax=2.0 * threshold.point_threshold)
    return colormap(scores)


def _write_outputs(name: str, path: Path, cloud, result, output: Path, files: tuple[bool, bool],
                   threshold: Threshold | None = None) -> dict:
    """The point files of one scan: ``files`` = (TXT wanted, PLY heatmap wanted)."""
    points = np.asarray(cloud.points)
    txt, heatmaps = files
    if txt:
        write_points(output / f"{name}.txt", points, result.point_scores)
    if heatmaps:
        colors = heatmap_colors(result.point_scores, threshold)
        write_points(output / f"{name}.ply", points, result.point_scores, colors=colors)
    log.info("%s: object score %.5f (%d points)", path.name, result.object_score, len(points))
    if result.coverage < LOW_COVERAGE:
        log.warning("%s: the views saw only %.0f %% of its points directly; the others took the scores of seen "
                    "neighbours (more --views, or views from the scanned side, see more)", path.name,
                    100 * result.coverage)
    return {"file": name, "object_score": result.object_score, "coverage": result.coverage}


def _write_table(path: Path, rows: list[dict]) -> None:
    write_scores(path, [ScoreRow(row["file"], row["object_score"], row["coverage"],
                                 row.get("normalised_score", math.nan), row.get("verdict", ""), row.get("regions"))
                        for row in rows])
