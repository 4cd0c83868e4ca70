"""The inspection report in a real browser: headless Chromium draws every figure, and a
failed part's heatmap shows hot colours. Runs where Playwright and a Chromium are installed
(``$MVR3D_CHROMIUM`` or one on the PATH); benchmarks/report_screenshot.py is the step that
always runs it. The checks of the measurement itself run everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from mvr3d.cli import main
from mvr3d.errors import InputError
from mvr3d.visualization import screenshot
from mvr3d.visualization.screenshot import FigureCheck, ScreenshotCheck, find_chromium
from test_thresholds import part_and_scans


def _figure(kind: str = "3d", drawn: float = 0.1, colours: int = 500) -> FigureCheck:
    return FigureCheck(kind, 800, 600, drawn, colours, 0.01)


def test_problems_name_blank_and_colourless_figures_and_page_errors() -> None:
    good = ScreenshotCheck(Path("x.png"), "chromium", [_figure("2d", colours=3), _figure()])
    assert good.problems() == []
    blank = ScreenshotCheck(Path("x.png"), "chromium", [_figure("2d"), _figure(drawn=0.001)], ["TypeError: x"])
    assert blank.problems() == ["page error: TypeError: x", "figure 1 (3d) is blank (0.10% drawn)"]
    flat = ScreenshotCheck(Path("x.png"), "chromium", [_figure(colours=2)])
    assert flat.problems() == ["figure 0 (3d) shows 2 colours, not a heatmap"]
    assert ScreenshotCheck(Path("x.png"), "chromium", []).problems() == ["no plotly figure on the page"]


def test_chromium_named_in_the_environment_must_exist(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(screenshot.CHROMIUM_ENV, str(tmp_path / "missing-chromium"))
    with pytest.raises(InputError, match="MVR3D_CHROMIUM"):
        find_chromium()
    binary = tmp_path / "chromium"
    binary.write_text("")
    monkeypatch.setenv(screenshot.CHROMIUM_ENV, str(binary))
    assert find_chromium() == str(binary)


def _browser_available() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    try:
        return find_chromium() is not None
    except InputError:
        return False


@pytest.mark.skipif(not _browser_available(), reason="needs Playwright and a Chromium ($MVR3D_CHROMIUM or on PATH)")
def test_report_draws_in_headless_chromium(tmp_path) -> None:
    pytest.importorskip("plotly")
    data, scans = part_and_scans(tmp_path)
    model, out = tmp_path / "model", tmp_path / "out"
    assert main(["fit", "--method", "btf_raw", "--data", str(data), "--out", str(model),
                 "--false-alarm-rate", "0.05"]) == 0
    assert main(["predict", "--checkpoint", str(model), "--input", str(scans), "--output", str(out), "--report"]) == 0
    check = screenshot.screenshot_report(out / "report.html", tmp_path / "page.png")
    assert check.problems() == []
    assert [f.kind for f in check.figures] == ["2d", "3d"]
    assert (tmp_path / "page.png").stat().st_size > 10_000
