"""Replay: stream rows through the running service at a production traffic rate on the stack's
accelerated clock, send their delayed labels, and judge what reaches the alert receiver.

The bundle was trained on the first part of the data set's reference period; the rest (held out)
is rows its bins never saw. Phases, in order:
  held_out   the held-out rows (each once, in time order; resampled within the held-out part only
             when the plan asks for more time than it holds): no alert may fire
  control    a no-drift scenario (held-out rows at random): no alert may fire
  scenarios  the data set's synthetic shifts applied to held-out rows, each until the alert it
             names (and its feature) reaches the receiver, then clean rows for a whole drift
             window and until Prometheus holds no model alert; any other alert in the phase is a
             false alert
  analysis   the analysis period in time order (real drift), reported as observed

Every alert that fired is attributed to the phase in which it started firing (``startsAt``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import numpy as np
import pandas as pd

from model_monitoring.alerting import Notification
from model_monitoring.api import API_KEY_HEADER
from model_monitoring.bundle import Bundle, category_values, encode_target
from model_monitoring.errors import ModelMonitoringError
from model_monitoring.settings import ProjectSettings
from model_monitoring.stack import Stack

logger = logging.getLogger(__name__)
LABEL = "_label"  # the 0/1 target column of prepared rows
NO_DRIFT_KINDS = ("held_out", "control")
SHIFTS = ("none", "scale", "missing", "prior", "subpopulation", "category")
PRODUCTION_WINDOW_ROWS: int = ProjectSettings.model_fields["drift_window_rows"].default


@dataclass(frozen=True)
class Scenario:
    """A synthetic shift and the one alert (and feature) it must raise."""

    name: str
    description: str
    shift: str
    expect: str | None  # None: a control, no alert may fire
    expect_feature: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def expected(self) -> str:
        if self.expect is None:
            return "no alert"
        return self.expect + (f"{{feature={self.expect_feature}}}" if self.expect_feature else "")

    def matches(self, alert: FiredAlert) -> bool:
        return alert.name == self.expect and (
            self.expect_feature is None or alert.feature == self.expect_feature
        )


CONTROL = Scenario("control", "no shift: held-out rows at random", "none", None)


def scenario_from_config(raw: dict[str, Any], bundle: Bundle) -> Scenario:
    """A scenario of a data set's configuration, checked against the bundle's schema."""
    known = {"name", "description", "shift", "expect", "expect_feature"}
    params = {key: value for key, value in raw.items() if key not in known}
    try:
        scenario = Scenario(
            raw["name"], raw.get("description", ""), raw["shift"], raw.get("expect"),
            raw.get("expect_feature"), params,
        )  # fmt: skip
    except KeyError as error:
        raise ModelMonitoringError(f"scenario {raw.get('name')!r} lacks {error}") from None
    if scenario.shift not in SHIFTS:
        raise ModelMonitoringError(
            f"scenario {scenario.name}: unknown shift {scenario.shift!r}; one of {SHIFTS}"
        )
    specs = {spec.name: spec for spec in bundle.features}
    for name in (params.get("feature"), scenario.expect_feature):
        if name is not None and name not in specs:
            raise ModelMonitoringError(f"scenario {scenario.name}: no feature {name!r}")
    if scenario.shift in ("none", "prior"):
        return scenario
    feature = params.get("feature")
    if feature is None:
        raise ModelMonitoringError(f"scenario {scenario.name}: a {scenario.shift} needs a feature")
    if scenario.shift != "missing" and (scenario.shift == "category") != specs[feature].categorical:
        kind = "numeric" if scenario.shift == "category" else "categorical"
        raise ModelMonitoringError(f"scenario {scenario.name}: {feature} is {kind}")
    return scenario


def prepare_rows(frame: pd.DataFrame, bundle: Bundle) -> pd.DataFrame:
    """The features as the service takes them (categories as strings, None when missing) and the
    target as 0/1 in ``LABEL``."""
    prepared = frame[bundle.feature_names].copy()
    for spec in bundle.categorical:
        prepared[spec.name] = category_values(frame[spec.name])
    prepared[LABEL] = encode_target(frame[bundle.target])[0]
    return prepared.reset_index(drop=True)


class ScenarioRows:
    """Rows for the phases: held-out rows at random, shifted by a scenario (``progress`` runs
    from 0 at the shift's start to 1 after ``ramp_rows`` rows)."""

    def __init__(self, pool: pd.DataFrame, bundle: Bundle, seed: int = 0) -> None:
        self.pool = pool
        self.specs = {spec.name: spec for spec in bundle.features}
        self.rng = np.random.default_rng(seed)

    def draw(self, rows: int, scenario: Scenario = CONTROL, shifted: int = 0) -> pd.DataFrame:
        params = scenario.params
        pool = self.pool
        if scenario.shift == "prior":
            positives = self.rng.binomial(rows, params["positive_share"])
            return pd.concat(
                [self._sample(pool[pool[LABEL] == 1], positives),
                 self._sample(pool[pool[LABEL] == 0], rows - positives)]
            ).sample(frac=1, random_state=self.rng)  # fmt: skip
        if scenario.shift == "subpopulation":
            column = pool[params["feature"]]
            pool = pool[column >= column.quantile(params["quantile"])]
        drawn = self._sample(pool, rows)
        progress = min(shifted / params.get("ramp_rows", 1), 1.0)
        return self._shift(drawn, scenario, progress)

    def _sample(self, pool: pd.DataFrame, rows: int) -> pd.DataFrame:
        return pool.iloc[self.rng.integers(0, len(pool), rows)]

    def _shift(self, rows: pd.DataFrame, scenario: Scenario, progress: float) -> pd.DataFrame:
        params = scenario.params
        name = str(params.get("feature"))
        if scenario.shift == "scale":
            values = rows[name] * params["factor"]
            if self.specs[name].type == "int":  # still a valid integer input
                values = values.round()
            return rows.assign(**{name: values})
        if scenario.shift == "missing":
            hole = self.rng.random(len(rows)) < params["share"] * progress
            return rows.assign(**{name: rows[name].mask(hole)})
        if scenario.shift == "category":
            moved = self.rng.random(len(rows)) < params["share"]
            return rows.assign(**{name: np.where(moved, params["category"], rows[name])})
        return rows


@dataclass(frozen=True)
class FiredAlert:
    """One firing of an alert (Alertmanager resends a firing alert: each counts once)."""

    name: str
    feature: str | None
    starts_at: float
    received_at: float
    fingerprint: str

    @property
    def label(self) -> str:
        return self.name + (f"{{feature={self.feature}}}" if self.feature else "")


def fired_alerts(notifications: list[Notification]) -> list[FiredAlert]:
    """Every distinct firing at the receiver, by the time it first arrived."""
    seen: dict[tuple[str, str], FiredAlert] = {}
    for notification in sorted(notifications, key=lambda n: n.received_at):
        for alert in notification.alerts("firing"):
            labels = alert.get("labels", {})
            key = (str(alert.get("fingerprint") or sorted(labels.items())), alert["startsAt"])
            if key not in seen:
                seen[key] = FiredAlert(
                    labels.get("alertname", "?"), labels.get("feature"),
                    _timestamp(alert["startsAt"]), notification.received_at, key[0],
                )  # fmt: skip
    return sorted(seen.values(), key=lambda a: a.received_at)


def _timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class PhaseResult:
    name: str
    kind: str  # held_out | control | scenario | analysis
    started_at: float
    ended_at: float = 0.0
    rows: int = 0
    description: str = ""
    scenario: Scenario | None = None
    detected_at: float | None = None
    alerts: list[FiredAlert] = field(default_factory=list)
    resample_passes: int = 0  # held_out: passes over the held-out rows beyond the first
    first_pass_ended_at: float | None = None  # held_out: when the rows in time order ran out

    @property
    def expected(self) -> str | None:
        return self.scenario.expected if self.scenario else None

    @property
    def detection_delay_s(self) -> float | None:
        return None if self.detected_at is None else self.detected_at - self.started_at

    @property
    def false_alerts(self) -> list[FiredAlert]:
        """Alerts other than the one the phase names (in a no-drift phase: every alert)."""
        if self.kind == "analysis":
            return []
        scenario = self.scenario
        return [a for a in self.alerts if scenario is None or not scenario.matches(a)]

    @property
    def missed(self) -> bool:
        return self.scenario is not None and self.scenario.expect is not None and (
            self.detected_at is None
        )


def attribute_alerts(phases: list[PhaseResult], alerts: list[FiredAlert]) -> None:
    """Each alert goes to the phase in which it started firing."""
    for phase in phases:
        phase.alerts = [a for a in alerts if phase.started_at <= a.starts_at < phase.ended_at]


def verify_detections(phases: list[PhaseResult], clock: float) -> None:
    """Fail the run when a scenario's named alert never fired."""
    missed = [p for p in phases if p.missed]
    if missed:
        raise ModelMonitoringError(
            "expected alert never fired: "
            + "; ".join(
                f"{p.name} expected {p.expected} within "
                f"{(p.ended_at - p.started_at) * clock / 60:.0f} production min, got "
                f"{', '.join(a.label for a in p.alerts) or 'no alert'}"
                for p in missed
            )
        )


class Streamer:
    """Sends batches at the production rate on the stack's clock, and their labels
    ``label_delay_batches`` batches later (with the stack's API key)."""

    def __init__(
        self,
        stack: Stack,
        bundle: Bundle,
        *,
        rows_per_second: float,
        batch_rows: int,
        label_delay_batches: int = 5,
    ) -> None:
        self.features = bundle.feature_names
        self.interval_s = batch_rows / (rows_per_second * stack.clock)
        self.batch_rows = batch_rows
        self.client = httpx.Client(base_url=stack.service_url, timeout=30)
        self.label_headers = {API_KEY_HEADER: stack.labels_api_key}
        self.pending_labels: deque[tuple[list[str], list[int]]] = deque()
        self.label_delay_batches = label_delay_batches
        self._next_send = time.monotonic()

    def send(self, rows: pd.DataFrame) -> None:
        frame = rows[self.features].astype(object).where(rows[self.features].notna(), None)
        payload = {"rows": frame.to_dict(orient="records")}
        pause = self._next_send - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        self._next_send = max(self._next_send + self.interval_s, time.monotonic() - 1)
        reply = self.client.post("/predict", json=payload)
        if reply.status_code != 200:
            raise ModelMonitoringError(f"predict answered {reply.status_code}: {reply.text[:300]}")
        ids = [item["id"] for item in reply.json()["predictions"]]
        self.pending_labels.append((ids, rows[LABEL].astype(int).tolist()))
        while len(self.pending_labels) > self.label_delay_batches:
            label_ids, labels = self.pending_labels.popleft()
            pairs = zip(label_ids, labels, strict=True)
            body = {"labels": [{"id": i, "label": v} for i, v in pairs]}
            answer = self.client.post("/labels", json=body, headers=self.label_headers)
            if answer.status_code != 202:
                raise ModelMonitoringError(
                    f"labels answered {answer.status_code}: {answer.text[:300]}"
                )

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class ReplayPlan:
    """Traffic in production rows per second (the clock only speeds time up), durations in
    production minutes or hours."""

    rows_per_second: float = 20.0
    batch_rows: int = 50
    held_out_hours: float | None = None  # None: each held-out row once
    control_minutes: float = 10.0
    timeout_minutes: float = 60.0  # a scenario's liveness limit
    recovery_timeout_minutes: float = 60.0
    # Clean rows after a shift, at least: the production drift window, so that the next phase
    # starts on a clean window (no leftover shift that would shorten its detection delay).
    recovery_rows: int = PRODUCTION_WINDOW_ROWS
    scenario_names: tuple[str, ...] | None = None  # None: all of the data set's
    analysis_rows: int | None = 0  # None: the whole analysis period


@dataclass
class Replay:
    """One replay through a running stack."""

    stack: Stack
    bundle: Bundle
    held_out: pd.DataFrame  # prepared rows (prepare_rows), in time order
    scenarios: list[Scenario]
    plan: ReplayPlan
    seed: int = 0
    progress: Callable[[str], None] = logger.info

    def __post_init__(self) -> None:
        self.rows = ScenarioRows(self.held_out, self.bundle, self.seed)
        self.streamer = Streamer(
            self.stack, self.bundle, rows_per_second=self.plan.rows_per_second,
            batch_rows=self.plan.batch_rows,
        )  # fmt: skip

    def production_s(self, wall_s: float) -> float:
        return wall_s * self.stack.clock

    def wall_s(self, production_minutes: float) -> float:
        return production_minutes * 60 / self.stack.clock

    def run(self, analysis: pd.DataFrame | None = None) -> list[PhaseResult]:
        phases: list[PhaseResult] = []
        try:
            phases.append(self.held_out_phase())
            phases.append(self.scenario_phase(CONTROL, self.plan.control_minutes))
            for scenario in self.scenarios:
                phases.append(self.scenario_phase(scenario, self.plan.timeout_minutes))
            if analysis is not None:
                phases.append(self.analysis_phase(analysis))
        finally:
            self.close()
        return phases

    def close(self) -> None:
        self.streamer.close()

    def held_out_phase(self) -> PhaseResult:
        wanted = len(self.held_out)
        if self.plan.held_out_hours is not None:
            wanted = int(self.plan.held_out_hours * 3600 * self.plan.rows_per_second)
        phase = PhaseResult("held_out", "held_out", time.time(), description=(
            "reference rows the bins never saw, in time order"))  # fmt: skip
        order = np.arange(len(self.held_out))
        while phase.rows < wanted:
            if phase.rows and phase.rows % len(self.held_out) == 0:  # too short: resample it
                order = self.rows.rng.permutation(len(self.held_out))
                phase.resample_passes += 1
                phase.first_pass_ended_at = phase.first_pass_ended_at or time.time()
            start = phase.rows % len(self.held_out)
            count = min(self.plan.batch_rows, wanted - phase.rows, len(self.held_out) - start)
            self.streamer.send(self.held_out.iloc[order[start : start + count]])
            phase.rows += count
        phase.ended_at = time.time()
        self.progress(f"held_out: {phase.rows} rows, {self._hours(phase):.2f} production h")
        return phase

    def scenario_phase(self, scenario: Scenario, minutes: float) -> PhaseResult:
        """Shifted rows until the named alert arrives (a control: for ``minutes``), then clean
        rows (``recover``)."""
        kind = "control" if scenario.expect is None else "scenario"
        phase = PhaseResult(scenario.name, kind, time.time(), description=scenario.description,
                            scenario=scenario)  # fmt: skip
        deadline = time.monotonic() + self.wall_s(minutes)
        while time.monotonic() < deadline:
            self.streamer.send(self.rows.draw(self.plan.batch_rows, scenario, phase.rows))
            phase.rows += self.plan.batch_rows
            if scenario.expect is not None:
                found = self._expected_alert(scenario, phase.started_at)
                if found is not None:
                    phase.detected_at = found.received_at
                    break
        self.recover()  # inside the phase: what fires meanwhile is the phase's
        phase.ended_at = time.time()
        delay = phase.detection_delay_s
        self.progress(
            f"{scenario.name}: expected {scenario.expected}: "
            + ("-" if scenario.expect is None else "NOT detected" if delay is None
               else f"detected after {self.production_s(delay) / 60:.1f} production min")
        )  # fmt: skip
        return phase

    def recover(self) -> None:
        """Clean rows until the drift window holds only clean rows and Prometheus holds no model
        alert (pending or firing)."""
        deadline = time.monotonic() + self.wall_s(self.plan.recovery_timeout_minutes)
        sent = 0
        while (
            sent < self.plan.recovery_rows or self.stack.active_alerts("model")
        ) and time.monotonic() < deadline:
            self.streamer.send(self.rows.draw(self.plan.batch_rows))
            sent += self.plan.batch_rows

    def analysis_phase(self, analysis: pd.DataFrame) -> PhaseResult:
        limit = self.plan.analysis_rows
        rows = analysis if limit is None else analysis.head(limit)
        phase = PhaseResult("analysis", "analysis", time.time(),
                            description="analysis period in time order (real drift)")  # fmt: skip
        for start in range(0, len(rows), self.plan.batch_rows):
            batch = rows.iloc[start : start + self.plan.batch_rows]
            self.streamer.send(batch)
            phase.rows += len(batch)
        phase.ended_at = time.time()
        return phase

    def _expected_alert(self, scenario: Scenario, since: float) -> FiredAlert | None:
        for alert in fired_alerts(self.stack.receiver.snapshot()):
            if alert.starts_at >= since and scenario.matches(alert):
                return alert
        return None

    def _hours(self, phase: PhaseResult) -> float:
        return self.production_s(phase.ended_at - phase.started_at) / 3600


def no_drift_hours(phases: list[PhaseResult], clock: float) -> float:
    """Production hours of the phases in which no alert may fire (held-out time, control)."""
    return sum(p.ended_at - p.started_at for p in phases if p.kind in NO_DRIFT_KINDS) * clock / 3600


def no_drift_alerts(phases: list[PhaseResult]) -> list[FiredAlert]:
    """The alerts of those phases: each one is a false alert."""
    return [a for p in phases if p.kind in NO_DRIFT_KINDS for a in p.alerts]
