"""HTML report: tables, figures, heatmaps, escaping and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mvr3d.cli import main
from mvr3d.data import Real3DAD, list_categories, make_demo_dataset
from mvr3d.errors import InputError, MVR3DError
from mvr3d.visualization.report import load_run, write_report

EXTRA_CLASS = "plate_holes"


def fake_results(path: Path, method: str, rows: dict[str, tuple[float, float]]) -> Path:
    classes = [
        {
            "category": name, "o_roc": o, "p_roc": p, "o_aupr": o - 0.1, "p_aupr": p - 0.2,
            "fit_seconds": 12.5, "predict_seconds_per_object": 0.25, "test_objects": 6,
            "test_points": 24000,
        }
        for name, (o, p) in rows.items()
    ]
    mean = {k: float(np.mean([c[k] for c in classes])) for k in ("o_roc", "p_roc", "o_aupr", "p_aupr")}
    summary = {
        "method": method, "data": "/nowhere", "config": {"views": 9}, "seed": 0,
        "classes": classes, "mean": mean, "peak_memory": {"cpu_max_rss_mb": 100.0},
        "provenance": {"mvr3d": "0.1.0"},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("report") / "data")


@pytest.fixture(scope="module")
def predictions(dataset: Path) -> dict[str, Path]:
    """Per-point scores that follow the ground truth, as `mvr3d predict` writes them."""
    folders = {}
    rng = np.random.default_rng(0)
    for category in list_categories(dataset):
        folder = dataset.parent / "predictions" / category
        folder.mkdir(parents=True)
        rows = ["file,object_score"]
        for sample in Real3DAD(dataset, category, "test"):
            labels = sample.point_labels if sample.point_labels is not None else 0
            scores = rng.random(len(sample.points)) * 0.5 + labels
            table = np.column_stack([sample.points, scores])
            np.savetxt(folder / f"{sample.name}.txt", table, fmt="%.6f")
            rows.append(f"{sample.name},{scores.max() + 0.1 * sample.label:.6f}")
        (folder / "scores.csv").write_text("\n".join(rows) + "\n")
        folders[category] = folder
    return folders


@pytest.fixture
def results(tmp_path: Path, dataset: Path) -> list[Path]:
    names = [*list_categories(dataset), EXTRA_CLASS]
    first = fake_results(tmp_path / "mvr" / "results.json", "mvr",
                         dict(zip(names, [(0.85, 0.90), (0.70, 0.65), (0.60, 0.55)], strict=True)))
    second = fake_results(tmp_path / "btf" / "results.json", "btf",
                          dict(zip(names, [(0.55, 0.62), (0.51, 0.58), (0.49, 0.47)], strict=True)))
    return [first, second]


def is_png(path: Path) -> bool:
    with Image.open(path) as image:
        image.verify()
        return image.format == "PNG"


def test_report_tables_and_bars(tmp_path: Path, results: list[Path], dataset: Path) -> None:
    page = write_report(results, tmp_path / "out")
    text = page.read_text()
    assert page == tmp_path / "out" / "report.html"
    for name in [*list_categories(dataset), EXTRA_CLASS, "mvr", "btf"]:
        assert name in text
    assert "85.0/90.0" in text and "55.0/62.0" in text
    assert "71.7/70.0" in text  # mean of 85/70/60 and 90/65/55
    assert is_png(tmp_path / "out" / "figures" / "auroc_bars.png")
    assert "data:image/png;base64," in text
    assert "plotly-graph-div" not in text  # no predictions: no heatmaps and no plotly.js


def test_report_with_predictions(
    tmp_path: Path, results: list[Path], dataset: Path, predictions: dict[str, Path]
) -> None:
    page = write_report(results, tmp_path / "out", predictions, dataset)
    text = page.read_text()
    assert is_png(tmp_path / "out" / "figures" / "roc_curves.png")
    assert text.count("plotly-graph-div") == len(predictions)
    assert text.count("Plotly.newPlot") == len(predictions)
    assert "highest-scored defective" in text and "highest-scored good" in text
    # Scores above follow the labels, so every class separates perfectly.
    assert "object AUROC from these predictions 100.0%" in text
    assert "<script src=" not in text  # plotly.js inlined: the page works offline
    assert "plotly.js v" in text


def test_heatmaps_are_subsampled(
    dataset: Path, predictions: dict[str, Path]
) -> None:
    from mvr3d.visualization.predictions import load_predictions

    category, folder = next(iter(predictions.items()))
    loaded = load_predictions(category, folder, dataset, max_points=500)
    assert loaded.scans and all(len(v.points) == 500 < v.total_points for v in loaded.scans)


def test_names_are_escaped(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    path = fake_results(tmp_path / "r" / "results.json", f"m{evil}", {f"c{evil}": (0.8, 0.7)})
    text = write_report([path], tmp_path / "out").read_text()
    assert evil not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_repeated_method_gets_run_labels(tmp_path: Path) -> None:
    a = fake_results(tmp_path / "seed0" / "results.json", "mvr", {"x": (0.8, 0.7)})
    b = fake_results(tmp_path / "seed1" / "results.json", "mvr", {"x": (0.9, 0.6)})
    text = write_report([a, b], tmp_path / "out").read_text()
    assert "mvr (seed0)" in text and "mvr (seed1)" in text


def test_missing_results_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="results file not found"):
        write_report([tmp_path / "nope.json"], tmp_path / "out")
    assert not (tmp_path / "out" / "report.html").exists()


def test_not_a_results_file(tmp_path: Path) -> None:
    bad = tmp_path / "results.json"
    bad.write_text('{"method": "mvr"}')
    with pytest.raises(InputError, match="no 'classes' list"):
        load_run(bad)
    bad.write_text("{not json")
    with pytest.raises(InputError, match="cannot read results"):
        load_run(bad)


def test_predictions_need_scores_csv(tmp_path: Path, results: list[Path], dataset: Path) -> None:
    category = list_categories(dataset)[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(MVR3DError, match="scores.csv"):
        write_report(results, tmp_path / "out", {category: tmp_path / "empty"}, dataset)


def test_cli_report(
    tmp_path: Path, results: list[Path], dataset: Path, predictions: dict[str, Path],
    capsys: pytest.CaptureFixture,
) -> None:
    parent = next(iter(predictions.values())).parent
    out = tmp_path / "cli"
    argv = ["report", *map(str, results), "--out", str(out), "--predictions", str(parent),
            "--data", str(dataset)]
    assert main(argv) == 0
    assert "report.html" in capsys.readouterr().out
    assert (out / "report.html").read_text().count("plotly-graph-div") == len(predictions)


def test_cli_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 2
    assert "results file not found" in capsys.readouterr().err


def test_cli_bad_predictions_argument(tmp_path: Path, results: list[Path]) -> None:
    argv = ["report", str(results[0]), "--out", str(tmp_path), "--predictions", "=x"]
    assert main(argv) == 2


def test_missing_plotting_packages(
    tmp_path: Path, results: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)  # import now fails
    with pytest.raises(MVR3DError, match=r"pip install 'mvr3d\[report\]'"):
        write_report(results, tmp_path / "out")


def test_inspection_histogram_goes_logarithmic_when_scores_span_decades() -> None:
    go = pytest.importorskip("plotly.graph_objects")
    from mvr3d.engine.results import ScoreRow
    from mvr3d.visualization.inspection import _histogram

    threshold = {"object_threshold": 4.0}
    wide = [ScoreRow("good", 2.0, verdict="pass"), ScoreRow("bad", 200.0, verdict="fail")]
    narrow = [ScoreRow("good", 2.0, verdict="pass"), ScoreRow("bad", 5.0, verdict="fail")]
    assert "object score (log scale)" in _histogram(go, wide, threshold)
    assert "log scale" not in _histogram(go, narrow, threshold)
    assert "log scale" not in _histogram(go, [ScoreRow("a", 0.0), ScoreRow("b", 100.0)], None)  # zero: no log
