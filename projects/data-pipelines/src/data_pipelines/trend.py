"""The metric trend report as an HTML page: one plot (forward accuracy and ROC AUC of each week's
model on the week after its window, beside its in-window accuracy and the majority-class
baseline) and the table of every published model. One self-contained file: the plot is an
embedded PNG. The same report gives the same bytes (no timestamps in the page or the PNG)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

COLUMNS = ("week", "version", "window", "in-window accuracy", "forward: model of",
           "forward accuracy", "forward ROC AUC", "forward baseline")  # fmt: skip


def _figure_png(models: list[dict[str, Any]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weeks = range(len(models))  # numbers, labelled with the weeks below
    forward = [m["forward"] or {} for m in models]

    def series(values: list[Any]) -> list[float]:
        return [float("nan") if v is None else float(v) for v in values]  # gaps, not zeros

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(weeks, series([f.get("accuracy") for f in forward]), "o-", label="forward accuracy")
    ax.plot(weeks, series([f.get("roc_auc") for f in forward]), "s-", label="forward ROC AUC")
    ax.plot(weeks, series([m["in_window"]["accuracy"] for m in models]), "^--",
            label="in-window accuracy (held-out rows)")  # fmt: skip
    ax.plot(weeks, series([f.get("baseline_accuracy") for f in forward]), ":", color="grey",
            label="forward baseline (majority class)")  # fmt: skip
    ax.set_ylim(0, 1)
    ax.set_xlabel("week the model is scored on (forward: the model of the week before)")
    ax.set_title("housing model: each week's model scored on the next week's slice")
    ax.set_xticks(weeks, [m["slice_id"] for m in models], rotation=45, fontsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def trend_page(report: dict[str, Any]) -> str:
    """The page for a report as model_report writes it (``slice_id``, ``models``)."""
    models = report["models"]
    rows = []
    for m in models:
        forward = m["forward"] or {}
        cells = [m["slice_id"], m["version"], f"{m['window'][0]} .. {m['window'][-1]}",
                 m["in_window"]["accuracy"], forward.get("model"), forward.get("accuracy"),
                 forward.get("roc_auc"), forward.get("baseline_accuracy")]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>")
    plot = ""
    if models:
        encoded = base64.b64encode(_figure_png(models)).decode()
        plot = f'<img alt="metric trend" src="data:image/png;base64,{encoded}">'
    title = f"housing model trend up to {html.escape(report['slice_id'])}"
    header = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
        "text-align:right}</style></head><body>\n"
        f"<h1>{title}</h1>\n<p>Forward: the model published for the week before, scored on "
        "this week's slice, which it never saw. In-window: the week's own model on the held-out "
        f"rows of its training window.</p>\n{plot}\n"
        f"<table><tr>{header}</tr>\n" + "\n".join(rows) + "\n</table>\n</body></html>\n"
    )
