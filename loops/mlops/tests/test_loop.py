"""The whole loop on real components, one stack for the module (data-pipelines' deployment and
model-monitoring's service from their PEXes, this loop's receiver, a real Alertmanager and
Prometheus): the loop closes by itself; then bad data during a second drift: the gate refuses the
challenger, the champion keeps serving, the alert keeps firing, and a second alert while the run
is in flight starts no second run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from mlops_loop.loop_run import (
    ALERT_FIRED,
    CHAMPION_MOVED,
    GATED,
    ONSET,
    RESOLVED,
    RUN_SUCCEEDED,
    RUN_TRIGGERED,
    SWITCHED,
    Timeline,
    run_loop,
)
from mlops_loop.report import phase_rows
from mlops_loop.settings import LoopSettings
from mlops_loop.stack import LoopStack, loop_stack
from mlops_loop.traffic import accuracy, served_by
from roadmap_lab.housing_model import TAG_SLICE_ID

pytestmark = pytest.mark.slow

START = "2020-11-22"
# Where runtime_package_dependencies puts the projects' PEXes in the test sandbox.
DATA_PIPELINES_PEX = Path("projects.data-pipelines/cli.pex")
MODEL_MONITORING_PEX = Path("projects.model-monitoring/cli.pex")


def week(offset: int) -> str:
    return (date.fromisoformat(START) + timedelta(days=7 * offset)).isoformat()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopStack]:
    # Week 1 drifts (incomes on a reversed scale), and week 3, which the first loop serves a
    # week later; week 2 and the later ones are mislabelled (the second drift's bad data).
    faults = {week(n): "mislabelled" for n in range(2, 8)}
    faults |= {week(1): "inverted", week(3): "inverted"}
    settings = LoopSettings(
        # The receiver's own cooldown (30 production min, 30 s real): shorter, a slow switch on a
        # loaded machine let the still-firing alert start a second run after the first.
        # Two production minutes a week later: too short for an alert on it to fire.
        clock=60, start_week=START, before_minutes=10, after_minutes=3, forward_minutes=2,
        data_pipelines_pex=DATA_PIPELINES_PEX,
        model_monitoring_pex=MODEL_MONITORING_PEX,
    )  # fmt: skip
    with loop_stack(settings, tmp_path_factory.mktemp("loop"), faults) as running:
        yield running


def real_s(timeline: Timeline, event: str) -> float:
    item = timeline.at(event)
    assert item is not None, f"never saw {event}"
    return float(item["real_s"])


def test_a_drift_retrains_gates_and_ships_a_model_and_the_alert_resolves(
    stack: LoopStack, tmp_path: Path
) -> None:
    first = stack.registry.champion()
    assert first is not None and first["tags"][TAG_SLICE_ID] == START
    # A week later, week 3: the week after the drifted one is the second test's bad data.
    outcome = run_loop(stack, tmp_path / "timeline.jsonl", forward_week=week(3))
    timeline = outcome.timeline
    order = [ONSET, ALERT_FIRED, RUN_TRIGGERED, GATED, CHAMPION_MOVED, SWITCHED, RESOLVED]
    times = [real_s(timeline, event) for event in order]
    assert times == sorted(times), timeline.events
    # The gate is the run's last task: the run ends after it.
    assert real_s(timeline, GATED) <= real_s(timeline, RUN_SUCCEEDED)
    gated = timeline.at(GATED)
    assert gated is not None and gated["promoted"] is True and gated["week"] == week(1)
    assert outcome.champion_after is not None
    assert outcome.champion_after["version"] == gated["version"]
    assert outcome.champion_after["tags"][TAG_SLICE_ID] == week(1)
    assert stack.served()["registry"]["version"] == gated["version"]
    assert outcome.closed  # one run, one version promoted, moved and served, no alert again
    [run] = outcome.runs  # one alert group, one run
    assert run.state == "success" and run.conf["trigger"] == "alertmanager"
    phases = {phase: accuracy(rows) for phase, rows in phase_rows(outcome).items()}
    before, during, after = phases["before"], phases["during"], phases["after"]
    assert before is not None and during is not None and after is not None
    assert during.estimate < before.estimate  # the drift hurts
    assert after.estimate > during.estimate + 0.1  # the new champion recovers
    rows = phase_rows(outcome)
    assert {s.week for s in rows["after"]} == {week(1)} and all(s.unseen for s in rows["after"])
    assert {s.week for s in rows["forward"]} == {week(3)}
    assert (tmp_path / "timeline.jsonl").read_text().count("\n") == len(timeline.events)


def test_a_refused_challenger_leaves_the_champion_serving_and_the_alert_firing(
    stack: LoopStack, tmp_path: Path
) -> None:
    champion = stack.registry.champion()
    assert champion is not None
    # The first test's run started the group's cooldown: let it pass, so that this drift's
    # alert triggers a run of its own.
    time.sleep(stack.settings.wall_seconds(stack.settings.cooldown_s))
    decisions: list[dict[str, Any]] = []
    # After the refusal, traffic goes on for 10 production minutes before the checks.
    linger_s = stack.settings.wall_seconds(10 * 60)

    def post_again_while_in_flight(timeline: Timeline) -> bool:
        """Once the run is triggered, the group's notification again, as a second alert of the
        group would bring it while the run is in flight."""
        runs = [r for r in stack.alert_runs() if r.state in ("queued", "running")]
        if timeline.seen(RUN_TRIGGERED) and runs and not decisions:
            decisions.append(notify(stack, runs[0].conf))
        gated = timeline.at(GATED)
        return gated is not None and timeline.seconds_since(gated) >= linger_s

    # The traffic moves to week 2, whose incomes are the right way round again: drift again.
    outcome = run_loop(stack, tmp_path / "timeline.jsonl", stop_when=post_again_while_in_flight,
                       require_closed=False)  # fmt: skip
    timeline = outcome.timeline
    gated = timeline.at(GATED)
    assert gated is not None and gated["promoted"] is False and gated["week"] == week(2)
    assert decisions and decisions[0]["decision"] == "deduplicated"
    # No second run for the notification sent while the first was in flight.
    [run] = [r for r in outcome.runs if r.queued_at is not None]
    assert run.run_id == decisions[0]["run_id"]
    assert stack.finished_run(run.run_id).state == "success"  # refused, not failed
    after = stack.registry.champion()
    assert after is not None and after["version"] == champion["version"]
    # Every row served after the refusal was answered by the champion.
    refused_at = outcome.onset_monotonic + real_s(timeline, GATED)
    later = {s.version for s in outcome.traffic.served if s.at > refused_at}
    assert later == {served_by(str(champion["version"]))}
    assert stack.served()["registry"]["version"] == champion["version"]
    firing = [a for a in stack.retrain_alerts() if a["state"] == "firing"]
    assert firing, "the alert should keep firing while the refused challenger is not served"
    assert not timeline.seen(CHAMPION_MOVED) and not timeline.seen(RESOLVED)


def notify(stack: LoopStack, conf: dict[str, Any]) -> dict[str, Any]:
    """The receiver's decision for another firing notification of the run's alert group."""
    token = (stack.folder / "webhook-token").read_text().strip()
    alerts = [{"status": "firing", "labels": a["labels"], "startsAt": a["starts_at"],
               "fingerprint": a["fingerprint"]} for a in conf["alerts"]]  # fmt: skip
    payload = {"version": "4", "groupKey": conf["group_key"], "status": "firing",
               "groupLabels": conf["group_labels"], "commonLabels": conf["common_labels"],
               "alerts": alerts}  # fmt: skip
    reply = requests.post(f"{stack.receiver_url}/alerts", json=payload,
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip
    reply.raise_for_status()
    decision: dict[str, Any] = reply.json()
    return decision
