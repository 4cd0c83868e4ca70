"""The run files (results.json, scores.csv): written and read through one set of types."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mvr3d.engine.results import BenchmarkResults, ClassResult, ScoreRow, read_scores, write_scores
from mvr3d.errors import InputError


def results() -> BenchmarkResults:
    classes = [ClassResult("a", 0.9, 0.8, 0.7, 0.6, 1.5, 0.25, 10, 1000, [{"nuisance": "points", "rho": 0.1}], {"s0": 0.5}),
               ClassResult("b", 0.5, 0.6, 0.5, 0.4, 2.0, 0.5, 10, 900)]
    return BenchmarkResults("mvr", classes, data="/d", config={"views": 3}, config_key="abc", seed=1,
                            mean={"o_roc": 0.7}, provenance={"git": "x"})


def test_results_round_trip(tmp_path: Path) -> None:
    written = results()
    path = written.write(tmp_path)
    assert path.name == "results.json"
    assert BenchmarkResults.read(tmp_path) == written
    assert written.mean_of("o_roc") == 0.7
    assert written.mean_of("p_roc") == pytest.approx(0.7)  # not saved: mean of the classes


def test_results_missing_metrics_read_as_not_measured(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"method": "x", "classes": [{"category": "a", "o_roc": None}]}))
    read = BenchmarkResults.read(tmp_path / "results.json")
    assert math.isnan(read.classes[0].o_roc) and math.isnan(read.mean_of("p_roc"))


@pytest.mark.parametrize(("entry", "message"), [
    ({"category": "a", "o_roc": "high"}, "class 'a': field 'o_roc' must be a number"),
    ({"category": "a", "test_points": True}, "field 'test_points' must be a number"),
    ({"o_roc": 0.5}, "needs a 'category' name"),
    ({"category": "a", "object_scores": [1, 2]}, "'object_scores' must map"),
])
def test_results_with_a_bad_field_name_it(tmp_path: Path, entry: dict, message: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"method": "x", "classes": [entry]}))
    with pytest.raises(InputError, match=message) as error:
        BenchmarkResults.read(path)
    assert str(path) in str(error.value)


def test_scores_round_trip_and_old_files(tmp_path: Path) -> None:
    rows = [ScoreRow("g0", 0.25, 0.5, 0.125, "pass"), ScoreRow("b,1", 1e-9, 0.75, 0.875, "fail")]
    write_scores(tmp_path / "scores.csv", rows)
    assert read_scores(tmp_path) == rows
    write_scores(tmp_path / "scores.csv", [ScoreRow("g0", 0.25, 0.5)])  # no threshold: NaN and no verdict
    (row,) = read_scores(tmp_path)
    assert (row.file, row.object_score, row.coverage, row.verdict) == ("g0", 0.25, 0.5, "")
    assert math.isnan(row.normalised_score)
    (tmp_path / "scores.csv").write_text("file,object_score\ng0,0.5\n")  # before coverage was recorded
    (row,) = read_scores(tmp_path)
    assert row.object_score == 0.5 and math.isnan(row.coverage)
    (tmp_path / "scores.csv").write_text("name,score\ng0,0.5\n")
    with pytest.raises(InputError, match="expected columns file,object_score,coverage"):
        read_scores(tmp_path)


def test_config_key_follows_results_not_runtime() -> None:
    from mvr3d.engine.benchmark import _legacy_config_key, config_key
    from mvr3d.models import MVRConfig
    from mvr3d.models.mvr.config import Runtime

    base = MVRConfig()
    fast = Runtime(device="cuda", compile=True, view_batch=9, score_dtype="bfloat16")
    assert config_key(MVRConfig(iterations=5)) != config_key(base)
    # Runs keyed when MVRConfig held the runtime fields resume; their old key followed them,
    # which is why they could not resume on another device or view batch.
    assert _legacy_config_key(base, "mvr", fast) != _legacy_config_key(base, "mvr", Runtime())
    assert _legacy_config_key(base, "mvr", Runtime(device="cuda")) == _legacy_config_key(base, "mvr", Runtime())
