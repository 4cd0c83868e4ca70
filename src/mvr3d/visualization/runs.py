"""Benchmark runs to compare: ``results.json`` files read through the typed results."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from mvr3d.engine.results import RESULTS_FILE, BenchmarkResults, ClassResult
from mvr3d.errors import InputError

__all__ = ["Run", "all_categories", "load_run", "load_runs"]


@dataclass
class Run:
    """One results.json: a method evaluated on some classes."""

    label: str
    path: Path
    results: BenchmarkResults

    @property
    def classes(self) -> dict[str, ClassResult]:
        return {c.category: c for c in self.results.classes}

    @property
    def method(self) -> str:
        return self.results.method or self.path.parent.name

    def metric(self, category: str, key: str) -> float:
        entry = self.classes.get(category)
        return math.nan if entry is None else float(getattr(entry, key))

    def mean(self, key: str) -> float:
        return self.results.mean_of(key)


def load_run(path: Path) -> Run:
    """Read and check one ``results.json`` (or a folder holding one)."""
    path = Path(path)
    results = BenchmarkResults.read(path)
    return Run(label="", path=path / RESULTS_FILE if path.is_dir() else path, results=results)


def load_runs(paths: list[Path]) -> list[Run]:
    if not paths:
        raise InputError("no results files given")
    runs = [load_run(p) for p in paths]
    _label_runs(runs)
    return runs


def _label_runs(runs: list[Run]) -> None:
    """Method names, made unique with the run folder (then a counter) when repeated."""
    methods = [r.method for r in runs]
    for run in runs:
        repeated = methods.count(run.method) > 1
        run.label = f"{run.method} ({run.path.parent.name})" if repeated else run.method
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.label] = seen.get(run.label, 0) + 1
        if seen[run.label] > 1:
            run.label = f"{run.label} #{seen[run.label]}"


def all_categories(runs: list[Run]) -> list[str]:
    """Every class of any run, in order of first appearance."""
    return list(dict.fromkeys(c for run in runs for c in run.classes))
