"""The driver of a scaled-out predict: the same outputs as plain ``predict``, scored by
workers elsewhere (Ray actors or one process per device) and written here, one scan at
a time as its batch comes back, so each output is written once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from mvr3d.detectors import Detector
from mvr3d.engine.predict import (
    RECORD_NAME,
    TABLE_NAME,
    _claim,  # the predict module's own writers, so both commands write the same files
    _write_record,
    _write_table,
    check_output,
    output_errors,
    planned_outputs,
    scan_name,
    write_scan,
)
from mvr3d.engine.results import REGIONS_FILE, write_regions
from mvr3d.engine.scaleout.journal import JOURNAL_NAME, Journal, regions_of, run_key, still_valid
from mvr3d.engine.scaleout.scorer import Batches, ScoredBatch, WorkerSpec
from mvr3d.errors import InputError

if TYPE_CHECKING:
    from mvr3d.models.thresholds import Threshold

log = logging.getLogger(__name__)

Progress = Callable[[ScoredBatch, int, int], None]


def predict_scaled(
    detector: Detector, spec: WorkerSpec, inputs: Path, output: Path, batches: Batches, *,
    heatmaps: bool = True, batch: int = 4, threshold: Threshold | None = None, txt: bool = True,
    progress: Progress | None = None,
) -> list[dict]:
    """:func:`~mvr3d.engine.predict.predict_files` with the scoring done by ``batches``;
    ``detector`` (loaded here) is only described in ``predict.json``, the workers load
    their own from ``spec.checkpoint``. Resumable: a rerun skips the scans finished before."""
    if batch < 1:
        raise InputError(f"batch must be a positive number of scans, got {batch}")
    detector.check_is_fitted()
    scans = check_output(inputs, output, heatmaps, txt)
    files = (txt, heatmaps)
    with output_errors(output):
        _claim(output, [*planned_outputs(scans, heatmaps, inputs, txt), JOURNAL_NAME])
        journal = Journal(output, run_key(spec.checkpoint, {"txt": txt, "heatmaps": heatmaps,
                                                            "settings": _settings(detector)}))
        done = _resume(journal, scans, inputs, output, files)
        todo = [scan for scan in scans if scan_name(scan, inputs) not in done]
        if done:
            log.info("%d of %d scans were finished by an earlier run; scoring the other %d",
                     len(done), len(scans), len(todo))
        groups = [todo[i : i + batch] for i in range(0, len(todo), batch)]
        if groups:
            _score_all(groups, batches, journal, done, (inputs, output, files, threshold), progress)
        rows = [done[scan_name(scan, inputs)]["row"] for scan in scans]
        _write_table(output / TABLE_NAME, rows)
        if threshold is not None:
            write_regions(output / REGIONS_FILE, [(row["file"], regions_of(done[row["file"]])) for row in rows])
        _write_record(output / RECORD_NAME, detector, inputs, spec.checkpoint, len(rows), threshold)
    return rows


def _score_all(groups: list[list[Path]], batches: Batches, journal: Journal, done: dict[str, dict],
               where: tuple, progress: Progress | None) -> None:
    inputs, output, files, threshold = where
    with closing(batches([[scan.absolute() for scan in group] for group in groups])) as scored_batches:
        for finished, scored in enumerate(scored_batches, start=1):
            group = groups[scored.index]
            for path, cloud, result in zip(group, scored.clouds, scored.results, strict=True):
                name = scan_name(path, inputs)
                row, regions = write_scan(name, path, cloud, result, output, files, threshold)
                done[name] = journal.add(row, regions, path, [output / n for n in _point_files(name, files)])
            log.info("batch %d of %d scored (%s)", finished, len(groups), scored.worker)
            if progress is not None:
                progress(scored, finished, len(groups))


def _resume(journal: Journal, scans: list[Path], inputs: Path, output: Path,
            files: tuple[bool, bool]) -> dict[str, dict]:
    """The journal's entries that still hold (same key, same scan, same outputs); the
    journal is rewritten with only those, so stale lines never come back."""
    entries = journal.finished()
    kept = {}
    for scan in scans:
        name = scan_name(scan, inputs)
        if name in entries and still_valid(entries[name], scan, output, _point_files(name, files)):
            kept[name] = entries[name]
    journal.start(list(kept.values()))
    return kept


def _settings(detector: Detector) -> dict:
    """What predict.json records as the detector's settings (the command line's changes
    applied): a rerun with others must not resume."""
    if hasattr(detector, "config"):
        return detector.config.to_dict()
    return detector.get_params() if hasattr(detector, "get_params") else {}


def _point_files(name: str, files: tuple[bool, bool]) -> list[str]:
    txt, heatmaps = files
    return [f"{name}{suffix}" for suffix, wanted in ((".txt", txt), (".ply", heatmaps)) if wanted]
