"""Interactive 3D heatmaps of scored scans (plotly figures as embeddable HTML)."""

from __future__ import annotations

import html
from types import ModuleType

import numpy as np

from mvr3d.visualization.predictions import ClassPredictions, ScanView

__all__ = ["heatmap_div"]


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
