"""The loop's figures (the demo's and the benchmark's) and its timeline plot.

Times: production minutes, with the real seconds, the clock and the traffic rate beside them.
Accuracy: on distinct rows (a row served again by the same model adds no evidence), each phase
read on rows the serving model never trained on: before the drift, the champion on its window's
held-out rows; during it, the champion on the drifted week (a week it never saw); after the
switch, the new champion on the drifted week's held-out rows (the week it trained on, without
its training rows); a week later, the new champion on the next week (no model saw it). "Before"
and "after" are both a model on its own week's held-out rows, on different weeks: their
difference also carries how much easier one week is than the other. Repeats pool their rows;
each repeat's own difference is kept beside the pooled one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from roadmap_lab.results import Headline, headline_figure
from roadmap_lab.stats import Interval, bootstrap_weights, t_interval

from mlops_loop.loop_run import (
    ALERT_FIRED,
    FIRED_AGAIN,
    ONSET,
    RESOLVED,
    SWITCHED,
    WEEK_LATER,
    LoopOutcome,
)
from mlops_loop.settings import LoopSettings
from mlops_loop.traffic import Served, accuracy, served_by

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CLOSED_FIGURE = "repeats in which the loop closed without a human step (share)"
MIN_REPEATS = 3  # issue 26: the loop closes in every run of >= 3 repeats
RECOVERY_FIGURE = "accuracy after the switch minus before the drift"
ALERTED_AGAIN_FIGURE = "repeats in which the monitor alerted again a week later (share)"
# (figure name, first event, last event)
SPANS = (
    ("drift onset to alert fired", ONSET, ALERT_FIRED),
    ("alert fired to the new champion serving", ALERT_FIRED, SWITCHED),
    ("time to recovery: drift onset to alert resolved", ONSET, RESOLVED),
)
ACCURACY_FIGURES = {
    "before": "before the drift (champion, its held-out rows)",
    "during": "during the drift (champion, the drifted week)",
    "after": "after the switch (new champion, its held-out rows)",
    "forward": "a week later (new champion, the next week, which no model trained on)",
}


def phase_rows(outcome: LoopOutcome) -> dict[str, list[Served]]:
    """The predictions each accuracy figure reads."""
    old = served_by(str(outcome.champion_before["version"]))
    new = (
        served_by(str(outcome.champion_after["version"]))
        if outcome.champion_after is not None
        else None
    )
    served = outcome.traffic.served
    return {
        "before": [s for s in served if s.phase == "before" and s.version == old and s.unseen],
        "during": [s for s in served if s.phase == "drift" and s.version == old],
        "after": [s for s in served if s.phase == "after" and new not in (None, old)
                  and s.version == new and s.unseen],
        "forward": [s for s in served if s.phase == "forward" and new not in (None, old)
                    and s.version == new],
    }  # fmt: skip


def _outcomes(rows: Sequence[Served]) -> np.ndarray:
    distinct = {(s.week, s.row_id, s.version): s.predicted == s.label for s in rows}
    return np.array(list(distinct.values()), dtype=float)


def difference(repeats: Sequence[tuple[Sequence[Served], Sequence[Served]]]) -> Interval | None:
    """Pooled after - before accuracy over repeats (each a pair of before and after rows), with a
    percentile bootstrap stratified by repeat and phase: each keeps its size, its distinct rows
    are resampled within it. The interval covers the rows drawn within these weeks, not the
    choice of weeks (each repeat's own difference is reported beside it)."""
    strata = [(_outcomes(rows), phase) for pair in repeats for phase, rows in enumerate(pair)]
    strata = [(values, phase) for values, phase in strata if values.size]
    if {phase for _, phase in strata} != {0, 1}:
        return None
    values = np.concatenate([v for v, _ in strata])
    in_after = np.concatenate([np.full(v.size, float(phase)) for v, phase in strata])
    weights = np.hstack([bootstrap_weights(v.size, seed=k) for k, (v, _) in enumerate(strata)])

    def statistic(w: np.ndarray) -> np.ndarray:
        after_w, before_w = w * in_after, w * (1 - in_after)
        return (after_w @ values) / after_w.sum(axis=1) - (before_w @ values) / before_w.sum(axis=1)

    estimate = float(statistic(np.ones((1, values.size)))[0])
    low, high = np.quantile(statistic(weights), [0.025, 0.975])
    return Interval(estimate, float(low), float(high), 0.95,
                    "bootstrap (rows, within each repeat and phase)", int(values.size))  # fmt: skip


def headline(
    outcomes: Sequence[LoopOutcome], settings: LoopSettings, failed: int = 0
) -> list[Headline]:
    """The figures of ``outcomes`` and of ``failed`` repeats that ended in an error (each counts
    as a loop that did not close)."""
    per_repeat = [phase_rows(outcome) for outcome in outcomes]
    return [
        *span_figures(outcomes, settings),
        *accuracy_figures(per_repeat),
        closed_figure(sum(o.closed for o in outcomes), len(outcomes) + failed),
        recovery_figure(per_repeat, failed),
        alerted_again_figure(outcomes),
    ]


def span_figures(outcomes: Sequence[LoopOutcome], settings: LoopSettings) -> list[Headline]:
    conditions: dict[str, Any] = {
        "clock": settings.clock,
        "rows_per_second_production": settings.rows_per_second,
        "note": "production time: real seconds x clock, except the Airflow run (tasks, "
        "training, registering, the gate), which runs at real speed and counts once; the "
        "retrain reads the drifted week's labels at once (production would wait for them)",
    }
    figures = []
    for name, first, last in SPANS:
        production = [o.span_s(first, last, production=True) for o in outcomes]
        real = [o.span_s(first, last, production=False) for o in outcomes]
        measured = [p / 60 for p in production if p is not None]
        interval = t_interval(measured) if len(measured) > 1 else None
        value = round(measured[0], 2) if len(measured) == 1 else None
        figures.append(headline_figure(
            f"{name} (production time)", value, "min", interval=interval, digits=2,
            repeats_min=[None if p is None else round(p / 60, 2) for p in production],
            repeats_real_s=[None if r is None else round(r, 1) for r in real],
            repeats_not_reached=production.count(None), **conditions,
        ))  # fmt: skip
    return figures


def accuracy_figures(per_repeat: Sequence[dict[str, list[Served]]]) -> list[Headline]:
    return [
        headline_figure(
            f"accuracy on labelled traffic {label}", None, "accuracy", digits=3,
            interval=accuracy([row for rows in per_repeat for row in rows[phase]]),
        )
        for phase, label in ACCURACY_FIGURES.items()
    ]  # fmt: skip


def closed_figure(closed: int, repeats: int) -> Headline:
    """The target is about the repeats themselves ("every run of >= 3 repeats"): every repeat
    is counted, no sampling; fewer than MIN_REPEATS (a demo's one run) cannot meet it."""
    share = closed / repeats
    observed = Interval(share, share, share, 1.0, "observed (every repeat counted)", repeats)
    return headline_figure(
        CLOSED_FIGURE, share if repeats < MIN_REPEATS else None, "share", target=">= 1",
        digits=3, interval=observed if repeats >= MIN_REPEATS or closed < repeats else None,
        repeats=repeats, closed=closed,
    )  # fmt: skip


def recovery_figure(per_repeat: Sequence[dict[str, list[Served]]], failed: int) -> Headline:
    """after - before per repeat; the verdict's interval is a t interval over the repeats (the
    choice of weeks varies the figure more than the rows within a week), given only when at
    least MIN_REPEATS repeats have both phases and none failed; the rows' interval within these
    weeks is kept beside it."""
    pairs = [(rows["before"], rows["after"]) for rows in per_repeat]
    each = [difference([pair]) for pair in pairs]
    complete = [d.estimate for d in each if d is not None]
    verified = failed == 0 and len(complete) == len(each) >= MIN_REPEATS
    pooled = difference(pairs)
    befores = accuracy([row for rows in per_repeat for row in rows["before"]])
    return headline_figure(
        RECOVERY_FIGURE, None if verified else _estimate(pooled), "accuracy", target="> -0.02",
        digits=3, interval=t_interval(complete) if verified else None,
        baseline=None if befores is None else round(befores.estimate, 3),
        baseline_unit="accuracy before the drift",
        repeats=[_rounded(d) for d in each], within_these_weeks=_rounded(pooled),
        repeats_without_both_phases=len(each) - len(complete) + failed,
    )  # fmt: skip


def alerted_again_figure(outcomes: Sequence[LoopOutcome]) -> Headline:
    """Whether the new champion's monitor alerted on the week after (another region)."""
    forward = [o for o in outcomes if o.timeline.seen(WEEK_LATER)]
    again = [o for o in forward if _after(o, WEEK_LATER, FIRED_AGAIN)]
    return headline_figure(
        ALERTED_AGAIN_FIGURE, round(len(again) / len(forward), 3) if forward else None, "share",
        repeats=len(forward), alerted=len(again),
    )  # fmt: skip


def _after(outcome: LoopOutcome, first: str, then: str) -> bool:
    a, b = outcome.timeline.at(first), outcome.timeline.at(then)
    return a is not None and b is not None and b["real_s"] >= a["real_s"]


def _estimate(interval: Interval | None) -> float | None:
    return None if interval is None else round(interval.estimate, 3)


def _rounded(interval: Interval | None) -> list[float] | None:
    """[estimate, low, high] to 3 digits (a repeat's own figure beside the pooled one)."""
    if interval is None:
        return None
    return [round(interval.estimate, 3), round(interval.low, 3), round(interval.high, 3)]


def loop_record(outcome: LoopOutcome) -> dict[str, Any]:
    """What results.json keeps of one repeat."""
    return {
        "closed": outcome.closed,
        "drift_week": outcome.drift_week,
        "champion_before": outcome.champion_before["version"],
        "champion_after": None if outcome.champion_after is None
        else outcome.champion_after["version"],
        "timeline": outcome.timeline.events,
        "runs": [{"run_id": r.run_id, "state": r.state} for r in outcome.runs],
        "traffic_rows": len(outcome.traffic.served),
        "traffic_failures": outcome.traffic.failures,
    }  # fmt: skip


def timeline_figure(outcome: LoopOutcome, settings: LoopSettings) -> Figure:
    """Accuracy of the labelled traffic over time (per real second, by the version that
    answered) with every step of the loop marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.6))
    by_version: dict[str, dict[int, list[bool]]] = {}
    for s in outcome.traffic.served:
        if not s.unseen:  # training rows would flatter the curve
            continue
        second = int(s.at - outcome.onset_monotonic)
        by_version.setdefault(s.version, {}).setdefault(second, []).append(s.predicted == s.label)
    for version, seconds in sorted(by_version.items()):
        xs = sorted(seconds)
        ax.plot(xs, [np.mean(seconds[x]) for x in xs], marker=".", linewidth=1, label=version)
    for index, event in enumerate(outcome.timeline.events):
        x = event["real_s"]
        ax.axvline(x, color="grey", linewidth=0.7, linestyle="--")
        label = f"{event['event']} ({abs(event['production_s']) / 60:.1f} min)"
        # Staggered: steps seconds apart would print over each other.
        ax.annotate(label, (x, 0.02 + 0.16 * (index % 3)), rotation=90, fontsize=7,
                    xytext=(2, 0), textcoords="offset points", va="bottom")  # fmt: skip
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(
        f"real seconds since the drift onset (clock x{settings.clock:g}: one second is "
        f"{settings.clock / 60:g} production minute(s), except during the Airflow run); "
        "in brackets: production minutes"
    )
    ax.set_ylabel("accuracy per second (rows the model never trained on)")
    ax.set_title(
        f"MLOps loop: drift on week {outcome.drift_week}, "
        f"{settings.rows_per_second:g} production rows/s", fontsize=10,
    )  # fmt: skip
    ax.legend(title="served model", fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
