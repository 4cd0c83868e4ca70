"""Fit, score and evaluate every class of a dataset; resumable; paper-style tables."""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mvr3d.baselines import BASELINES
from mvr3d.data import Real3DAD, list_categories
from mvr3d.errors import InputError
from mvr3d.metrics import PooledScores, aupr, auroc
from mvr3d.models import MVRConfig, MVRDetector
from mvr3d.utils.atomic import atomic_write_text
from mvr3d.utils.provenance import provenance

log = logging.getLogger(__name__)

METHODS = ("mvr", *BASELINES)


def make_detector(method: str, config: MVRConfig):
    """The detector for ``method``: MVR with ``config``, or a baseline seeded alike."""
    if method == "mvr":
        return MVRDetector(config)
    if method in BASELINES:
        return BASELINES[method](seed=config.seed)
    raise InputError(f"unknown method {method!r}; available: {list(METHODS)}")


@dataclass
class ClassResult:
    category: str
    o_roc: float
    p_roc: float
    o_aupr: float
    p_aupr: float
    fit_seconds: float
    predict_seconds_per_object: float
    test_objects: int
    test_points: int

    def row(self) -> str:
        return f"{self.o_roc * 100:.1f}/{self.p_roc * 100:.1f}"


def config_key(config: MVRConfig, method: str = "mvr") -> str:
    """Short hash of the settings that change results, to refuse mixing runs."""
    data = config.to_dict() if method == "mvr" else {"method": method, "seed": config.seed}
    data.pop("device", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def evaluate_class(
    root: Path, category: str, config: MVRConfig, progress: bool = True,
    checkpoint: Path | None = None, method: str = "mvr",
) -> ClassResult:
    train = Real3DAD(root, category, "train")
    test = Real3DAD(root, category, "test")
    started = time.perf_counter()
    detector = make_detector(method, config).fit(train, progress=progress)
    fit_seconds = time.perf_counter() - started
    if checkpoint is not None and hasattr(detector, "save"):
        detector.save(checkpoint, overwrite=True)
    object_scores, object_labels, pooled = [], [], PooledScores()
    started = time.perf_counter()
    for sample in test:
        result = detector.score(sample.points)
        object_scores.append(result.object_score)
        object_labels.append(sample.label)
        labels = sample.point_labels if sample.point_labels is not None else np.zeros(len(sample.points))
        pooled.add(result.point_scores, labels)
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
    )


def _peak_memory_mb() -> dict:
    peak = {"cpu_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        peak["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def run_benchmark(
    root: Path, out: Path, config: MVRConfig, method: str = "mvr",
    classes: list[str] | None = None, progress: bool = True, save_models: bool = False,
) -> dict:
    """Evaluate each class, saving it as soon as it is done so a rerun resumes."""
    make_detector(method, config)  # fail on an unknown method before any work
    classes = classes or list_categories(root)
    key = config_key(config, method)
    done_dir = out / "classes"
    done_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for category in classes:
        path = done_dir / f"{category}.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("config_key") != key:
                raise InputError(
                    f"{path} was made with other settings (config {saved.get('config_key')} vs {key}); "
                    "use another --out folder"
                )
            log.info("%s: already done, skipping", category)
            results.append(ClassResult(**saved["result"]))
            continue
        checkpoint = out / "models" / category if save_models else None
        result = evaluate_class(root, category, config, progress, checkpoint, method)
        log.info("%s: O-ROC %.3f P-ROC %.3f", category, result.o_roc, result.p_roc)
        atomic_write_text(path, json.dumps({"config_key": key, "result": result.__dict__}, indent=2))
        results.append(result)
    return _finish(out, root, method, config, key, results)


def _finish(out: Path, root: Path, method: str, config: MVRConfig, key: str, results: list) -> dict:
    mean = {f: float(np.mean([getattr(r, f) for r in results])) for f in ("o_roc", "p_roc", "o_aupr", "p_aupr")}
    summary = {
        "method": method,
        "data": str(root),
        "config": config.to_dict(),
        "config_key": key,
        "seed": config.seed,
        "classes": [r.__dict__ for r in results],
        "mean": mean,
        "peak_memory": _peak_memory_mb(),
        "provenance": provenance(),
    }
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2))
    atomic_write_text(out / "results.md", markdown_table({method: results}))
    return summary


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
