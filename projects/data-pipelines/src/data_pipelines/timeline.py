"""The run-timeline plot: one row per (logical date, task), one bar per attempt, coloured by the
state Airflow recorded, placed at its start and as long as it ran."""

from __future__ import annotations

from typing import TYPE_CHECKING

from data_pipelines.names import PIPELINE_TASKS
from data_pipelines.runner import RunOutcome

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STATE_COLOURS = {
    "success": "#2e7d32",
    "failed": "#c62828",  # a try that failed: retried later, or the final one
    "upstream_failed": "#9e9e9e",  # never ran: an upstream task failed
}


def timeline_figure(outcomes: list[RunOutcome], title: str) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    attempts = [a for o in outcomes for a in o.attempts if a.start is not None]
    if not attempts:
        raise ValueError("no task attempts to plot")
    origin = min(a.start for a in attempts if a.start is not None)
    # One block per logical date (in run order), its tasks in pipeline order.
    rank = {task: index for index, task in enumerate(PIPELINE_TASKS)}
    rows: list[str] = []
    for outcome in outcomes:
        tasks = sorted({a.task_id for a in outcome.attempts}, key=lambda t: (rank.get(t, 99), t))
        rows += [f"{outcome.logical_date[:10]} {t}" for t in tasks]
    rows = list(dict.fromkeys(rows))
    fig, ax = plt.subplots(figsize=(11, 0.28 * len(rows) + 1.6))
    for outcome in outcomes:
        for attempt in outcome.attempts:
            if attempt.start is None:
                continue
            end = attempt.end or attempt.start
            y = rows.index(f"{outcome.logical_date[:10]} {attempt.task_id}")
            left = (attempt.start - origin).total_seconds()
            width = max((end - attempt.start).total_seconds(), 0.15)  # visible when instant
            colour = STATE_COLOURS.get(attempt.state, "#1565c0")
            ax.barh(y, width, left=left, color=colour, edgecolor="black", linewidth=0.4)
            if attempt.try_number > 1 or attempt.state == "failed":
                ax.annotate(
                    f"try {attempt.try_number}",
                    (left + width, y),
                    xytext=(2, -3),
                    textcoords="offset points",
                    fontsize=7,
                )
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first task started")
    ax.set_title(title, fontsize=10)
    ax.legend(
        handles=[Patch(color=c, label=s) for s, c in STATE_COLOURS.items()],
        loc="lower right",
        fontsize=7,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
