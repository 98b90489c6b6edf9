"""The replay run and the demo: train (or reuse) the bundle, start the full stack on an accelerated
clock, replay reference rows, the synthetic scenarios and the analysis period, then write the HTML
report and, for the demo, dist/model-monitoring/results.json with the report's plots."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roadmap_lab.results import (
    ResultsWriter,
    committed_results,
    headline_figure,
    invocation,
    reference_headline,
)
from roadmap_lab.stats import poisson_rate

from model_monitoring import PROJECT
from model_monitoring.bundle import BUNDLE_FILE, load_bundle, train_bundle
from model_monitoring.datasets import default_training_frame, housing_periods
from model_monitoring.replay import PhaseResult, ReplayPlan, run_replay
from model_monitoring.report import drift_series, write_report
from model_monitoring.settings import ProjectSettings
from model_monitoring.stack import monitoring_stack

DEMO_CLOCK = 60.0  # 15 s scrapes every 0.25 s: the demo fits in its 3 minutes


@dataclass
class ReplayOutcome:
    phases: list[PhaseResult]
    report_path: Path
    figures: dict[str, Any]
    clock: float
    evaluation_interval_s: float
    timeout_cycles: int
    seconds: float

    @property
    def false_alerts(self) -> int:
        return sum(len(p.alerts) for p in self.phases if p.kind == "reference")

    @property
    def scenarios(self) -> list[PhaseResult]:
        return [p for p in self.phases if p.kind == "scenario"]


def ensure_bundle(settings: ProjectSettings) -> Path:
    folder = settings.resolved_bundle_dir()
    if not (folder / BUNDLE_FILE).is_file():
        frame, defaults = default_training_frame()
        train_bundle(frame, output=folder, seed=settings.seed, **defaults)
    return folder


def run_monitoring_replay(
    settings: ProjectSettings,
    output: Path,
    plan: ReplayPlan,
    *,
    clock: float = DEMO_CLOCK,
    workers: int = 2,
) -> ReplayOutcome:
    started = time.monotonic()
    bundle_dir = ensure_bundle(settings)
    bundle = load_bundle(bundle_dir)
    reference, analysis = housing_periods()
    output.mkdir(parents=True, exist_ok=True)
    with monitoring_stack(output / "stack", bundle_dir, clock=clock, workers=workers) as stack:
        run_started = time.time()
        phases = run_replay(
            stack,
            reference,
            analysis if plan.analysis_rows != 0 else None,
            bundle.feature_names,
            bundle.target,
            plan,
        )
        time.sleep(2 * stack.evaluation_interval_s)  # the last evaluation reaches Prometheus
        series = drift_series(stack, run_started, time.time())
        notifications = stack.receiver.snapshot()
        evaluation_interval_s = stack.evaluation_interval_s
    report_path, figures = write_report(
        output, phases, series, notifications, clock=clock, bundle_version=bundle.version
    )
    return ReplayOutcome(
        phases,
        report_path,
        figures,
        clock,
        evaluation_interval_s,
        plan.timeout_cycles,
        time.monotonic() - started,
    )


FALSE_ALERT_TARGET = "< 1"  # false alerts per production hour, by the upper bound


def run_demo(settings: ProjectSettings) -> Path:
    # Reference rows for longer than any scaled `for:` of the model alerts (15 min -> 15 s).
    plan = ReplayPlan(rows_per_second=500.0, reference_seconds=25.0)
    outcome = run_monitoring_replay(settings, settings.run_dir / "demo", plan, clock=DEMO_CLOCK)
    writer = ResultsWriter(PROJECT, settings.dist_dir, invocation("model_monitoring"))
    for name, figure in outcome.figures.items():
        writer.save_figure(figure, name)
    scenarios = outcome.scenarios
    detected = [p for p in scenarios if p.detection_delay_s is not None]
    headline: list[Any] = [
        headline_figure(
            f"detection delay: {p.name}",
            None if p.detection_delay_s is None else round(p.detection_delay_s, 1),
            f"s at clock x{outcome.clock:g}",
        )
        for p in scenarios
    ]
    # A count of events is a rate over what was observed: seeing none in a short replay still
    # leaves an upper bound, which decides the verdict.
    replay_hours = plan.reference_seconds * outcome.clock / 3600
    headline += [
        headline_figure(
            "false alerts per production hour over the reference replay",
            None,
            "per hour",
            target=FALSE_ALERT_TARGET,
            interval=poisson_rate(outcome.false_alerts, replay_hours, unit="per hour"),
            digits=2,
            observed=outcome.false_alerts,
            production_hours=round(replay_hours, 3),
        ),
        headline_figure("scenarios detected", f"{len(detected)}/{len(scenarios)}", "scenarios"),
    ]
    committed = committed_results(PROJECT)
    if committed:
        headline += reference_headline(committed)
    return writer.write(
        {
            "headline": headline,
            "clock": outcome.clock,
            "evaluation_interval_s": outcome.evaluation_interval_s,
            "liveness_timeout_cycles": outcome.timeout_cycles,
            "seconds": round(outcome.seconds, 1),
            "phases": [phase_summary(p, outcome.clock) for p in outcome.phases],
            "report": str(outcome.report_path),
        }
    )


def phase_summary(phase: PhaseResult, clock: float) -> dict[str, Any]:
    delay = phase.detection_delay_s
    return {
        "name": phase.name,
        "kind": phase.kind,
        "description": phase.description,
        "rows": phase.rows,
        "detected_by": phase.detected_by,
        "detection_delay_s": None if delay is None else round(delay, 2),
        "detection_delay_production_s": None if delay is None else round(delay * clock, 1),
        "alerts": sorted({a["labels"]["alertname"] for a in phase.alerts}),
    }
