"""The inspection report as a browser shows it (issue 19): fit, predict --report, then open
report.html in headless Chromium, screenshot it and check what it drew.

    MVR3D_CHROMIUM=/path/to/chromium python benchmarks/report_screenshot.py

A synthetic part (noisy ellipsoids) is fitted with the default method and its default 1 %
threshold; four good scans and two with a bump are checked. The step fails (exit status 1)
when no Chromium starts or the page shows a blank or colourless figure, a JavaScript error,
or a failed part without hot colours. Writes ``docs/report_screenshot.png`` and
``docs/report_screenshot.md`` (the measurements, machine, browser and commit).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import ellipsoid, machine, markdown_table
from mvr3d.cli import main as mvr3d
from mvr3d.engine.results import read_scores
from mvr3d.io import write_points
from mvr3d.utils.atomic import atomic_write_text
from mvr3d.utils.provenance import git_hash
from mvr3d.visualization.screenshot import screenshot_report

DOCS = Path(__file__).resolve().parent.parent / "docs"
POINTS = 6000


def inspected_batch(work: Path) -> Path:
    """A predict folder with verdicts and report.html for the synthetic part."""
    for seed in range(4):
        write_points(work / "part" / "train" / "good" / f"good_{seed}.pcd", ellipsoid(POINTS, seed))
    for index in range(6):
        bump = 0.25 if index >= 4 else 0.0
        write_points(work / "scans" / f"{'bump' if bump else 'good'}_{index}.pcd", ellipsoid(POINTS, 100 + index, bump=bump))
    model, out = work / "model", work / "out"
    if mvr3d(["fit", "--data", str(work / "part"), "--out", str(model)]) != 0:
        raise SystemExit("fit failed")
    if mvr3d(["predict", "--checkpoint", str(model), "--input", str(work / "scans"), "--output", str(out),
              "--report", "--no-txt"]) != 0:
        raise SystemExit("predict failed")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DOCS, help="folder for report_screenshot.png and .md")
    args = parser.parse_args()
    code = git_hash()  # before this run rewrites the tracked screenshot
    with tempfile.TemporaryDirectory() as work:
        out = inspected_batch(Path(work))
        failed = sum(row.verdict == "fail" for row in read_scores(out))
        started = time.perf_counter()
        check = screenshot_report(out / "report.html", args.out / "report_screenshot.png")
        seconds = time.perf_counter() - started
    problems = check.problems()
    scene = next((f for f in check.figures if f.kind == "3d"), None)
    if failed and (scene is None or scene.hot_share <= 0):
        problems.append("the first part shown failed, but its heatmap has no hot pixels")
    rows = [[str(i), f.kind, f"{f.width} x {f.height}", f"{f.drawn_share:.1%}", str(f.colours), f"{f.hot_share:.2%}"]
            for i, f in enumerate(check.figures)]
    text = (f"Inspection report in headless {check.browser} ({time.strftime('%Y-%m-%d')}, {machine('cpu')}, code "
            f"{code}): {failed} of 6 synthetic parts failed the default 1 % threshold; page drawn and "
            f"measured in {seconds:.1f} s. Figure 0 is the score histogram, figure 1 the 3D heatmap of the first "
            "part listed (the worst failed one); hot: drawn pixels at the red end of the colour map.\n\n")
    text += markdown_table(["figure", "kind", "pixels", "drawn", "colours", "hot"], rows) + "\n"
    text += ("\nNo problems found.\n" if not problems else "\nProblems:\n" + "".join(f"- {p}\n" for p in problems))
    atomic_write_text(args.out / "report_screenshot.md", text)
    print(text)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
