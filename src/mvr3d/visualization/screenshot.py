"""Open an HTML report in headless Chromium, screenshot it and measure what it drew.

A report can pass every check on its HTML and still show an empty 3D view (WebGL refused, a
plotly.js error). This loads the page in headless Chromium through Playwright, waits until
every plotly figure has drawn, saves a full-page screenshot and measures each figure's pixels:
how much of it is drawn, how many colours, and how much is at the hot end of the heatmap
colour map (a failed part's defect).

Chromium: ``$MVR3D_CHROMIUM`` (any Chromium or Chrome binary), else the first of
``chromium``, ``chromium-browser``, ``google-chrome``, ``headless_shell`` on the PATH, else
the browser Playwright downloads (``playwright install chromium``). Needs the 'screenshot'
extra (``pip install 'mvr3d[screenshot]'``).
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from mvr3d.errors import InputError, MVR3DError

CHROMIUM_ENV = "MVR3D_CHROMIUM"
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell")
# Software WebGL (SwiftShader): servers and CI machines have no GPU.
_ARGS = ["--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--ignore-gpu-blocklist"]
_INSTALL_HINT = "the report screenshot needs Playwright: pip install 'mvr3d[screenshot]'"
_FIGURES_DRAWN = ("() => [...document.querySelectorAll('.plotly-graph-div')]"
                  ".every(d => d._fullLayout && !d._transitioning)")
# A pixel "at the hot end": turbo above ~0.85 runs from red (~220, 60, 10) to dark red (122, 4, 3).
_HOT_MIN_RED, _HOT_MAX_GREEN, _HOT_MAX_BLUE = 100, 90, 60


@dataclass(frozen=True)
class FigureCheck:
    """The pixels of one plotly figure on the page."""

    kind: str  # "3d" (a WebGL scene) or "2d"
    width: int
    height: int
    drawn_share: float  # share of pixels that differ from the figure's background colour
    colours: int  # distinct colours, each channel quantised to 32 levels
    hot_share: float  # share of drawn pixels at the hot end of the colour map


@dataclass(frozen=True)
class ScreenshotCheck:
    """What a browser showed of a page."""

    path: Path
    browser: str
    figures: list[FigureCheck]
    page_errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Why the page does not look right (empty when it does)."""
        found = [f"page error: {error}" for error in self.page_errors]
        if not self.figures:
            found.append("no plotly figure on the page")
        for index, figure in enumerate(self.figures):
            if figure.drawn_share < 0.01:
                found.append(f"figure {index} ({figure.kind}) is blank ({figure.drawn_share:.2%} drawn)")
            elif figure.kind == "3d" and figure.colours < 8:
                found.append(f"figure {index} (3d) shows {figure.colours} colours, not a heatmap")
        return found


def find_chromium() -> str | None:
    """The Chromium to use (see the module text); None: Playwright's own, if installed."""
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        if not Path(named).is_file():
            raise InputError(f"${CHROMIUM_ENV}={named!r} is not a file: name a Chromium or Chrome binary")
        return named
    return next((path for path in map(shutil.which, _NAMES) if path), None)


def require_playwright() -> ModuleType:
    try:
        from playwright import sync_api  # local: optional dependency (the 'screenshot' extra)
    except ImportError as error:
        raise MVR3DError(f"{_INSTALL_HINT} ({error})") from None
    return sync_api


def screenshot_report(page_path: Path, png_path: Path, width: int = 1280, timeout_s: float = 120.0) -> ScreenshotCheck:
    """Screenshot ``page_path`` (whole page) to ``png_path`` and measure its figures."""
    sync_api = require_playwright()
    executable = find_chromium()
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=_ARGS, headless=True)
        except sync_api.Error as error:
            raise MVR3DError(f"cannot start headless Chromium ({executable or 'Playwright default'}): set "
                             f"${CHROMIUM_ENV} to a Chromium binary or run `playwright install chromium` "
                             f"({str(error).splitlines()[0]})") from None
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(Path(page_path).resolve().as_uri())
            page.wait_for_function(_FIGURES_DRAWN, timeout=timeout_s * 1000)
            page.wait_for_timeout(1000)  # WebGL scenes draw a frame after plotly resolves
            page.screenshot(path=str(png_path), full_page=True)
            figures = [_measure(div) for div in page.query_selector_all(".plotly-graph-div")]
            return ScreenshotCheck(Path(png_path), f"{browser.browser_type.name} {browser.version}", figures, errors)
        finally:
            browser.close()


def _measure(div: object) -> FigureCheck:
    kind = "3d" if div.query_selector(".gl-container canvas") is not None else "2d"
    if kind == "3d":  # the colour bar spans the whole map: measure the scene alone
        div.evaluate("d => d.querySelectorAll('.infolayer, .menulayer').forEach(e => e.style.visibility = 'hidden')")
    pixels = _decode(div.screenshot())
    flat = pixels.reshape(-1, 3)
    colours, counts = np.unique(flat // 8, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    drawn = (flat // 8 != background).any(axis=1)
    red, green, blue = flat[:, 0].astype(int), flat[:, 1].astype(int), flat[:, 2].astype(int)
    hot = drawn & (red >= _HOT_MIN_RED) & (green <= _HOT_MAX_GREEN) & (blue <= _HOT_MAX_BLUE) & (red > 2 * green)
    return FigureCheck(kind, pixels.shape[1], pixels.shape[0], float(drawn.mean()), len(colours),
                       float(hot.sum() / max(drawn.sum(), 1)))


def _decode(png: bytes) -> np.ndarray:
    from PIL import Image  # local: comes with matplotlib (the 'report' extra)

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
