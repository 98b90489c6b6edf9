"""Replay: stream rows through the running service at a chosen speed, send their delayed labels,
and watch what reaches the alert receiver.

Phases, in order:
  reference     rows of the reference period in random order (its own distribution: consecutive
                rows of the housing data move across the map, so time order is not i.i.d.); no
                alert may fire
  scenarios     synthetic shifts applied to reference rows from the shift's start: one feature
                scaled, rising missing values, a label shift, a covariate shift on one feature;
                each waits for a model alert at the receiver (the detection delay), then clean
                rows until Prometheus has no model alert left
  analysis      the analysis period in time order (real drift over a year)
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

from model_monitoring.errors import ModelMonitoringError
from model_monitoring.stack import Stack

logger = logging.getLogger(__name__)

Transform = Callable[[pd.DataFrame, float], pd.DataFrame]


@dataclass(frozen=True)
class Scenario:
    """A synthetic shift: ``make(rows, progress)`` turns clean rows into shifted ones, where
    ``progress`` runs from 0 at the shift's start to 1 at ``ramp_rows`` rows later."""

    name: str
    description: str
    make: Transform
    expected_alerts: tuple[str, ...]
    ramp_rows: int = 1


def scaled_feature(feature: str, factor: float) -> Transform:
    def make(rows: pd.DataFrame, progress: float) -> pd.DataFrame:
        return rows.assign(**{feature: rows[feature] * factor})

    return make


def rising_missing(feature: str, final_share: float) -> Transform:
    def make(rows: pd.DataFrame, progress: float) -> pd.DataFrame:
        rng = np.random.default_rng(len(rows) + int(progress * 1e6))
        hole = rng.random(len(rows)) < final_share * progress
        return rows.assign(**{feature: rows[feature].mask(hole)})

    return make


def scenarios(features: list[str]) -> list[Scenario]:
    """The four synthetic scenarios of the default data (California housing)."""
    first = "MedInc" if "MedInc" in features else features[0]
    covariate = "HouseAge" if "HouseAge" in features else features[-1]
    return [
        Scenario(
            "scaled_feature",
            f"{first} multiplied by 1.5 (a unit or pipeline change)",
            scaled_feature(first, 1.5),
            ("ModelFeatureDrift",),
        ),
        Scenario(
            "rising_missing",
            f"{covariate} missing in a share of rows rising from 0 to 40%",
            rising_missing(covariate, 0.4),
            ("ModelFeatureMissingValues",),
            ramp_rows=3000,
        ),
        Scenario(
            "label_shift",
            "the positive class falls to 10% of the rows (prior shift)",
            lambda rows, progress: rows,  # the sampler draws the rows, see ScenarioSampler
            ("ModelPredictionShift", "ModelFeatureDrift"),
        ),
        Scenario(
            "covariate_shift",
            f"only rows from the top 30% of {covariate} (a new population)",
            lambda rows, progress: rows,
            ("ModelFeatureDrift",),
        ),
    ]


@dataclass
class ScenarioSampler:
    """Draws rows for a phase: reference rows at random, re-weighted for the sampling-based
    scenarios (label shift, covariate shift)."""

    reference: pd.DataFrame
    target: str
    covariate: str
    seed: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def draw(self, rows: int, scenario: str | None = None) -> pd.DataFrame:
        pool = self.reference
        if scenario == "label_shift":
            positives = pool[pool[self.target] == pool[self.target].max()]
            negatives = pool[pool[self.target] != pool[self.target].max()]
            n_pos = int(self.rng.binomial(rows, 0.1))
            return pd.concat(
                [
                    positives.sample(n_pos, replace=True, random_state=self.rng),
                    negatives.sample(rows - n_pos, replace=True, random_state=self.rng),
                ]
            ).sample(frac=1, random_state=self.rng)
        if scenario == "covariate_shift":
            pool = pool[pool[self.covariate] >= pool[self.covariate].quantile(0.7)]
        return pool.sample(rows, replace=True, random_state=self.rng)


@dataclass
class PhaseResult:
    name: str
    kind: str  # reference | scenario | analysis
    started_at: float
    shift_at: float | None = None
    ended_at: float = 0.0
    rows: int = 0
    detected_at: float | None = None
    detected_by: str | None = None
    description: str = ""
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def detection_delay_s(self) -> float | None:
        if self.detected_at is None or self.shift_at is None:
            return None
        return self.detected_at - self.shift_at


class Streamer:
    """Sends batches at ``rows_per_second`` and their labels ``label_delay_batches`` later."""

    def __init__(
        self,
        stack: Stack,
        features: list[str],
        target: str,
        *,
        rows_per_second: float,
        batch_rows: int,
        label_delay_batches: int = 5,
    ) -> None:
        self.stack = stack
        self.features = features
        self.target = target
        self.interval_s = batch_rows / rows_per_second
        self.batch_rows = batch_rows
        self.client = httpx.Client(base_url=stack.service_url, timeout=30)
        self.pending_labels: deque[tuple[list[str], list[int]]] = deque()
        self.label_delay_batches = label_delay_batches
        self._next_send = time.monotonic()
        self.rows_sent = 0

    def send(self, rows: pd.DataFrame) -> None:
        payload = {
            "rows": [
                {name: (None if pd.isna(value) else float(value)) for name, value in row.items()}
                for row in rows[self.features].to_dict(orient="records")
            ]
        }
        pause = self._next_send - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        self._next_send = max(self._next_send + self.interval_s, time.monotonic() - 1)
        reply = self.client.post("/predict", json=payload)
        if reply.status_code != 200:
            raise ModelMonitoringError(f"predict answered {reply.status_code}: {reply.text[:300]}")
        ids = [item["id"] for item in reply.json()["predictions"]]
        self.rows_sent += len(ids)
        self.pending_labels.append((ids, rows[self.target].astype(int).tolist()))
        while len(self.pending_labels) > self.label_delay_batches:
            label_ids, labels = self.pending_labels.popleft()
            answer = self.client.post(
                "/labels",
                json={
                    "labels": [
                        {"id": i, "label": v} for i, v in zip(label_ids, labels, strict=True)
                    ]
                },
            )
            if answer.status_code != 202:
                raise ModelMonitoringError(
                    f"labels answered {answer.status_code}: {answer.text[:300]}"
                )

    def close(self) -> None:
        self.client.close()


def _alert_started(alert: dict[str, Any]) -> float:
    return datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00")).timestamp()


def new_model_alert(stack: Stack, since: float) -> tuple[float, dict[str, Any]] | None:
    """The first firing model alert at the receiver that started firing after ``since``."""
    for notification in stack.receiver.snapshot():
        for alert in notification.alerts("firing"):
            if alert["labels"].get("component") == "model" and _alert_started(alert) >= since:
                return notification.received_at, alert
    return None


@dataclass(frozen=True)
class ReplayPlan:
    rows_per_second: float = 500.0
    batch_rows: int = 50
    reference_seconds: float = 40.0
    # Liveness timeout of a scenario, in the accelerated Prometheus' evaluation cycles.
    timeout_cycles: int = 120
    recovery_timeout_cycles: int = 120
    analysis_rows: int | None = None  # None: the whole analysis period
    scenario_names: tuple[str, ...] | None = None  # None: all


def run_replay(
    stack: Stack,
    reference: pd.DataFrame,
    analysis: pd.DataFrame | None,
    features: list[str],
    target: str,
    plan: ReplayPlan,
    progress: Callable[[str], None] = logger.info,
) -> list[PhaseResult]:
    covariate = "HouseAge" if "HouseAge" in features else features[-1]
    sampler = ScenarioSampler(reference, target, covariate)
    streamer = Streamer(
        stack, features, target, rows_per_second=plan.rows_per_second, batch_rows=plan.batch_rows
    )
    cycle = stack.evaluation_interval_s
    results: list[PhaseResult] = []
    try:
        phase = PhaseResult("reference", "reference", time.time(), description="reference rows")
        deadline = time.monotonic() + plan.reference_seconds
        while time.monotonic() < deadline:
            streamer.send(sampler.draw(plan.batch_rows))
            phase.rows += plan.batch_rows
        phase.ended_at = time.time()
        phase.alerts = [a for n in stack.receiver.snapshot() for a in n.alerts("firing")]
        results.append(phase)
        progress(f"reference: {phase.rows} rows, {len(phase.alerts)} alert(s) at the receiver")
        for scenario in scenarios(features):
            if plan.scenario_names and scenario.name not in plan.scenario_names:
                continue
            results.append(_run_scenario(stack, streamer, sampler, scenario, plan, cycle))
            last = results[-1]
            delay = last.detection_delay_s
            progress(
                f"{scenario.name}: "
                + (f"detected by {last.detected_by} after {delay:.1f} s" if delay is not None
                   else "NOT detected")
            )  # fmt: skip
        if analysis is not None:
            rows = analysis if plan.analysis_rows is None else analysis.head(plan.analysis_rows)
            phase = PhaseResult(
                "analysis", "analysis", time.time(), description="analysis period, time order"
            )
            for start in range(0, len(rows), plan.batch_rows):
                streamer.send(rows.iloc[start : start + plan.batch_rows])
                phase.rows += len(rows.iloc[start : start + plan.batch_rows])
            phase.ended_at = time.time()
            phase.alerts = [
                a
                for n in stack.receiver.snapshot()
                if n.received_at >= phase.started_at
                for a in n.alerts("firing")
            ]
            results.append(phase)
            progress(f"analysis: {phase.rows} rows, {len(phase.alerts)} firing alert(s)")
    finally:
        streamer.close()
    return results


def _run_scenario(
    stack: Stack,
    streamer: Streamer,
    sampler: ScenarioSampler,
    scenario: Scenario,
    plan: ReplayPlan,
    cycle: float,
) -> PhaseResult:
    phase = PhaseResult(scenario.name, "scenario", time.time(), description=scenario.description)
    phase.shift_at = time.time()
    shifted_rows = 0
    deadline = time.monotonic() + plan.timeout_cycles * cycle
    while time.monotonic() < deadline:
        rows = sampler.draw(plan.batch_rows, scenario.name)
        progress_share = min(shifted_rows / scenario.ramp_rows, 1.0)
        streamer.send(scenario.make(rows, progress_share))
        shifted_rows += plan.batch_rows
        found = new_model_alert(stack, phase.shift_at)
        if found is not None:
            phase.detected_at, alert = found
            phase.detected_by = alert["labels"]["alertname"]
            if "feature" in alert["labels"]:
                phase.detected_by += f"{{feature={alert['labels']['feature']}}}"
            break
    phase.rows = shifted_rows
    # Recovery: clean rows until Prometheus holds no model alert (pending or firing).
    deadline = time.monotonic() + plan.recovery_timeout_cycles * cycle
    while time.monotonic() < deadline:
        streamer.send(sampler.draw(plan.batch_rows))
        if not stack.active_alerts("model"):
            break
    phase.ended_at = time.time()
    phase.alerts = [
        a
        for n in stack.receiver.snapshot()
        if phase.started_at <= n.received_at <= phase.ended_at
        for a in n.alerts("firing")
    ]
    return phase
