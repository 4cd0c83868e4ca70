"""Static figures (matplotlib, imported lazily by the caller): bars per class, ROC curves."""

from __future__ import annotations

import io
import math
from types import ModuleType

import numpy as np

from mvr3d.errors import MVR3DError
from mvr3d.metrics import roc_curve
from mvr3d.visualization.predictions import ClassPredictions
from mvr3d.visualization.runs import Run

__all__ = ["bar_chart_png", "require_plotting", "roc_png"]


_INSTALL_HINT = "the report needs plotly and matplotlib: pip install 'mvr3d[report]'"


_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def require_plotting() -> tuple[ModuleType, ModuleType]:
    try:
        import matplotlib.figure  # local: optional dependency (the 'report' extra)
        import plotly.graph_objects  # local: optional dependency
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
