"""Matplotlib figures: confusion matrix, learning curves, comparison bars (headless Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _figure(width: float = 5.0, height: float = 4.0) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    return figure, figure.add_subplot()


def confusion_matrix_figure(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str
) -> Figure:
    figure, axes = _figure()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes)
    axes.set_xticks(range(len(labels)), labels)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            axes.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                color="white" if count > peak / 2 else "black",
            )
    axes.set_title(title)
    figure.tight_layout()
    return figure


def learning_curve_figure(
    history: Sequence[dict], evaluations: Sequence[dict], title: str
) -> Figure:
    """Training loss per logged step and validation loss / macro-F1 per evaluation."""
    figure, loss_axes = _figure(6.5, 4.0)
    if history:
        loss_axes.plot(
            [h["step"] for h in history], [h["loss"] for h in history], label="train loss"
        )
    if evaluations:
        loss_axes.plot(
            [e["step"] for e in evaluations],
            [e["loss"] for e in evaluations],
            "o--",
            label="validation loss",
        )
    loss_axes.set_xlabel("optimizer step")
    loss_axes.set_ylabel("loss")
    f1_axes = loss_axes.twinx()
    if evaluations:
        f1_axes.plot(
            [e["step"] for e in evaluations],
            [e["macro_f1"] for e in evaluations],
            "s-",
            color="tab:green",
            label="validation macro-F1",
        )
    f1_axes.set_ylabel("macro-F1")
    f1_axes.set_ylim(0, 1)
    handles = loss_axes.get_legend_handles_labels()[0] + f1_axes.get_legend_handles_labels()[0]
    names = loss_axes.get_legend_handles_labels()[1] + f1_axes.get_legend_handles_labels()[1]
    loss_axes.legend(handles, names, loc="center right")
    loss_axes.set_title(title)
    figure.tight_layout()
    return figure


def comparison_figure(values: dict[str, dict[str, float]], title: str) -> Figure:
    """Grouped bars: {model: {metric: value}}."""
    figure, axes = _figure(6.0, 4.0)
    models = list(values)
    metrics = list(next(iter(values.values()))) if values else []
    width = 0.8 / max(len(models), 1)
    for index, model in enumerate(models):
        positions = [m + index * width for m in range(len(metrics))]
        bars = axes.bar(
            positions, [values[model][metric] for metric in metrics], width, label=model
        )
        axes.bar_label(bars, fmt="%.3f", fontsize=8)
    axes.set_xticks([m + width * (len(models) - 1) / 2 for m in range(len(metrics))], metrics)
    axes.set_ylim(0, 1.05)
    axes.legend(loc="lower right")
    axes.set_title(title)
    figure.tight_layout()
    return figure


def repeats_figure(
    series: dict[str, list[float]], ylabel: str, title: str, reference: float | None = None
) -> Figure:
    """One line per series over the repeats (in run order); ``reference``: a target line."""
    figure, axes = _figure(6.0, 4.0)
    for name, values in series.items():
        axes.plot(range(1, len(values) + 1), values, "o-", label=name)
    if reference is not None:
        axes.axhline(reference, color="tab:red", linestyle="--", label=f"target {reference:g}")
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("repeat")
    axes.set_ylabel(ylabel)
    axes.legend(loc="best")
    axes.set_title(title)
    figure.tight_layout()
    return figure
