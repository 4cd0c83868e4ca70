"""One offline HTML page comparing benchmark runs: paper table, bar charts, ROC curves, heatmaps.

Inputs are what the CLI already writes: ``results.json`` of ``mvr3d benchmark`` (one per
method or run) and, optionally, ``mvr3d predict`` folders (``<stem>.txt`` with ``x y z
score`` rows plus ``scores.csv``) together with the Real3D-AD root holding the ground truth.

plotly and matplotlib are optional (``pip install 'mvr3d[report]'``) and imported lazily.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import logging
import math
from pathlib import Path

from mvr3d.engine.results import METRICS
from mvr3d.errors import InputError
from mvr3d.utils.atomic import atomic_write_bytes, atomic_write_text
from mvr3d.visualization.charts import bar_chart_png, require_plotting, roc_png
from mvr3d.visualization.heatmaps import heatmap_div
from mvr3d.visualization.predictions import MAX_HEATMAP_POINTS, ClassPredictions, load_predictions
from mvr3d.visualization.runs import Run, all_categories, load_run, load_runs

__all__ = ["MAX_HEATMAP_POINTS", "load_run", "write_report"]



log = logging.getLogger(__name__)


def _number(value: object) -> float:
    # Booleans are ints in Python but never a metric; None/strings mean "not measured".
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1300px;padding:0 16px;color:#222}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}thead th{background:#f2f2f2}
td.mean{font-weight:600;background:#fafafa}
.scroll{overflow-x:auto}.note{color:#666;font-size:.9em}img{max-width:100%}
code{background:#f4f4f4;padding:1px 4px;border-radius:3px}
details{margin:6px 0}summary{cursor:pointer}pre{background:#f7f7f7;padding:8px;overflow-x:auto}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cell(o: float, p: float) -> str:
    def pct(v: float) -> str:
        return f"{v * 100:.1f}" if math.isfinite(v) else "–"

    return f"{pct(o)}/{pct(p)}"


def paper_table(runs: list[Run], categories: list[str]) -> str:
    """The paper's layout: a row per method, an "O-ROC/P-ROC" cell per class, then the mean."""
    head = "".join(f"<th>{_e(c)}</th>" for c in categories)
    rows = []
    for run in runs:
        cells = "".join(
            f"<td>{_cell(run.metric(c, 'o_roc'), run.metric(c, 'p_roc'))}</td>" for c in categories
        )
        partial = "*" if set(categories) - set(run.classes) else ""
        mean = _cell(run.mean("o_roc"), run.mean("p_roc"))
        rows.append(f"<tr><td>{_e(run.label)}</td>{cells}<td class=mean>{mean}{partial}</td></tr>")
    note = "Cells are O-ROC/P-ROC in percent; – means not measured."
    if any(set(categories) - set(r.classes) for r in runs):
        note += " * mean over the run's own classes only, not comparable with the others."
    return (
        f"<div class=scroll><table><thead><tr><th>method</th>{head}<th>mean</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div><p class=note>{note}</p>"
    )


def _run_details(run: Run) -> str:
    rows = []
    for category, entry in run.classes.items():
        cells = "".join(f"<td>{_fmt(getattr(entry, k), 100, '.1f')}</td>" for k in METRICS)
        extra = (
            f"<td>{_fmt(entry.fit_seconds, 1, '.1f')}</td>"
            f"<td>{_fmt(entry.predict_seconds_per_object, 1, '.2f')}</td>"
            f"<td>{_fmt(entry.test_objects, 1, ',.0f')}</td>"
            f"<td>{_fmt(entry.test_points, 1, ',.0f')}</td>"
        )
        rows.append(f"<tr><td>{_e(category)}</td>{cells}{extra}</tr>")
    head = ("<tr><th>class</th><th>O-ROC</th><th>P-ROC</th><th>O-AUPR</th><th>P-AUPR</th>"
            "<th>fit s</th><th>predict s/object</th><th>test objects</th><th>test points</th></tr>")
    summary = run.results.to_dict()
    meta = {k: summary[k] for k in ("method", "data", "seed", "config_key", "peak_memory")}
    extra = {k: summary[k] for k in ("config", "provenance")}
    return (
        f"<details><summary><b>{_e(run.label)}</b> — <code>{_e(run.path)}</code></summary>"
        f"<div class=scroll><table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></div>"
        f"<pre>{_e(json.dumps(meta, indent=2, default=str))}</pre>"
        f"<details><summary>config and provenance</summary>"
        f"<pre>{_e(json.dumps(extra, indent=2, default=str))}</pre></details></details>"
    )


def _fmt(value: object, scale: float, spec: str) -> str:
    number = _number(value)
    return format(number * scale, spec) if math.isfinite(number) else "–"


def _img(data: bytes, alt: str) -> str:
    # Inlined so the page stays whole when copied or mailed without its figures/ folder.
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{_e(alt)}">'


def _class_section(preds: ClassPredictions, div: str | None) -> str:
    auc = preds.auroc()
    good = int((preds.labels == 0).sum())
    summary = (
        f"{len(preds.names)} scored test scans ({len(preds.names) - good} defective, {good} good)"
        + (f"; object AUROC from these predictions {auc * 100:.1f}%" if math.isfinite(auc) else "")
    )
    notes = "".join(f"<p class=note>{_e(n)}</p>" for n in preds.notes)
    body = div if div is not None else "<p class=note>no scan to show</p>"
    return (
        f"<h3>{_e(preds.category)}</h3><p>{_e(summary)} — <code>{_e(preds.folder)}</code></p>"
        f"{notes}{body}"
    )


def _page(sections: list[str], plotlyjs: str) -> str:
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    script = f"<script>{plotlyjs}</script>" if plotlyjs else ""
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>mvr3d benchmark report</title><style>{_CSS}</style>{script}</head><body>"
        f"<h1>mvr3d benchmark report</h1><p class=note>generated {_e(stamp)}</p>"
        + "".join(sections)
        + "</body></html>\n"
    )


def write_report(
    results: list[Path],
    out_dir: Path,
    predictions: dict[str, Path] | None = None,
    data_root: Path | None = None,
) -> Path:
    """Write ``out_dir/report.html`` (self-contained) and ``out_dir/figures/*.png``.

    ``predictions`` maps a class to its ``mvr3d predict`` folder; with the dataset root
    (``data_root``, else the ``data`` path recorded in a results file) it adds object-level
    ROC curves and interactive 3D heatmaps of the best and worst scored test scans.
    """
    mpl_figure, go = require_plotting()
    runs = load_runs([Path(p) for p in results])
    out_dir = Path(out_dir)
    categories = all_categories(runs)
    bars = bar_chart_png(mpl_figure, runs, categories)
    atomic_write_bytes(out_dir / "figures" / "auroc_bars.png", bars)
    sections = [
        f"<h2>Results</h2><p>{len(runs)} run(s): "
        + ", ".join(f"<b>{_e(r.label)}</b>" for r in runs) + "</p>",
        paper_table(runs, categories),
        _img(bars, "O-ROC and P-ROC per class and run"),
        "<h2>Runs</h2>" + "".join(_run_details(r) for r in runs),
    ]
    plotlyjs = ""
    if predictions:
        loaded = [load_predictions(c, Path(f), _data_root(data_root, runs)) for c, f in predictions.items()]
        sections.append(_predictions_section(mpl_figure, go, loaded, out_dir))
        if any(p.scans for p in loaded):
            from plotly.offline import get_plotlyjs  # local: optional dependency

            plotlyjs = get_plotlyjs()  # inlined once so the page works offline
    path = out_dir / "report.html"
    atomic_write_text(path, _page(sections, plotlyjs))
    return path


def _data_root(data_root: Path | None, runs: list[Run]) -> Path:
    if data_root is not None:
        return Path(data_root)
    for run in runs:
        recorded = run.results.data
        if recorded and Path(recorded).is_dir():
            return Path(recorded)
    raise InputError("predictions need the dataset root for ground truth: give --data ROOT")


def _predictions_section(mpl_figure, go, loaded: list[ClassPredictions], out_dir: Path) -> str:
    parts = ["<h2>Predictions</h2>"]
    if any(p.has_both_labels for p in loaded):
        roc = roc_png(mpl_figure, loaded)
        atomic_write_bytes(out_dir / "figures" / "roc_curves.png", roc)
        parts.append(_img(roc, "object-level ROC curves per class"))
    parts.append(
        "<p class=note>3D heatmaps (drag to rotate, scroll to zoom; buttons switch scans, the "
        f"legend toggles the ground truth). At most {MAX_HEATMAP_POINTS:,} random points per scan; "
        "colours share one range per class.</p>"
    )
    for preds in loaded:
        parts.append(_class_section(preds, heatmap_div(go, preds) if preds.scans else None))
    return "".join(parts)
