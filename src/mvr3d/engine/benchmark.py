"""Fit, score and evaluate every class of a dataset; resumable; paper-style tables."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mvr3d.baselines import BASELINES
from mvr3d.data import Real3DAD, list_categories
from mvr3d.errors import InputError
from mvr3d.metrics import PooledScores, aupr, auroc
from mvr3d.metrics.nuisance import NUISANCES as NUISANCE_ORDER
from mvr3d.metrics.nuisance import nuisance_correlations, nuisance_values, pooled_nuisance
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
        cls = BASELINES[method]
        if "device" in inspect.signature(cls).parameters and config.device != "auto":
            return cls(seed=config.seed, device=config.device)
        if "device" in inspect.signature(cls).parameters and torch.cuda.is_available():
            return cls(seed=config.seed, device="cuda")
        return cls(seed=config.seed)
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
    # Spearman of good scans' object scores with each nuisance (metrics/nuisance.py).
    nuisance: list[dict] = field(default_factory=list)
    object_scores: dict[str, float] = field(default_factory=dict)  # test stem -> score

    def worst_nuisance(self) -> dict | None:
        return max(self.nuisance, key=lambda c: abs(c["rho"]), default=None)

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
    by_stem, facts = {}, _scan_facts(root, category)
    started = time.perf_counter()
    for sample in test:
        result = detector.score(sample.points)
        object_scores.append(result.object_score)
        object_labels.append(sample.label)
        by_stem[sample.name] = float(result.object_score)
        facts.setdefault(sample.name, {}).setdefault("points", len(sample.points))
        facts[sample.name]["good"] = sample.label == 0
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
        nuisance=[c.to_dict() for c in nuisance_correlations(_good(by_stem, facts), facts)],
        object_scores=by_stem,
    )


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
        "nuisance_pooled": [c.to_dict() for c in _pooled(root, results)],
        "peak_memory": _peak_memory_mb(),
        "provenance": provenance(),
    }
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2))
    atomic_write_text(out / "results.md", markdown_table({method: results}) + "\n" + nuisance_table(results))
    return summary


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
