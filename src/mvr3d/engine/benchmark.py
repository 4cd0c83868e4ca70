"""Fit, score and evaluate every class of a dataset; resumable; paper-style tables."""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import logging
import resource
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from mvr3d.data import Real3DAD, list_categories
from mvr3d.data.folder import FolderDataset, open_dataset
from mvr3d.detectors import Detector, detector_class
from mvr3d.engine.results import METRICS, BenchmarkResults, ClassResult
from mvr3d.errors import InputError
from mvr3d.metrics import PooledScores, aupr, auroc
from mvr3d.metrics.nuisance import NUISANCES as NUISANCE_ORDER
from mvr3d.metrics.nuisance import nuisance_correlations, nuisance_values, pooled_nuisance
from mvr3d.models import MVRConfig, Runtime
from mvr3d.models.base import ArrayStateDetector
from mvr3d.models.thresholds import Threshold, check_rate
from mvr3d.utils.atomic import atomic_write_text
from mvr3d.utils.provenance import provenance

log = logging.getLogger(__name__)


def make_detector(method: str, config: MVRConfig, runtime: Runtime | None = None) -> Detector:
    """The registered detector ``method`` (:class:`InputError` listing the names if none):
    one that takes a ``config`` (MVR) gets ``config`` and ``runtime``; the others the
    config's seed, and the runtime's device where they run on one (CUDA when available and
    the device is "auto")."""
    cls = detector_class(method)
    runtime = runtime or Runtime()
    parameters = inspect.signature(cls).parameters
    if "config" in parameters:
        return cls(config=config, runtime=runtime)
    kwargs: dict[str, object] = {"seed": config.seed}
    if "device" in parameters and runtime.device != "auto":
        kwargs["device"] = runtime.device
    elif "device" in parameters and torch.cuda.is_available():
        kwargs["device"] = "cuda"
    return cls(**kwargs)


def config_key(config: MVRConfig, method: str = "mvr") -> str:
    """Short hash of the settings that change results, to refuse mixing runs: MVR's config,
    or another method's name, seed and constructor parameters."""
    if method == "mvr":
        return _short_hash(config.result_dict())
    detector = make_detector(method, config)
    params = detector.get_params() if isinstance(detector, ArrayStateDetector) else {}
    return _short_hash({"method": method, "seed": config.seed, "params": params})


def _legacy_config_key(config: MVRConfig, method: str, runtime: Runtime | None = None) -> str | None:
    """The key of runs written before runtime settings (MVR) or parameters (the others) were
    part of it; None for a method whose results changed since (it has legacy parameters)."""
    if method != "mvr":
        if detector_class(method).__dict__.get("legacy_params"):
            return None
        return _short_hash({"method": method, "seed": config.seed})
    data = {**config.to_dict(), **asdict(runtime or Runtime())}  # MVRConfig held the runtime fields then
    data.pop("device", None)
    return _short_hash(data)


def _short_hash(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def evaluate_class(
    root: Path, category: str, config: MVRConfig, progress: bool = True,
    checkpoint: Path | None = None, method: str = "mvr", false_alarm_rate: float | None = None,
    *, runtime: Runtime | None = None,
) -> ClassResult:
    """Fit on the class's templates, score its test scans, and measure; with a
    ``false_alarm_rate``, also calibrate a threshold as ``fit`` does and count its decisions."""
    train, test = class_splits(root, category)
    started = time.perf_counter()
    detector = make_detector(method, config, runtime).fit(train, progress=progress)
    fit_seconds = time.perf_counter() - started
    if checkpoint is not None:
        detector.save(checkpoint, overwrite=True)
    threshold = None
    if false_alarm_rate:
        threshold = detector.calibrate(train, false_alarm_rate)
    tally = DecisionTally(threshold)
    object_scores, object_labels, pooled = [], [], PooledScores()
    by_stem, facts = {}, _scan_facts(root, category)
    started = time.perf_counter()
    unlabelled = 0
    for sample, result in _scored(detector, test):
        object_scores.append(result.object_score)
        object_labels.append(sample.label)
        name = sample.name if isinstance(test, Real3DAD) else f"{sample.defect}/{sample.name}"
        by_stem[name] = float(result.object_score)
        facts.setdefault(name, {}).setdefault("points", len(sample.points))
        facts[name]["good"] = sample.label == 0
        if sample.point_labels is None and sample.label:
            unlabelled += 1  # a defective scan without per-point truth: no P-ROC from it
            tally.add(result.object_score, sample.label, result.point_scores[:0], np.zeros(0))
            continue
        labels = sample.point_labels if sample.point_labels is not None else np.zeros(len(sample.points))
        pooled.add(result.point_scores, labels)
        tally.add(result.object_score, sample.label, result.point_scores, labels)
    if unlabelled:
        log.warning("%s: %d defective scan(s) have no per-point labels; P-ROC leaves them out", category, unlabelled)
    predict = (time.perf_counter() - started) / max(1, len(test))
    scores, labels = np.array(object_scores), np.array(object_labels)
    return ClassResult(
        category=category,
        o_roc=auroc(scores, labels),
        p_roc=pooled.auroc(),
        o_aupr=aupr(scores, labels),
        p_aupr=pooled.aupr(),
        fit_seconds=fit_seconds,
        predict_seconds_per_object=predict,
        test_objects=len(test),
        test_points=len(pooled),
        nuisance=[c.to_dict() for c in nuisance_correlations(_good(by_stem, facts), facts)],
        object_scores=by_stem,
        decisions=tally.summary(),
    )


def _scored(detector: Detector, samples: Iterable) -> Iterator[tuple[object, object]]:
    """(sample, score) pairs, the samples scored ``score_batch`` at a time as predict does."""
    samples = iter(samples)
    while chunk := list(itertools.islice(samples, detector.score_batch)):
        yield from zip(chunk, detector.score_many([sample.points for sample in chunk]), strict=True)


class DecisionTally:
    """How a calibrated threshold's verdicts turn out on labelled test scans."""

    def __init__(self, threshold: Threshold | None) -> None:
        self.threshold = threshold
        self.counts = np.zeros((2, 2))  # [label, failed]
        self.points = np.zeros((2, 2))  # [point label, above the point threshold]

    def add(self, object_score: float, label: int, point_scores: np.ndarray, point_labels: np.ndarray) -> None:
        if self.threshold is None:
            return
        self.counts[int(label != 0), int(self.threshold.verdict(object_score) == "fail")] += 1
        above = np.asarray(point_scores) > self.threshold.point_threshold
        anomalous = np.asarray(point_labels) != 0
        for row, mask in ((0, ~anomalous), (1, anomalous)):
            self.points[row] += (int((mask & ~above).sum()), int((mask & above).sum()))

    def summary(self) -> dict[str, float]:
        if self.threshold is None:
            return {}
        return {
            "false_alarm_rate": self.threshold.false_alarm_rate,
            "object_threshold": self.threshold.object_threshold,
            "point_threshold": self.threshold.point_threshold,
            "good_scans_failed": _share(self.counts[0]),
            "defective_scans_failed": _share(self.counts[1]),
            "normal_points_above": _share(self.points[0]),
            "anomalous_points_above": _share(self.points[1]),
        }


def _share(row: np.ndarray) -> float:
    """Share of the second column in a (not, yes) count pair; NaN when both are 0."""
    return float(row[1] / row.sum()) if row.sum() else float("nan")


def benchmark_classes(root: Path) -> list[str]:
    """The classes under ``root``: one per category folder, or the part itself when
    ``root`` is one part in the folder layout (``train/good``, ``test/<defect>``)."""
    if (Path(root) / "train" / "good").is_dir():
        return [Path(root).resolve().name]
    return list_categories(root)


def class_splits(root: Path, category: str) -> tuple[Real3DAD | FolderDataset, Real3DAD | FolderDataset]:
    """Train and test scans of one class, in whichever layout ``root`` has."""
    if (Path(root) / "train" / "good").is_dir():
        return FolderDataset(root, "train", category), FolderDataset(root, "test", category)
    return open_dataset(root, category, "train"), open_dataset(root, category, "test")


def _scan_facts(root: Path, category: str) -> dict[str, dict]:
    """Per test scan, what make-benchmark recorded of how it was scanned (meta.json), if any."""
    try:
        meta = json.loads((root / "meta.json").read_text())
        scans = meta["classes"][category]["scans"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {stem: dict(entry) for stem, entry in scans.items() if isinstance(entry, dict)}


def _good(scores: dict[str, float], facts: dict[str, dict]) -> dict[str, float]:
    return {stem: score for stem, score in scores.items() if facts.get(stem, {}).get("good")}


def _peak_memory_mb() -> dict:
    peak = {"cpu_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        peak["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def run_benchmark(
    root: Path, out: Path, config: MVRConfig, method: str = "mvr",
    classes: list[str] | None = None, progress: bool = True, save_models: bool = False,
    false_alarm_rate: float | None = None, *, runtime: Runtime | None = None,
) -> BenchmarkResults:
    """Evaluate each class, saving it as soon as it is done so a rerun resumes; with a
    ``false_alarm_rate``, each class also calibrates a threshold and counts its verdicts."""
    runtime = runtime or Runtime()
    make_detector(method, config, runtime)  # fail on an unknown method before any work
    # Taken now: the git hash of the code this process runs, not of a later checkout.
    record = {**provenance(), "runtime": asdict(runtime)}
    if false_alarm_rate:
        check_rate(false_alarm_rate)
    classes = classes or benchmark_classes(root)
    key = config_key(config, method)
    if false_alarm_rate:
        key = _short_hash({"key": key, "false_alarm_rate": false_alarm_rate})
    done_dir = out / "classes"
    done_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for category in classes:
        path = done_dir / f"{category}.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("config_key") not in (key, _legacy_config_key(config, method, runtime)):
                raise InputError(
                    f"{path} was made with other settings (config {saved.get('config_key')} vs {key}); "
                    "use another --out folder"
                )
            log.info("%s: already done, skipping", category)
            results.append(ClassResult.from_dict(saved["result"], path))
            continue
        checkpoint = out / "models" / category if save_models else None
        result = evaluate_class(root, category, config, progress, checkpoint, method, false_alarm_rate,
                                runtime=runtime)
        log.info("%s: O-ROC %.3f P-ROC %.3f", category, result.o_roc, result.p_roc)
        atomic_write_text(path, json.dumps({"config_key": key, "result": result.to_dict()}, indent=2))
        results.append(result)
    return _finish(out, root, method, config, key, results, record)


def _finish(
    out: Path, root: Path, method: str, config: MVRConfig, key: str, results: list[ClassResult], record: dict,
) -> BenchmarkResults:
    summary = BenchmarkResults(
        method=method,
        classes=results,
        data=str(root),
        config=config.to_dict(),
        config_key=key,
        seed=config.seed,
        mean={m: float(np.mean([getattr(r, m) for r in results])) for m in METRICS},
        nuisance_pooled=[c.to_dict() for c in _pooled(root, results)],
        peak_memory=_peak_memory_mb(),
        provenance=record,
    )
    summary.write(out)
    tables = [markdown_table({method: results}), nuisance_table(results), decisions_table(results)]
    atomic_write_text(out / "results.md", "\n".join(t for t in tables if t))
    return summary


def decisions_table(results: list[ClassResult]) -> str:
    """Per class, what the calibrated threshold did to good and defective test scans."""
    rows = [r for r in results if r.decisions]
    if not rows:
        return ""
    lines = ["| class | rate asked | good scans failed | defective scans failed | normal points above | "
             "anomalous points above |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        d = r.decisions
        cells = [d.get(k, float("nan")) * 100 for k in ("false_alarm_rate", "good_scans_failed", "defective_scans_failed",
                                                        "normal_points_above", "anomalous_points_above")]
        lines.append(f"| {r.category} | " + " | ".join(f"{c:.1f} %" for c in cells) + " |")
    return "\n".join(lines) + "\n\nThresholds calibrated at fit time (leave one template out), applied to the test scans.\n"


def _pooled(root: Path, results: list[ClassResult]) -> list:
    per_class = []
    for result in results:
        facts = _scan_facts(root, result.category)
        good = [stem for stem in result.object_scores if "good" in stem and stem in facts]
        values = [nuisance_values(facts[stem]) for stem in good]
        names = set.intersection(*(set(v) for v in values)) if values else set()
        per_class.append(([result.object_scores[s] for s in good], {n: [v[n] for v in values] for n in names}))
    return pooled_nuisance(per_class)


def nuisance_table(results: list[ClassResult]) -> str:
    """Spearman rho of good scans' object scores with each nuisance, one row per class."""
    names = sorted({c["nuisance"] for r in results for c in r.nuisance}, key=NUISANCE_ORDER.index)
    if not names:
        return ""
    lines = ["| class | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for r in results:
        found = {c["nuisance"]: c["rho"] for c in r.nuisance}
        lines.append(f"| {r.category} | " + " | ".join(f"{found[n]:+.2f}" if n in found else "-" for n in names) + " |")
    return "\n".join(lines) + "\n\nSpearman rho of good scans' object scores with each nuisance.\n"


def markdown_table(by_method: dict[str, list[ClassResult]]) -> str:
    """Paper format: one row per method, one "O-ROC/P-ROC" cell per class, then the mean."""
    categories = [r.category for r in next(iter(by_method.values()))]
    lines = [
        "| method | " + " | ".join(categories) + " | mean |",
        "|---|" + "---|" * (len(categories) + 1),
    ]
    for method, results in by_method.items():
        cells = [r.row() for r in results]
        o = np.mean([r.o_roc for r in results]) * 100
        p = np.mean([r.p_roc for r in results]) * 100
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {o:.1f}/{p:.1f} |")
    return "\n".join(lines) + "\n\nCells are O-ROC/P-ROC in percent.\n"
