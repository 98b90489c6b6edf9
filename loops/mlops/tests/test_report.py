"""The loop's figures from recorded outcomes: production time (scaled parts times the clock, the
Airflow run once), accuracy per phase on the rows each model never trained on, the targeted
figures as benchmarks/targets.toml names them, verdicts by the shared rule."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mlops_loop.loop_run import (
    ALERT_FIRED,
    CLOSED,
    ONSET,
    RESOLVED,
    RUN_SUCCEEDED,
    RUN_TRIGGERED,
    SWITCHED,
    LoopOutcome,
    Timeline,
)
from mlops_loop.report import (
    CLOSED_FIGURE,
    RECOVERY_FIGURE,
    headline,
    phase_rows,
    timeline_figure,
)
from mlops_loop.settings import LoopSettings
from mlops_loop.traffic import Served, Traffic, accuracy

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
TARGETS = Path(__file__).resolve().parents[1] / "benchmarks" / "targets.toml"


def test_production_time_scales_all_but_the_airflow_run(tmp_path: Path) -> None:
    timeline = Timeline(tmp_path / "timeline.jsonl", clock=60)
    timeline.record(ONSET, T0)
    timeline.record(ALERT_FIRED, T0 + timedelta(seconds=10))
    assert timeline.at(ALERT_FIRED) == {**timeline.events[1], "real_s": 10.0,
                                        "production_s": 600.0}  # fmt: skip
    timeline.real_speed.append((T0 + timedelta(seconds=11), T0 + timedelta(seconds=31)))
    timeline.record(SWITCHED, T0 + timedelta(seconds=32))
    # 12 s on the clock (x60) and 20 s of the Airflow run (x1).
    assert timeline.at(SWITCHED)["production_s"] == 12 * 60 + 20  # type: ignore[index]
    assert len((tmp_path / "timeline.jsonl").read_text().splitlines()) == 3


def served(
    phase: str, version: str, rows: range, right: int, week: str = "w", unseen: bool = True
) -> list[Served]:
    """Rows ``rows`` served by ``version``; the first ``right`` of them answered correctly; each
    row twice (a repeat adds no evidence)."""
    items = [Served(0.0, phase, week, i, unseen, f"housing-classifier/{version}",
                    int(n < right), 1) for n, i in enumerate(rows)]  # fmt: skip
    return items + items


def outcome(tmp_path: Path, closed: bool = True, after_right: int = 89) -> LoopOutcome:
    timeline = Timeline(tmp_path / "t.jsonl", clock=60)
    for second, event in enumerate((ONSET, *CLOSED)):
        timeline.record(event, T0 + timedelta(seconds=second))
    traffic = Traffic("http://127.0.0.1:9", "key", 1.0)
    traffic.served = (
        served("before", "1", range(0, 500, 5), right=90)  # held-out rows: ids 0, 5, ...
        + served("before", "1", range(1, 500, 5), right=0, unseen=False)  # training rows
        + served("drift", "1", range(0, 200), right=120, week="d")
        # Served by the new champion before the traffic moved on: not read.
        + served("drift", "2", range(0, 50), right=50, week="d")
        + served("after", "2", range(0, 500, 5), right=after_right, week="d")
        + served("after", "2", range(1, 500, 5), right=100, week="d", unseen=False)
        + served("forward", "2", range(0, 50), right=35, week="f")
    )
    return LoopOutcome(
        timeline=timeline, traffic=traffic, champion_before={"version": "1"},
        champion_after={"version": "2"}, drift_week="d", forward_week="f", onset_monotonic=0.0,
        closed=closed, runs=[],
    )  # fmt: skip


def test_accuracy_is_read_on_distinct_rows_the_model_never_trained_on(tmp_path: Path) -> None:
    phases = phase_rows(outcome(tmp_path))
    before, during, after, forward = (
        accuracy(phases[p]) for p in ("before", "during", "after", "forward")
    )
    assert before is not None and (before.estimate, before.n) == (0.9, 100)
    assert during is not None and (during.estimate, during.n) == (0.6, 200)
    assert after is not None and (after.estimate, after.n) == (0.89, 100)
    assert forward is not None and (forward.estimate, forward.n) == (0.7, 50)


def test_the_headline_carries_the_targeted_figures_with_verdicts(tmp_path: Path) -> None:
    settings = LoopSettings(clock=60)
    figures = {f["name"]: f for f in headline([outcome(tmp_path), outcome(tmp_path)], settings)}
    targets = tomllib.loads(TARGETS.read_text())["figure"]
    for target in targets:
        assert figures[target["name"]]["target"] == target["target"]
    # Two repeats cannot meet "every run of >= 3 repeats", nor verify the recovery.
    closed = figures[CLOSED_FIGURE]
    assert closed["value"] == 1 and closed["verdict"] == "unverified"
    recovery = figures[RECOVERY_FIGURE]
    assert recovery["value"] == -0.01 and recovery["verdict"] == "unverified"
    # Each repeat's own difference beside the pooled one, whose interval is narrower.
    [(one, low, high), second] = recovery["repeats"]
    assert one == -0.01 and second == [one, low, high]
    pooled = recovery["within_these_weeks"]
    assert pooled[0] == -0.01 and high - low > pooled[2] - pooled[1]
    onset_to_alert = figures["drift onset to alert fired (production time)"]
    assert onset_to_alert["value"] == 1.0  # 1 real second at x60: 1 production minute
    assert onset_to_alert["repeats_real_s"] == [1.0, 1.0]
    recovery_time = figures["time to recovery: drift onset to alert resolved (production time)"]
    assert recovery_time["value"] == (CLOSED.index(RESOLVED) + 1) * 1.0
    assert RUN_TRIGGERED in CLOSED and RUN_SUCCEEDED in CLOSED


def test_three_repeats_give_verdicts_from_the_spread_between_repeats(tmp_path: Path) -> None:
    repeats = [outcome(tmp_path, after_right=right) for right in (89, 95, 80)]
    figures = {f["name"]: f for f in headline(repeats, LoopSettings(clock=60))}
    assert figures[CLOSED_FIGURE]["value"] == 1 and figures[CLOSED_FIGURE]["verdict"] == "met"
    recovery = figures[RECOVERY_FIGURE]
    # -0.01, +0.05, -0.10: a t interval over the three differences, wider than the rows'.
    assert [r[0] for r in recovery["repeats"]] == [-0.01, 0.05, -0.1]
    assert round(recovery["value"], 3) == -0.02 and recovery["verdict"] == "within noise"
    low, high = recovery["interval"]["low"], recovery["interval"]["high"]
    assert high - low > recovery["within_these_weeks"][2] - recovery["within_these_weeks"][1]


def test_a_repeat_that_did_not_close_or_failed_misses_the_target(tmp_path: Path) -> None:
    figures = {f["name"]: f for f in headline(
        [outcome(tmp_path), outcome(tmp_path, closed=False)], LoopSettings(clock=60))}  # fmt: skip
    assert figures[CLOSED_FIGURE]["value"] == 0.5
    assert figures[CLOSED_FIGURE]["verdict"] == "missed"
    three_and_a_failure = {f["name"]: f for f in headline(
        [outcome(tmp_path)] * 3, LoopSettings(clock=60), failed=1)}  # fmt: skip
    assert three_and_a_failure[CLOSED_FIGURE]["verdict"] == "missed"
    # A failed repeat has no rows: the recovery cannot be verified without it.
    assert three_and_a_failure[RECOVERY_FIGURE]["verdict"] == "unverified"
    assert three_and_a_failure[RECOVERY_FIGURE]["repeats_without_both_phases"] == 1


def test_the_timeline_plot_marks_every_step(tmp_path: Path) -> None:
    figure = timeline_figure(outcome(tmp_path), LoopSettings(clock=60))
    labels = [text.get_text() for text in figure.axes[0].texts]
    assert len(labels) == 1 + len(CLOSED) and labels[0].startswith(ONSET)
