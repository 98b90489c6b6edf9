"""End to end, real components on 127.0.0.1: Prometheus scrapes the two-worker service and
evaluates the (clock-scaled) committed rules, Alertmanager routes to the project's receiver.
A reference replay raises no alert at all; a drifted replay's alert reaches the receiver before a
liveness timeout stated in evaluation cycles (the delay itself is a benchmark figure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from model_monitoring.datasets import housing_periods
from model_monitoring.replay import ReplayPlan, run_replay
from model_monitoring.stack import monitoring_stack
from roadmap_lab.data import HOUSING_FEATURES

pytestmark = pytest.mark.slow
CLOCK = 30.0
TIMEOUT_CYCLES = 120  # 60 s at a 0.5 s evaluation interval (1 hour of production time)


def test_reference_replay_is_silent_and_a_drift_alert_reaches_the_receiver(
    bundle_dir: Path, tmp_path: Path
) -> None:
    reference, _ = housing_periods()
    plan = ReplayPlan(
        rows_per_second=400,
        reference_seconds=35,  # longer than every scaled `for:` of the model alerts (<= 30 s)
        timeout_cycles=TIMEOUT_CYCLES,
        scenario_names=("scaled_feature",),
        analysis_rows=0,
    )
    with monitoring_stack(tmp_path, bundle_dir, clock=CLOCK, workers=2) as stack:
        assert stack.evaluation_interval_s == pytest.approx(0.5)
        phases = run_replay(stack, reference, None, HOUSING_FEATURES, "clf_target", plan)
        notifications = stack.receiver.snapshot()
        up = stack.query('up{job="model-service"}')
    reference_phase, drifted = phases
    assert reference_phase.rows > 10_000
    before_shift = [n for n in notifications if n.received_at < drifted.started_at]
    assert before_shift == [], [n.payload for n in before_shift]
    assert drifted.detected_at is not None, "no drift alert within the liveness timeout"
    assert drifted.detection_delay_s is not None
    assert drifted.detection_delay_s < TIMEOUT_CYCLES * stack.evaluation_interval_s
    assert drifted.detected_by == "ModelFeatureDrift{feature=MedInc}"
    firing = [a for n in notifications for a in n.alerts("firing")]
    assert {a["labels"]["alertname"] for a in firing} <= {"ModelFeatureDrift"}
    model_team = [n for n in notifications if n.receiver == "model-team"]
    assert model_team and model_team[0].payload["groupLabels"]["feature"] == "MedInc"
    assert up and up[0]["value"][1] == "1"
