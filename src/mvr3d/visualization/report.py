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
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from mvr3d.engine.results import METRICS, RESULTS_FILE, BenchmarkResults, ClassResult, read_scores
from mvr3d.errors import InputError, MVR3DError
from mvr3d.utils.atomic import atomic_write_bytes, atomic_write_text

__all__ = ["MAX_HEATMAP_POINTS", "load_run", "write_report"]

log = logging.getLogger(__name__)

MAX_HEATMAP_POINTS = 30_000
_INSTALL_HINT = "the report needs plotly and matplotlib: pip install 'mvr3d[report]'"
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


# --------------------------------------------------------------------------- inputs


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


def _number(value: object) -> float:
    # Booleans are ints in Python but never a metric; None/strings mean "not measured".
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


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


# ---------------------------------------------------------------------- predictions


@dataclass
class ScanView:
    kind: str
    name: str
    object_score: float
    points: np.ndarray
    scores: np.ndarray
    labels: np.ndarray | None
    total_points: int


@dataclass
class ClassPredictions:
    category: str
    folder: Path
    names: list[str]
    scores: np.ndarray
    labels: np.ndarray
    missing: list[str] = field(default_factory=list)
    scans: list[ScanView] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def auroc(self) -> float:
        from mvr3d.metrics import auroc

        return auroc(self.scores, self.labels) if self.has_both_labels else math.nan

    @property
    def has_both_labels(self) -> bool:
        return 0 < int(self.labels.sum()) < len(self.labels)


def read_object_scores(folder: Path) -> dict[str, float]:
    """``scores.csv`` of ``mvr3d predict``: stem -> object score."""
    return {row.file: row.object_score for row in read_scores(folder)}


def load_predictions(
    category: str, folder: Path, data_root: Path, max_points: int = MAX_HEATMAP_POINTS
) -> ClassPredictions:
    """Match a predictions folder with the ground truth of ``category``'s test split."""
    from mvr3d.data import Real3DAD

    scored = read_object_scores(folder)
    dataset = Real3DAD(data_root, category, "test")
    names, scores, labels, missing = [], [], [], []
    for sample in dataset:
        if sample.name not in scored:
            missing.append(sample.name)
            continue
        names.append(sample.name)
        scores.append(scored[sample.name])
        labels.append(int(sample.label))
    if not names:
        raise InputError(f"no scores for any test scan of class {category!r}", folder)
    preds = ClassPredictions(category, Path(folder), names, np.array(scores), np.array(labels), missing)
    if missing:
        preds.notes.append(f"{len(missing)} test scan(s) have no score and are left out")
    if not preds.has_both_labels:
        preds.notes.append("the scored scans are all good or all defective: no ROC curve")
    preds.scans = _heatmap_scans(preds, dataset, max_points)
    return preds


def _heatmap_scans(preds: ClassPredictions, dataset, max_points: int) -> list[ScanView]:
    """The clearest detection, the hardest defect and the worst false alarm of a class."""
    picks = []
    defective = np.flatnonzero(preds.labels == 1)
    good = np.flatnonzero(preds.labels == 0)
    if defective.size:
        picks.append(("highest-scored defective", defective[np.argmax(preds.scores[defective])]))
        lowest = defective[np.argmin(preds.scores[defective])]
        if defective.size > 1:
            picks.append(("lowest-scored defective", lowest))
    if good.size:
        picks.append(("highest-scored good", good[np.argmax(preds.scores[good])]))
    index = {path.stem: i for i, path in enumerate(dataset.files)}
    views = []
    for kind, i in picks:
        view = _scan_view(preds, dataset, index[preds.names[i]], kind, float(preds.scores[i]), max_points)
        if view is not None:
            views.append(view)
    return views


def _scan_view(preds, dataset, item: int, kind: str, score: float, max_points: int):
    from mvr3d.io import read_points

    sample = dataset[item]
    path = preds.folder / f"{sample.name}.txt"
    if not path.is_file():
        preds.notes.append(f"no per-point scores {path.name} for the {kind} scan")
        return None
    cloud = read_points(path)
    if cloud.values is None:
        raise InputError("expected 'x y z score' rows", path)
    labels = sample.point_labels
    if labels is not None and len(labels) != len(cloud.points):
        preds.notes.append(f"{sample.name}: point count differs from the scan; ground truth not shown")
        labels = None
    keep = _subsample(len(cloud.points), max_points)
    return ScanView(
        kind=kind,
        name=sample.name,
        object_score=score,
        points=np.asarray(cloud.points, np.float32)[keep],
        scores=np.asarray(cloud.values, np.float32)[keep],
        labels=None if labels is None else np.asarray(labels)[keep],
        total_points=len(cloud.points),
    )


def _subsample(n: int, limit: int) -> np.ndarray:
    # Fixed seed: rerunning the report on the same inputs must give the same page.
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, limit, replace=False))


# ------------------------------------------------------------------------- figures


def _require_plotting() -> tuple[ModuleType, ModuleType]:
    try:
        import matplotlib.figure
        import plotly.graph_objects
    except ImportError as error:
        raise MVR3DError(f"{_INSTALL_HINT} ({error})") from None
    return matplotlib.figure, plotly.graph_objects


def _mpl_text(text: str) -> str:
    # A '$' pair would switch matplotlib to math mode and mangle (or reject) a class name.
    return text.replace("$", r"\$")


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def bar_chart_png(mpl_figure: ModuleType, runs: list[Run], categories: list[str]) -> bytes:
    """O-ROC and P-ROC per class (and the mean), one bar per run, in percent."""
    groups = [*categories, "mean"]
    width = max(8.0, 0.35 * len(groups) * max(2, len(runs)) + 2)
    figure = mpl_figure.Figure(figsize=(width, 7.5), layout="constrained")
    axes = figure.subplots(2, 1, sharex=True)
    for ax, key, title in zip(axes, ("o_roc", "p_roc"), ("O-ROC", "P-ROC"), strict=True):
        values = np.array([[_run_value(r, g, key) for g in groups] for r in runs]) * 100
        _grouped_bars(ax, values, runs)
        ax.set_ylabel(f"{title} (%)")
        ax.set_title(f"{title} per class")
        ax.axhline(50, color="0.4", lw=0.8, ls="--")  # chance level
        ax.axvline(len(categories) - 0.5, color="0.6", lw=0.8, ls=":")
        ax.set_ylim(_lower_limit(values), 100)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(range(len(groups)), [_mpl_text(g) for g in groups], rotation=30, ha="right")
    # Above the plots: inside, the legend would hide the bars of the first class.
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center",
                  ncols=min(6, len(runs)), fontsize=9, frameon=False)
    return _png(figure)


def _run_value(run: Run, group: str, key: str) -> float:
    return run.mean(key) if group == "mean" else run.metric(group, key)


def _grouped_bars(ax, values: np.ndarray, runs: list[Run]) -> None:
    n_runs, n_groups = values.shape
    step = 0.8 / n_runs
    for i, run in enumerate(runs):
        offsets = np.arange(n_groups) - 0.4 + step * (i + 0.5)
        ax.bar(offsets, values[i], step * 0.95, label=_mpl_text(run.label),
               color=_COLORS[i % len(_COLORS)])


def _lower_limit(values: np.ndarray) -> float:
    # Start near chance level so differences of a few points stay visible.
    finite = values[np.isfinite(values)]
    low = float(finite.min()) if finite.size else 50.0
    return max(0.0, min(40.0, math.floor((low - 5) / 10) * 10))


def roc_png(mpl_figure: ModuleType, predictions: list[ClassPredictions]) -> bytes:
    from mvr3d.metrics import roc_curve

    figure = mpl_figure.Figure(figsize=(6.5, 6), layout="constrained")
    ax = figure.subplots()
    for i, preds in enumerate(p for p in predictions if p.has_both_labels):
        fpr, tpr = roc_curve(preds.scores, preds.labels)
        label = f"{preds.category} (AUROC {preds.auroc() * 100:.1f}%, n={len(preds.names)})"
        # Straight segments, not steps: tied scores cross the threshold together (a diagonal).
        ax.plot(fpr, tpr, label=_mpl_text(label), color=_COLORS[i % len(_COLORS)])
    ax.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls="--")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="false-positive rate", ylabel="true-positive rate",
           title="Object-level ROC per class", aspect="equal")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(figure)


def heatmap_div(go: ModuleType, preds: ClassPredictions) -> str:
    """One 3D figure per class with a button per scan: a single WebGL context each, since
    browsers drop contexts beyond ~16 and Real3D-AD alone has 12 classes."""
    views = preds.scans
    # One colour range per class: per-scan scaling would make a good scan look defective.
    all_scores = np.concatenate([v.scores for v in views])
    cmin, cmax = (float(x) for x in np.percentile(all_scores, [1, 99.5]))
    cmax = max(cmax, cmin + 1e-9)  # constant scores: keep the colour bar valid
    figure = go.Figure()
    for i, view in enumerate(views):
        for trace in _scan_traces(go, view, cmin, cmax, visible=i == 0):
            figure.add_trace(trace)
    figure.update_layout(
        height=600, margin={"l": 0, "r": 0, "t": 90, "b": 0}, template="plotly_white",
        title={"text": _scan_title(views[0]), "font": {"size": 14}, "x": 0.01, "y": 0.98,
               "yref": "container", "yanchor": "top"},
        scene={"aspectmode": "data", "xaxis": {"visible": False}, "yaxis": {"visible": False},
               "zaxis": {"visible": False}, "camera": {"eye": {"x": 1.0, "y": 1.0, "z": 0.8}}},
        legend={"x": 0, "y": 1},
        updatemenus=[_scan_buttons(views)] if len(views) > 1 else [],
    )
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def _scan_traces(go: ModuleType, view: ScanView, cmin: float, cmax: float, visible: bool) -> list:
    points = view.points
    traces = [go.Scatter3d(
        x=points[:, 0], y=points[:, 1], z=points[:, 2], mode="markers", name="point score",
        marker={"size": 1.6, "color": view.scores, "colorscale": "Turbo", "cmin": cmin,
                "cmax": cmax, "colorbar": {"title": {"text": "score"}, "len": 0.7}},
        hovertemplate="score %{marker.color:.4f}<extra></extra>", visible=visible,
    )]
    if view.labels is not None and view.labels.any():
        gt = points[view.labels > 0]
        traces.append(go.Scatter3d(
            x=gt[:, 0], y=gt[:, 1], z=gt[:, 2], mode="markers", name="ground-truth defect",
            marker={"size": 2.2, "color": "magenta"}, hoverinfo="skip",
            visible="legendonly" if visible else False,
        ))
    return traces


def _scan_title(view: ScanView) -> str:
    # plotly renders titles as HTML: escape the scan name, a file name is not markup.
    shown = "" if len(view.points) == view.total_points else f", {len(view.points):,} of {view.total_points:,} points"
    return f"{html.escape(view.name)} — {view.kind}, object score {view.object_score:.4g}{shown}"


def _scan_buttons(views: list[ScanView]) -> dict:
    counts = [1 + int(v.labels is not None and bool(v.labels.any())) for v in views]
    buttons = []
    for i, view in enumerate(views):
        visible: list = []
        for j, count in enumerate(counts):
            visible += [j == i] + (["legendonly" if j == i else False] * (count - 1))
        buttons.append({
            "label": html.escape(f"{view.kind}: {view.name}"), "method": "update",
            "args": [{"visible": visible}, {"title.text": _scan_title(view)}],
        })
    return {"type": "buttons", "direction": "right", "x": 0, "y": 1.0, "xanchor": "left",
            "yanchor": "bottom", "pad": {"t": 0, "b": 4}, "buttons": buttons, "showactive": True}


# ---------------------------------------------------------------------------- html


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


# --------------------------------------------------------------------------- entry


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
    mpl_figure, go = _require_plotting()
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
            from plotly.offline import get_plotlyjs

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

