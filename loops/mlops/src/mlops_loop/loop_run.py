"""One run of the loop on a running stack, every step observed from the outside and recorded in
one timeline (JSON lines):

1. before: traffic from the champion's own window (the rows of the weeks it trained on; its
   accuracy is read on the held-out ones) for ``before_minutes`` of production time;
2. drift onset: the traffic moves to the next week of the source, which serves it shifted;
3. then, as each is first seen: the retrain alert fired (Prometheus), the DAG run triggered and
   its end (Airflow), the challenger gated (its version's gate tags in MLflow), ``@champion``
   moved (MLflow), the service switched (its /model), the alert resolved (Prometheus);
4. after: once the service switched, the drifted week's traffic goes on, now served by the new
   champion, which trained on it (its accuracy is read on the held-out rows), until the alert
   resolved and ``after_minutes`` more, watched: an alert firing again there means the loop did
   not close;
5. a week later: ``forward_minutes`` of the week after the drifted one (shifted too; no model
   trained on it), watched: whether the monitor alerts again on the next week is recorded.

The loop closed when every step was seen, the promoted, ``@champion`` and served versions are one
version, one run did it, and no retrain alert fired again during the after phase.

The retrain reads the drifted week as soon as the alert fires: the source serves every week,
labels included, at once, where production would wait for the week to end and its labels to
arrive. The times measure the system's reaction, not that wait.

Times are real seconds since the onset, and production seconds: the clock runs the service's
drift job, Prometheus and Alertmanager ``clock`` times faster, so a real second there is
``clock`` production seconds; the Airflow run (tasks, training, registering, the gate) runs at
real speed, so its real seconds count once. Both are written for every event.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from roadmap_lab.housing_model import TAG_SLICE_ID, TAG_WINDOW_SLICES
from roadmap_lab.results import atomic_write_text

from mlops_loop.airflow_rest import DagRun
from mlops_loop.errors import MlopsLoopError
from mlops_loop.stack import LoopStack
from mlops_loop.traffic import Row, Traffic, fetch_week, served_by

logger = logging.getLogger(__name__)

ONSET = "drift onset"
ALERT_FIRED = "alert fired"
RUN_TRIGGERED = "DAG run triggered"
RUN_SUCCEEDED = "run succeeded"
RUN_FAILED = "run failed"
GATED = "challenger gated"
CHAMPION_MOVED = "@champion moved"
SWITCHED = "service switched"
RESOLVED = "alert resolved"
FIRED_AGAIN = "alert fired again"
WEEK_LATER = "traffic a week later"
CLOSED = (ALERT_FIRED, RUN_TRIGGERED, RUN_SUCCEEDED, GATED, CHAMPION_MOVED, SWITCHED, RESOLVED)
POLL_S = 0.2


@dataclass
class Timeline:
    """Events in the order they were seen, each with its real UTC time, real seconds since the
    onset and production seconds since the onset; appended to ``path`` as JSON lines."""

    path: Path
    clock: float
    onset: datetime | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    # Spans of real time (UTC) that ran at real speed: Airflow runs.
    real_speed: list[tuple[datetime, datetime]] = field(default_factory=list)

    def seen(self, event: str) -> bool:
        return any(e["event"] == event for e in self.events)

    def at(self, event: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e["event"] == event), None)

    def seconds_since(self, event: dict[str, Any]) -> float:
        """Real seconds from a recorded event to now."""
        return (datetime.now(UTC) - datetime.fromisoformat(event["utc"])).total_seconds()

    def record(self, event: str, when: datetime | None = None, **details: Any) -> None:
        when = when or datetime.now(UTC)
        if event == ONSET:
            self.onset = when
        item = {"event": event, "utc": when.isoformat(timespec="milliseconds"), **details}
        if self.onset is not None:
            real = (when - self.onset).total_seconds()
            item["real_s"] = round(real, 3)
            item["production_s"] = round(self.production_seconds(when), 1)
        self.events.append(item)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(item) + "\n")
        logger.info("timeline: %s %s", event, {k: v for k, v in item.items() if k != "event"})

    def production_seconds(self, when: datetime) -> float:
        """Production seconds from the onset to ``when``: real seconds times the clock, except
        inside the real-speed spans, which count once."""
        assert self.onset is not None
        real = (when - self.onset).total_seconds()
        unscaled = sum(
            max(0.0, (min(end, when) - max(start, self.onset)).total_seconds())
            for start, end in self.real_speed
        )
        return (real - unscaled) * self.clock + unscaled

    def rewrite(self) -> None:
        """Write the file again (production times change once a run's end is known)."""
        for item in self.events:
            when = datetime.fromisoformat(item["utc"])
            if self.onset is not None:
                item["production_s"] = round(self.production_seconds(when), 1)
        atomic_write_text(self.path, "".join(json.dumps(e) + "\n" for e in self.events))


@dataclass
class LoopOutcome:
    timeline: Timeline
    traffic: Traffic
    champion_before: dict[str, Any]
    champion_after: dict[str, Any] | None
    drift_week: str
    forward_week: str
    onset_monotonic: float
    closed: bool
    runs: list[DagRun]

    def span_s(self, first: str, last: str, production: bool) -> float | None:
        a, b = self.timeline.at(first), self.timeline.at(last)
        if a is None or b is None:
            return None
        key = "production_s" if production else "real_s"
        return float(b[key]) - float(a[key])


def next_week(week: str) -> str:
    return (date.fromisoformat(week) + timedelta(days=7)).isoformat()


def window_rows(stack: LoopStack, version: dict[str, Any]) -> list[Row]:
    """The rows of the weeks a registered version trained on (its window tag), as the source
    serves them."""
    weeks = version["tags"][TAG_WINDOW_SLICES].split(",")
    return [row for week in weeks for row in fetch_week(stack.source_url, week, trained_on=True)]


def run_loop(
    stack: LoopStack,
    timeline_path: Path,
    stop_when: Callable[[Timeline], bool] | None = None,
    require_closed: bool = True,
    forward_week: str | None = None,
) -> LoopOutcome:
    """Drift the traffic and watch the loop close (or ``stop_when`` says enough); the outcome.
    With ``require_closed``, MlopsLoopError when the loop did not close within
    ``loop_timeout_s``. ``forward_week``: the week served last (default: the one after the
    drifted week)."""
    settings = stack.settings
    champion = stack.registry.champion()
    if champion is None:
        raise MlopsLoopError("no @champion to start the loop from")
    old = served_by(str(champion["version"]))
    drift_week = next_week(champion["tags"][TAG_SLICE_ID])
    forward_week = forward_week or next_week(drift_week)
    before_rows, drift_rows = window_rows(stack, champion), fetch_week(stack.source_url, drift_week)
    # The same week once the new champion serves it: only its held-out rows are unseen.
    after_rows = fetch_week(stack.source_url, drift_week, trained_on=True)
    forward_rows = fetch_week(stack.source_url, forward_week)
    timeline_path.parent.mkdir(parents=True, exist_ok=True)
    timeline_path.unlink(missing_ok=True)
    timeline = Timeline(timeline_path, settings.clock)
    known_runs = {run.run_id for run in stack.alert_runs()}
    real_rate = settings.rows_per_second * settings.clock
    with Traffic(stack.service_url, stack.labels_api_key, real_rate) as traffic:
        traffic.use("before", before_rows, old)
        time.sleep(settings.wall_seconds(settings.before_minutes * 60))
        if stack.retrain_alerts():
            raise MlopsLoopError(
                "a retrain alert is active before the drift: the champion's own traffic should "
                "raise none (see Prometheus' alerts)"
            )
        traffic.use("drift", drift_rows, old)
        onset = time.monotonic()
        timeline.record(ONSET, week=drift_week, champion=champion["version"])
        watcher = Watcher(stack, timeline, champion, known_runs)
        deadline = onset + settings.loop_timeout_s
        done = stop_when or (lambda t: all(t.seen(event) for event in CLOSED))
        while not done(timeline) and time.monotonic() < deadline:
            watcher.poll()
            switched = timeline.at(SWITCHED)
            if switched is not None and traffic.phase != "after":
                traffic.use("after", after_rows, served_by(switched["version"]))
            time.sleep(POLL_S)
        reached = all(timeline.seen(event) for event in CLOSED)
        stayed_resolved = False
        if reached:
            watcher.watch(settings.wall_seconds(settings.after_minutes * 60))
            stayed_resolved = not timeline.seen(FIRED_AGAIN)
            if settings.forward_minutes:
                traffic.use("forward", forward_rows, traffic.version)
                timeline.record(WEEK_LATER, week=forward_week)
                watcher.watch(settings.wall_seconds(settings.forward_minutes * 60))
    timeline.rewrite()
    runs = [run for run in stack.alert_runs() if run.run_id not in known_runs]
    closed = reached and stayed_resolved and one_version_by_one_run(timeline, runs)
    if require_closed and not closed:
        missing = [event for event in CLOSED if not timeline.seen(event)]
        raise MlopsLoopError(
            f"the loop did not close within {settings.loop_timeout_s:g} s: "
            + (f"never saw {', '.join(missing)}" if missing else "an alert fired again, or "
               "the promoted, @champion and served versions differ, or several runs")
            + f" (timeline: {timeline_path})"
        )  # fmt: skip
    return LoopOutcome(
        timeline=timeline,
        traffic=traffic,
        champion_before=champion,
        champion_after=stack.registry.champion(),
        drift_week=drift_week,
        forward_week=forward_week,
        onset_monotonic=onset,
        closed=closed,
        runs=runs,
    )


def one_version_by_one_run(timeline: Timeline, runs: list[DagRun]) -> bool:
    """One run, and the version it promoted is the one ``@champion`` moved to and the service
    switched to."""
    promoted = [e["version"] for e in timeline.events if e["event"] == GATED and e["promoted"]]
    moved, switched = timeline.at(CHAMPION_MOVED), timeline.at(SWITCHED)
    if len(runs) != 1 or len(promoted) != 1 or moved is None or switched is None:
        return False
    return promoted[0] == moved["version"] == switched["version"]


class Watcher:
    """Looks at each part once per poll and records what changed since the onset."""

    def __init__(
        self, stack: LoopStack, timeline: Timeline, champion: dict[str, Any], known: set[str]
    ) -> None:
        self.stack = stack
        self.timeline = timeline
        self.champion = str(champion["version"])
        self.known_runs = set(known)
        self.runs_seen: dict[str, str] = {}
        self.gated: set[str] = set()

    def poll(self) -> None:
        self._alerts()
        self._runs()
        self._registry()
        self._service()

    def watch(self, seconds: float) -> None:
        """Poll for ``seconds`` (real)."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.poll()
            time.sleep(POLL_S)

    def _alerts(self) -> None:
        active = self.stack.retrain_alerts()
        firing = [a["labels"] for a in active if a["state"] == "firing"]
        # Which alerts, and for the drift alert which features' PSI crossed the line.
        details: dict[str, Any] = {
            "alerts": sorted({labels["alertname"] for labels in firing}),
            "features": sorted({labels["feature"] for labels in firing if "feature" in labels}),
        }
        if firing and not self.timeline.seen(ALERT_FIRED):
            self.timeline.record(ALERT_FIRED, **details)
        elif self.timeline.seen(SWITCHED) and not active and not self.timeline.seen(RESOLVED):
            # Recovery: no retrain alert pending or firing once the new champion serves.
            self.timeline.record(RESOLVED)
        elif firing and self.timeline.seen(RESOLVED) and not self.timeline.seen(FIRED_AGAIN):
            self.timeline.record(FIRED_AGAIN, **details)

    def _runs(self) -> None:
        for run in self.stack.alert_runs():
            if run.run_id in self.known_runs:
                continue
            state = self.runs_seen.get(run.run_id)
            if state is None:
                self.timeline.record(RUN_TRIGGERED, run.queued_at, run_id=run.run_id)
                self.runs_seen[run.run_id] = run.state
            if run.state in ("success", "failed") and state not in ("success", "failed"):
                event = RUN_SUCCEEDED if run.state == "success" else RUN_FAILED
                self.timeline.record(event, run.end_date, run_id=run.run_id)
                if run.queued_at is not None and run.end_date is not None:
                    self.timeline.real_speed.append((run.queued_at, run.end_date))
                self.runs_seen[run.run_id] = run.state

    def _registry(self) -> None:
        for version in self.stack.registry.versions():
            number, tags = str(version["version"]), version["tags"]
            if int(number) <= int(self.champion) or number in self.gated:
                continue
            # data-pipelines writes gate.promoted, gate.reason, then gate.champion: all there.
            if "gate.champion" in tags:
                self.gated.add(number)
                self.timeline.record(
                    GATED, version=number, week=tags.get(TAG_SLICE_ID),
                    promoted=tags["gate.promoted"] == "true", reason=tags.get("gate.reason"),
                )  # fmt: skip
        champion = self.stack.registry.champion()
        moved = champion is not None and str(champion["version"]) != self.champion
        if moved and champion is not None and not self.timeline.seen(CHAMPION_MOVED):
            self.timeline.record(CHAMPION_MOVED, version=str(champion["version"]))

    def _service(self) -> None:
        source = self.stack.served().get("registry") or {}
        version = str(source.get("version"))
        if version != self.champion and not self.timeline.seen(SWITCHED):
            self.timeline.record(SWITCHED, version=version)
