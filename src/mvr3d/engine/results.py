"""The files runs leave behind, defined once: ``results.json`` of ``benchmark`` and
``scores.csv`` of ``predict``. The engine writes them with these types; the report and
scripts read them back through the same types, so a field is named in one place.

Reading is as strict as for any user input (the files may be edited or come from another
version): a missing or mistyped field is one clear error naming the file and the field.
Metrics may be missing or ``null`` (not measured) and read as NaN.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mvr3d.errors import InputError
from mvr3d.models.components.regions import Region
from mvr3d.utils.atomic import atomic_write_text

METRICS = ("o_roc", "p_roc", "o_aupr", "p_aupr")
RESULTS_FILE = "results.json"
SCORES_FILE = "scores.csv"
REGIONS_FILE = "regions.csv"


def _number(value: object, where: str, path: Path | None) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where} must be a number, got {value!r}", path)
    return float(value)


@dataclass
class ClassResult:
    """One class of one benchmark run."""

    category: str
    o_roc: float = math.nan
    p_roc: float = math.nan
    o_aupr: float = math.nan
    p_aupr: float = math.nan
    fit_seconds: float = math.nan
    predict_seconds_per_object: float = math.nan
    test_objects: int = 0
    test_points: int = 0
    # Spearman of good scans' object scores with each nuisance (metrics/nuisance.py).
    nuisance: list[dict] = field(default_factory=list)
    object_scores: dict[str, float] = field(default_factory=dict)  # test stem -> score
    # With a calibrated threshold (benchmark --false-alarm-rate): the rate asked for, the
    # share of good test scans that failed, of defective ones caught, and per point.
    decisions: dict[str, float] = field(default_factory=dict)

    def worst_nuisance(self) -> dict | None:
        return max(self.nuisance, key=lambda c: abs(c["rho"]), default=None)

    def row(self) -> str:
        return f"{self.o_roc * 100:.1f}/{self.p_roc * 100:.1f}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, entry: object, path: Path | None = None) -> ClassResult:
        if not isinstance(entry, dict) or not isinstance(entry.get("category"), str):
            raise InputError("every entry of 'classes' needs a 'category' name", path)
        where = f"class {entry['category']!r}"
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: v for k, v in entry.items() if k in known}
        for name in (*METRICS, "fit_seconds", "predict_seconds_per_object"):
            values[name] = _number(entry.get(name), f"{where}: field {name!r}", path)
        for name in ("test_objects", "test_points"):
            values[name] = int(_number(entry.get(name, 0), f"{where}: field {name!r}", path))
        if not isinstance(values.get("nuisance", []), list):
            raise InputError(f"{where}: field 'nuisance' must be a list", path)
        scores = values.get("object_scores", {})
        if not isinstance(scores, dict):
            raise InputError(f"{where}: field 'object_scores' must map scan names to scores", path)
        values["object_scores"] = {str(k): _number(v, f"{where}: score of {k!r}", path) for k, v in scores.items()}
        decisions = values.get("decisions", {})
        if not isinstance(decisions, dict):
            raise InputError(f"{where}: field 'decisions' must map names to numbers", path)
        values["decisions"] = {str(k): _number(v, f"{where}: decision {k!r}", path) for k, v in decisions.items()}
        return cls(**values)


@dataclass
class BenchmarkResults:
    """``results.json``: one method evaluated on some classes, with what made it."""

    method: str
    classes: list[ClassResult]
    data: str = ""
    config: dict = field(default_factory=dict)
    config_key: str = ""
    seed: int | None = None
    mean: dict[str, float] = field(default_factory=dict)
    nuisance_pooled: list[dict] = field(default_factory=list)
    peak_memory: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    def mean_of(self, metric: str) -> float:
        saved = self.mean.get(metric, math.nan)
        if math.isfinite(saved):
            return saved
        finite = [v for v in (getattr(c, metric) for c in self.classes) if math.isfinite(v)]
        return sum(finite) / len(finite) if finite else math.nan

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["classes"] = [c.to_dict() for c in self.classes]
        return out

    def write(self, folder: Path) -> Path:
        path = Path(folder) / RESULTS_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def read(cls, path: Path) -> BenchmarkResults:
        """Read and check one ``results.json`` (or a folder holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / RESULTS_FILE
        if not path.is_file():
            raise InputError("results file not found (expected results.json of `mvr3d benchmark`)", path)
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(f"cannot read results ({error})", path) from None
        entries = summary.get("classes") if isinstance(summary, dict) else None
        if not isinstance(entries, list) or not entries:
            raise InputError("not a results.json of `mvr3d benchmark`: no 'classes' list", path)
        return cls.from_dict(summary, path)

    @classmethod
    def from_dict(cls, summary: dict, path: Path | None = None) -> BenchmarkResults:
        classes = [ClassResult.from_dict(entry, path) for entry in summary["classes"]]
        mean = summary.get("mean") or {}
        if not isinstance(mean, dict):
            raise InputError("field 'mean' must map metrics to numbers", path)
        seed = summary.get("seed")
        return cls(
            method=str(summary.get("method") or ""),
            classes=classes,
            data=str(summary.get("data") or ""),
            config=_mapping(summary, "config", path),
            config_key=str(summary.get("config_key") or ""),
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            mean={k: _number(v, f"mean {k!r}", path) for k, v in mean.items() if k in METRICS},
            nuisance_pooled=list(summary.get("nuisance_pooled") or []),
            peak_memory=_mapping(summary, "peak_memory", path),
            provenance=_mapping(summary, "provenance", path),
        )


def _mapping(summary: dict, key: str, path: Path | None) -> dict:
    value = summary.get(key) or {}
    if not isinstance(value, dict):
        raise InputError(f"field {key!r} must be a JSON object", path)
    return value


@dataclass
class ScoreRow:
    """One line of ``scores.csv``: a scored scan."""

    file: str
    object_score: float
    coverage: float = math.nan
    normalised_score: float = math.nan  # 0.5 at the calibrated threshold; NaN without one
    verdict: str = ""  # "pass" / "fail" against the threshold; empty without one
    regions: int | None = None  # anomalous regions (regions.csv); None without a threshold


SCORE_COLUMNS = tuple(f.name for f in fields(ScoreRow))
REGION_COLUMNS = ("file", "region", "points", "centroid_x", "centroid_y", "centroid_z", "extent_x", "extent_y",
                  "extent_z", "size", "peak_score", "mean_score")


def write_scores(path: Path, rows: list[ScoreRow]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SCORE_COLUMNS)
    for row in rows:
        writer.writerow([row.file, f"{row.object_score:.8g}", f"{row.coverage:.6g}", f"{row.normalised_score:.6g}",
                         row.verdict, "" if row.regions is None else row.regions])
    atomic_write_text(path, buffer.getvalue())


def write_regions(path: Path, regions: list[tuple[str, list[Region]]]) -> None:
    """``regions.csv``: one line per anomalous region of each scan, numbered from 1 in the
    order of :func:`~mvr3d.models.components.regions.anomalous_regions` (highest peak first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REGION_COLUMNS)
    for name, found in regions:
        for number, region in enumerate(found, start=1):
            writer.writerow([name, number, region.points, *(f"{v:.6g}" for v in region.centroid),
                             *(f"{v:.6g}" for v in region.extent), f"{region.size:.6g}", f"{region.peak_score:.6g}",
                             f"{region.mean_score:.6g}"])
    atomic_write_text(path, buffer.getvalue())


def read_scores(folder: Path) -> list[ScoreRow]:
    """``scores.csv`` of ``mvr3d predict`` in ``folder`` (files without coverage read as NaN)."""
    table = Path(folder) / SCORES_FILE
    if not table.is_file():
        raise InputError("predictions folder has no scores.csv (written by `mvr3d predict`)", folder)
    try:
        with table.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        return [ScoreRow(row["file"], float(row["object_score"]), float(row.get("coverage") or "nan"),
                         float(row.get("normalised_score") or "nan"), row.get("verdict") or "",
                         int(row["regions"]) if row.get("regions") else None) for row in rows]
    except (KeyError, TypeError, ValueError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"expected columns {','.join(SCORE_COLUMNS)} ({error})", table) from None
