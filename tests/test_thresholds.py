"""Calibrated thresholds: fitted from normal views, saved beside the detector, used by predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mvr3d.cli import main
from mvr3d.errors import CheckpointError, InputError
from mvr3d.io import write_points
from mvr3d.models.thresholds import (
    DEFAULT_FALSE_ALARM_RATE,
    VIEWS_PER_TEMPLATE,
    Threshold,
    estimate,
    normal_views,
)
from shapes import blob, bulged


def part_and_scans(tmp_path: Path, scans_name: str = "scans", bad_name: str = "bad") -> tuple[Path, Path]:
    """A folder-layout part with 3 training blobs, and a folder with one good and one bulged
    one-sided scan (``good.pcd``, ``<bad_name>.pcd``)."""
    data, scans = tmp_path / "part", tmp_path / scans_name
    (data / "train" / "good").mkdir(parents=True)
    scans.mkdir()
    for seed in range(3):
        write_points(data / "train" / "good" / f"t{seed}.pcd", blob(3000, seed))
    write_points(scans / "good.pcd", normal_views(blob(3000, 10), 1)[0])
    write_points(scans / f"{bad_name}.pcd", normal_views(bulged(blob(3000, 11)), 1)[0])
    return data, scans


def test_threshold_from_normal_scores() -> None:
    rng = np.random.default_rng(0)
    objects = rng.normal(5.0, 0.5, size=400)
    threshold = estimate(objects, [rng.normal(size=1000)], 0.01, "leave-one-out")
    assert threshold.object_threshold == pytest.approx(5.0 + 2.326 * 0.5, abs=0.12)
    assert np.mean(objects > threshold.object_threshold) < 0.03  # the rate asked for, about
    assert threshold.normalised(threshold.object_threshold) == pytest.approx(0.5)
    assert threshold.normalised(threshold.object_threshold + 3 * threshold.object_spread) > 0.99
    assert threshold.verdict(threshold.object_threshold + 1e-9) == "fail"
    assert threshold.verdict(threshold.object_threshold - 1e-9) == "pass"
    assert threshold.point_threshold == pytest.approx(2.33, abs=0.2)
    with pytest.raises(InputError, match="at least 2"):
        estimate([1.0], [np.zeros(3)], 0.01, "own-templates")


def test_threshold_file_round_trip_and_bad_files(tmp_path) -> None:
    threshold = estimate([1.0, 2.0, 3.0], [np.arange(10.0)], 0.05, "leave-one-out")
    threshold.save(tmp_path)
    assert Threshold.load(tmp_path) == threshold
    assert Threshold.load(tmp_path / "elsewhere") is None
    (tmp_path / "threshold.json").write_text(json.dumps({**json.loads((tmp_path / "threshold.json").read_text()),
                                                         "object_spread": -1}))
    with pytest.raises(CheckpointError, match="positive spread"):
        Threshold.load(tmp_path)
    (tmp_path / "threshold.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a threshold record"):
        Threshold.load(tmp_path)


def test_normal_views_are_partial_and_differ() -> None:
    cloud = blob(4000, 1)
    views = normal_views(cloud, 4)
    assert len(views) == 4
    for view in views:
        assert 0.2 * len(cloud) < len(view) < 0.8 * len(cloud)
    assert len({len(v) for v in views}) > 1 or not np.array_equal(views[0], views[1])


def test_posed_views_are_the_same_views_turned() -> None:
    """With a generator each view is rigidly turned about its centre: the same points, the
    same shape (pairwise distances), another pose."""
    from scipy.spatial.distance import pdist

    cloud = blob(2000, 2)
    plain = normal_views(cloud, 3)
    posed = normal_views(cloud, 3, np.random.default_rng(0))
    for a, b in zip(plain, posed, strict=True):
        assert len(a) == len(b) and not np.allclose(a, b)
        np.testing.assert_allclose(b.mean(axis=0), a.mean(axis=0), atol=1e-9)
        np.testing.assert_allclose(pdist(b[:300]), pdist(a[:300]), rtol=1e-9, atol=1e-9)


def test_registering_detectors_calibrate_on_posed_views(monkeypatch) -> None:
    from mvr3d.detectors import create_detector
    from mvr3d.models import MVRConfig, MVRDetector, thresholds

    seen = []

    def recording(cloud, count, rng=None):
        seen.append(rng is not None)
        return [cloud[:400]]

    monkeypatch.setattr(thresholds, "normal_views", recording)
    clouds = [blob(1500, s) for s in range(2)]
    for method, posed in (("template", True), ("registration", True), ("btf_raw", False)):
        seen.clear()
        create_detector(method).fit(clouds).calibrate(clouds, 0.01)
        assert seen and all(s == posed for s in seen), method
    assert MVRDetector(MVRConfig(align=True)).calibrate_posed
    assert not MVRDetector(MVRConfig(align=False)).calibrate_posed


def test_fit_calibrates_and_predict_decides(tmp_path, capsys) -> None:
    """The plumbing: fit writes a leave-one-out threshold, predict writes and prints the
    verdicts, --fail-exit-code turns a failed part into exit status 1, and a refit without a
    threshold removes the old one. (How well a threshold holds its rate is a benchmark's
    question, not this test's: here it is placed between the two scans by hand.)"""
    from dataclasses import replace

    data, scans = part_and_scans(tmp_path)
    model = tmp_path / "model"
    assert main(["fit", "--method", "btf_raw", "--data", str(data), "--out", str(model),
                 "--false-alarm-rate", "0.05"]) == 0
    threshold = Threshold.load(model)
    assert threshold is not None and threshold.strategy == "leave-one-out" and threshold.normal_scans == 3 * VIEWS_PER_TEMPLATE
    assert main(["predict", "--checkpoint", str(model), "--input", str(scans), "--output", str(tmp_path / "o"),
                 "--no-heatmaps"]) == 0
    table = (tmp_path / "o" / "scores.csv").read_text().splitlines()
    assert table[0] == "file,object_score,coverage,normalised_score,verdict,regions"
    scores = {line.split(",")[0]: float(line.split(",")[1]) for line in table[1:]}
    assert scores["bad"] > scores["good"]
    assert json.loads((tmp_path / "o" / "predict.json").read_text())["threshold"]["false_alarm_rate"] == 0.05

    replace(threshold, object_threshold=(scores["bad"] + scores["good"]) / 2).save(model)
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(model), "--input", str(scans), "--output", str(tmp_path / "o2"),
                 "--no-heatmaps", "--fail-exit-code"]) == 1
    assert "1 of 2 failed the threshold" in capsys.readouterr().out
    rows = [line.split(",") for line in (tmp_path / "o2" / "scores.csv").read_text().splitlines()[1:]]
    assert {row[0]: row[4] for row in rows} == {"bad": "fail", "good": "pass"}
    assert {row[0]: float(row[3]) > 0.5 for row in rows} == {"bad": True, "good": False}
    regions = (tmp_path / "o2" / "regions.csv").read_text().splitlines()
    assert regions[0].startswith("file,region,points,centroid_x")
    listed = {row[0]: int(row[5]) for row in rows}  # regions per scan, as counted in regions.csv
    assert listed == {name: sum(line.split(",")[0] == name for line in regions[1:]) for name in listed}

    assert main(["fit", "--method", "btf_raw", "--data", str(data), "--out", str(model), "--overwrite",
                 "--false-alarm-rate", "0"]) == 0
    assert Threshold.load(model) is None
    assert main(["predict", "--checkpoint", str(model), "--input", str(scans), "--output", str(tmp_path / "o3"),
                 "--fail-exit-code"]) == 2
    assert "needs a threshold" in capsys.readouterr().err


def test_fit_calibrates_at_one_percent_by_default(tmp_path) -> None:
    data, _ = part_and_scans(tmp_path)
    model = tmp_path / "model"
    assert main(["fit", "--method", "btf_raw", "--data", str(data), "--out", str(model)]) == 0
    threshold = Threshold.load(model)
    assert threshold is not None and threshold.false_alarm_rate == DEFAULT_FALSE_ALARM_RATE == 0.01


def test_heatmaps_share_one_scale_with_a_threshold() -> None:
    """A good part's hottest point is only red when it is far above the threshold, as on a
    defective part; without a threshold each scan spans the whole map (the old behaviour)."""
    from mvr3d.engine.predict import heatmap_colors

    threshold = estimate([1.0, 2.0], [np.linspace(0, 1, 101)], 0.01, "leave-one-out")  # point threshold 0.99
    good, bad = np.array([0.1, 0.3, 0.5]), np.array([0.1, 0.3, 5.0])
    shared_good, shared_bad = heatmap_colors(good, threshold), heatmap_colors(bad, threshold)
    np.testing.assert_array_equal(shared_good[:2], shared_bad[:2])  # same score, same colour
    assert not np.array_equal(shared_good[2], shared_bad[2])
    own_good, own_bad = heatmap_colors(good), heatmap_colors(bad)
    np.testing.assert_array_equal(own_good[2], own_bad[2])  # per-scan: both maxima look alike


def test_benchmark_counts_the_verdicts_of_a_calibrated_threshold(tmp_path, capsys) -> None:
    from mvr3d.data import demo_shapes_dir, make_benchmark
    from mvr3d.engine.results import BenchmarkResults

    data = tmp_path / "data"
    make_benchmark(demo_shapes_dir(), data, preset="tiny", seed=0)
    out = tmp_path / "run"
    assert main(["benchmark", "--data", str(data), "--out", str(out), "--method", "btf_raw", "--classes",
                 "angle_block", "--false-alarm-rate", "0.1"]) == 0
    decisions = BenchmarkResults.read(out).classes[0].decisions
    assert decisions["false_alarm_rate"] == 0.1
    for key in ("good_scans_failed", "defective_scans_failed", "normal_points_above", "anomalous_points_above"):
        assert 0.0 <= decisions[key] <= 1.0
    assert decisions["good_scans_failed"] in {i / 4 for i in range(5)}  # the tiny preset has 4 good scans
    assert "good scans failed" in (out / "results.md").read_text()
    # Without the rate the settings differ: the run does not resume into the calibrated one.
    assert main(["benchmark", "--data", str(data), "--out", str(out), "--method", "btf_raw", "--classes",
                 "angle_block"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_predict_report_shows_verdicts_regions_and_heatmaps(tmp_path, capsys) -> None:
    pytest.importorskip("plotly")  # the 'report' extra; installed by `make test`
    data, scans = part_and_scans(tmp_path, "scans <&>", "bad<b>")
    model = tmp_path / "model"
    assert main(["fit", "--method", "btf_raw", "--data", str(data), "--out", str(model),
                 "--false-alarm-rate", "0.05"]) == 0
    out = tmp_path / "o"
    assert main(["predict", "--checkpoint", str(model), "--input", str(scans), "--output", str(out), "--report"]) == 0
    page = (out / "report.html").read_text()
    rows = {line.split(",")[0]: line.split(",") for line in (out / "scores.csv").read_text().splitlines()[1:]}
    failed = sum(row[4] == "fail" for row in rows.values())
    assert f"{failed} failed" in page and f"{2 - failed} passed" in page
    assert "bad&lt;b&gt;" in page and "bad<b>" not in page  # names are text, not markup
    assert "scans &lt;&amp;&gt;" in page
    assert page.count("Plotly.newPlot") == 2  # the histogram and one 3D figure for all parts
    assert "twice the point threshold" in page
    assert "<script src=" not in page and len(page) > 1_000_000  # plotly.js embedded: the page works offline

    plain = tmp_path / "plain"
    assert main(["fit", "--method", "btf_raw", "--data", str(data), "--out", str(plain), "--false-alarm-rate", "0"]) == 0
    assert main(["predict", "--checkpoint", str(plain), "--input", str(scans), "--output", str(tmp_path / "o2"),
                 "--report", "--no-txt"]) == 0
    assert "each PLY heatmap spans its own scan's score range" in capsys.readouterr().err
    written = sorted(p.name for p in (tmp_path / "o2").iterdir() if not p.name.startswith("."))
    assert written == ["bad<b>.ply", "good.ply", "predict.json", "report.html", "scores.csv"]
    page = (tmp_path / "o2" / "report.html").read_text()
    assert "no verdicts" in page and page.count("Plotly.newPlot") == 2  # heatmaps read from the PLY files
    assert main(["predict", "--checkpoint", str(plain), "--input", str(scans), "--output", str(tmp_path / "o3"),
                 "--no-txt", "--no-heatmaps"]) == 2


def test_benchmark_and_labels_on_the_own_folder_layout(tmp_path, caplog) -> None:
    """`benchmark --data mypart` on train/good + test/good + test/bump (labels beside one
    defective scan): one class named after the folder, every test scan scored, P-ROC from
    the labelled scans only."""
    from mvr3d.engine.results import BenchmarkResults

    part = tmp_path / "mypart"
    for folder in ("train/good", "test/good", "test/bump"):
        (part / folder).mkdir(parents=True)
    for seed in range(3):
        write_points(part / "train" / "good" / f"t{seed}.pcd", blob(3000, seed))
    for seed in (10, 11):
        write_points(part / "test" / "good" / f"s{seed}.pcd", normal_views(blob(3000, seed), 1)[0])
    for seed in (12, 13):
        view = normal_views(bulged(blob(3000, seed)), 1)[0]
        write_points(part / "test" / "bump" / f"s{seed}.pcd", view)
    labelled = normal_views(bulged(blob(3000, 12)), 1)[0]
    moved = labelled[:, 2] / np.linalg.norm(labelled, axis=1) > 0.8  # where bulged() lifts the surface
    (part / "test" / "bump" / "s12.labels.txt").write_text("".join(f"{int(m)}\n" for m in moved))
    out = tmp_path / "run"
    with caplog.at_level("WARNING"):
        assert main(["benchmark", "--data", str(part), "--out", str(out), "--method", "btf_raw"]) == 0
    result = BenchmarkResults.read(out).classes[0]
    assert result.category == "mypart" and result.test_objects == 4
    assert sorted(result.object_scores) == ["bump/s12", "bump/s13", "good/s10", "good/s11"]
    assert result.test_points == sum(len(normal_views(blob(3000, s), 1)[0]) for s in (10, 11)) + len(labelled)
    assert 0.0 <= result.p_roc <= 1.0 and 0.0 <= result.o_roc <= 1.0
    assert "1 defective scan(s) have no per-point labels" in caplog.text
