"""An offline HTML inspection report of one ``mvr3d predict`` folder: the batch at a glance
(pass/fail counts, object scores of passed and failed parts against the threshold), every
part's verdict and regions, and a 3D heatmap of each part on one colour scale.

Reads only what ``predict`` wrote (``predict.json``, ``scores.csv``, ``regions.csv`` and the
``<name>.txt`` or ``<name>.ply`` point scores); plotly is optional (``pip install 'mvr3d[report]'``) and its
JavaScript is embedded, so the page opens without a network.
"""

from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np

from mvr3d.engine.predict import RECORD_NAME, REPORT_NAME
from mvr3d.engine.results import REGIONS_FILE, ScoreRow, read_scores
from mvr3d.errors import InputError
from mvr3d.io import read_points
from mvr3d.utils.atomic import atomic_write_text
from mvr3d.visualization.charts import require_plotting

# Points drawn per part: enough to see a region, few enough for a page of many parts.
MAX_PART_POINTS = 20_000
# Largest / smallest object score from which the histogram's axis is logarithmic.
LOG_AXIS_SPAN = 30.0

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1200px;padding:0 16px;color:#222}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.92em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#f2f2f2}
.fail{color:#b00020;font-weight:600}.pass{color:#1b7f3b}.note{color:#666;font-size:.9em}
.counts span{display:inline-block;margin-right:18px;font-size:1.3em}
"""


def write_inspection_report(folder: Path, out: Path | None = None) -> Path:
    """Write ``report.html`` for the predict results in ``folder`` (or to ``out``)."""
    folder = Path(folder)
    go = require_plotting()[1]
    from plotly.offline import get_plotlyjs  # local: optional dependency, present once go imported
    record = _read_record(folder)
    rows = read_scores(folder)
    regions = _read_regions(folder / REGIONS_FILE)
    threshold = record.get("threshold") or None
    body = [
        f"<h1>Inspection of {html.escape(str(record.get('inputs', folder)))}</h1>",
        _header(record, rows, threshold),
        "<h2>Object scores</h2>", _histogram(go, rows, threshold),
        "<h2>Parts</h2>", _parts_table(rows, regions),
        "<h2>Heatmaps</h2>", _heatmaps(go, folder, rows, regions, threshold),
    ]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>mvr3d inspection</title><style>{_CSS}</style>"
            f"<script>{get_plotlyjs()}</script></head><body>{''.join(body)}</body></html>")
    path = Path(out) if out is not None else folder / REPORT_NAME
    atomic_write_text(path, page)
    return path


def _read_record(folder: Path) -> dict:
    path = folder / RECORD_NAME
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the predict record ({error}); is this an `mvr3d predict` folder?", path) from None
    if not isinstance(record, dict):
        raise InputError("not a predict record (expected a JSON object)", path)
    return record


def _read_regions(path: Path) -> dict[str, list[dict[str, str]]]:
    if not path.is_file():
        return {}
    found: dict[str, list[dict[str, str]]] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                found.setdefault(row["file"], []).append(row)
    except (KeyError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"not a regions table of `mvr3d predict` ({error})", path) from None
    return found


def _header(record: dict, rows: list[ScoreRow], threshold: dict | None) -> str:
    method = html.escape(str(record.get("method", "?")))
    checkpoint = html.escape(str(record.get("checkpoint") or "-"))
    if threshold is None:
        return (f"<p>{len(rows)} parts scored by <code>{method}</code> ({checkpoint}). The checkpoint has no "
                "threshold, so there are no verdicts: fit with <code>--false-alarm-rate</code>.</p>")
    failed = sum(row.verdict == "fail" for row in rows)
    return (f"<p class='counts'><span class='pass'>{len(rows) - failed} passed</span>"
            f"<span class='fail'>{failed} failed</span><span>{len(rows)} parts</span></p>"
            f"<p>Method <code>{method}</code>, checkpoint <code>{checkpoint}</code>; threshold for a "
            f"{100 * float(threshold['false_alarm_rate']):g} % false-alarm rate: object score "
            f"{float(threshold['object_threshold']):.5g}, point score {float(threshold['point_threshold']):.5g} "
            f"({html.escape(str(threshold.get('strategy', '')))}).</p>")


def _histogram(go: ModuleType, rows: list[ScoreRow], threshold: dict | None) -> str:
    """Object scores of passed and failed parts against the threshold; on a log axis when they
    span more than a decade and a half (good parts at 2, defective ones at 200 both stay visible)."""
    scores = np.array([row.object_score for row in rows], dtype=np.float64)
    log_axis = bool(len(scores)) and bool(np.isfinite(scores).all()) and scores.min() > 0 and (
        scores.max() / scores.min() >= LOG_AXIS_SPAN)
    shown = np.log10 if log_axis else (lambda v: v)
    figure = go.Figure()
    groups = {"pass": [], "fail": [], "": []}
    for row in rows:
        groups.setdefault(row.verdict, []).append(row.object_score)
    for verdict, colour in (("pass", "#1b7f3b"), ("fail", "#b00020"), ("", "#555")):
        if groups[verdict]:
            figure.add_trace(go.Histogram(x=shown(np.asarray(groups[verdict])), name=verdict or "scored",
                                          marker_color=colour, opacity=0.75, nbinsx=30))
    if threshold is not None and (not log_axis or float(threshold["object_threshold"]) > 0):
        figure.add_vline(x=float(shown(float(threshold["object_threshold"]))), line_dash="dash",
                         annotation_text="threshold")
    axis: dict = {"title": {"text": "object score (log scale)" if log_axis else "object score"}}
    if log_axis:
        decades = np.arange(np.floor(np.log10(scores.min())), np.ceil(np.log10(scores.max())) + 1)
        axis |= {"tickvals": decades.tolist(), "ticktext": [f"{10 ** d:g}" for d in decades]}
    figure.update_layout(barmode="overlay", height=320, margin={"l": 40, "r": 10, "t": 10, "b": 40},
                         template="plotly_white", xaxis=axis, yaxis_title="parts")
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def _parts_table(rows: list[ScoreRow], regions: dict[str, list[dict[str, str]]]) -> str:
    ordered = sorted(rows, key=lambda r: (r.verdict != "fail", -_finite(r.normalised_score), -r.object_score))
    lines = ["<table><thead><tr><th>part</th><th>verdict</th><th>object score</th><th>normalised</th>"
             "<th>coverage</th><th>regions</th><th>largest region (points, size)</th></tr></thead><tbody>"]
    for row in ordered:
        found = regions.get(row.file, [])
        largest = max(found, key=lambda r: int(r["points"]), default=None)
        biggest = "-" if largest is None else f"{largest['points']}, {float(largest['size']):.4g}"
        lines.append(
            f"<tr><td>{html.escape(row.file)}</td><td class='{html.escape(row.verdict)}'>{html.escape(row.verdict or '-')}"
            f"</td><td>{row.object_score:.5g}</td><td>{_fmt(row.normalised_score, '.3f')}</td>"
            f"<td>{_fmt(row.coverage, '.3f')}</td><td>{'-' if row.regions is None else row.regions}</td>"
            f"<td>{biggest}</td></tr>")
    return "".join(lines) + "</tbody></table>"


def _heatmaps(go: ModuleType, folder: Path, rows: list[ScoreRow], regions: dict[str, list[dict[str, str]]],
              threshold: dict | None) -> str:
    """One 3D figure with a button per part (one WebGL context whatever the batch size)."""
    parts = []
    for row in sorted(rows, key=lambda r: (r.verdict != "fail", -r.object_score)):
        path = next((p for p in (folder / f"{row.file}.txt", folder / f"{row.file}.ply") if p.is_file()), None)
        if path is not None:
            parts.append((row, *_subsample(read_points(path))))
    if not parts:
        return "<p class='note'>No per-point score files in this folder.</p>"
    cmin, cmax = _colour_range([scores for _, _, scores in parts], threshold)
    figure = go.Figure()
    for index, (row, points, scores) in enumerate(parts):
        centres = regions.get(row.file, [])
        figure.add_trace(go.Scatter3d(
            x=points[:, 0], y=points[:, 1], z=points[:, 2], mode="markers", name="point score",
            marker={"size": 1.6, "color": scores, "colorscale": "Turbo", "cmin": cmin, "cmax": cmax,
                    "colorbar": {"title": {"text": "score"}, "len": 0.7}},
            hovertemplate="score %{marker.color:.4f}<extra></extra>", visible=index == 0))
        figure.add_trace(go.Scatter3d(
            x=[float(r["centroid_x"]) for r in centres], y=[float(r["centroid_y"]) for r in centres],
            z=[float(r["centroid_z"]) for r in centres], mode="markers+text", name="regions",
            text=[f"#{r['region']}" for r in centres], marker={"size": 7, "color": "black", "symbol": "diamond-open"},
            hovertemplate="region %{text}<extra></extra>", visible=index == 0))
    buttons = [{"label": html.escape(f"{row.verdict or 'scored'}: {row.file}"), "method": "update",
                "args": [{"visible": [i // 2 == k for i in range(2 * len(parts))]},
                         {"title.text": _title(row)}]} for k, (row, _, _) in enumerate(parts)]
    figure.update_layout(
        height=620, margin={"l": 0, "r": 0, "t": 90, "b": 0}, template="plotly_white",
        title={"text": _title(parts[0][0]), "x": 0.01, "y": 0.98, "yref": "container", "yanchor": "top"},
        scene={"aspectmode": "data", "xaxis": {"visible": False}, "yaxis": {"visible": False},
               "zaxis": {"visible": False}},
        updatemenus=[{"type": "dropdown", "x": 0, "y": 1.0, "xanchor": "left", "yanchor": "bottom",
                      "buttons": buttons}] if len(parts) > 1 else [])
    note = ("<p class='note'>One colour scale for every part: 0 to twice the point threshold (the threshold "
            "mid-map), so the same colour means the same on every part; diamonds mark the regions.</p>"
            if threshold else "<p class='note'>No threshold: one colour scale over all parts (1st to 99.5th "
            "percentile of their scores).</p>")
    return note + figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def _subsample(cloud: object) -> tuple[np.ndarray, np.ndarray]:
    points = np.asarray(cloud.points)
    scores = getattr(cloud, "values", None)
    if scores is None:
        scores = np.zeros(len(points))
    if len(points) > MAX_PART_POINTS:  # evenly, deterministic: every k-th point
        keep = np.linspace(0, len(points) - 1, MAX_PART_POINTS).astype(int)
        points, scores = points[keep], np.asarray(scores)[keep]
    return points, np.asarray(scores, dtype=np.float64)


def _colour_range(scores: list[np.ndarray], threshold: dict | None) -> tuple[float, float]:
    if threshold and float(threshold["point_threshold"]) > 0:
        return 0.0, 2.0 * float(threshold["point_threshold"])
    pooled = np.concatenate(scores)
    low, high = (float(v) for v in np.percentile(pooled, [1, 99.5]))
    return low, max(high, low + 1e-9)


def _title(row: ScoreRow) -> str:
    verdict = f"{row.verdict}, " if row.verdict else ""
    return f"{html.escape(row.file)}: {verdict}object score {row.object_score:.4g}"


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def _fmt(value: float, spec: str) -> str:
    return format(value, spec) if math.isfinite(value) else "-"
