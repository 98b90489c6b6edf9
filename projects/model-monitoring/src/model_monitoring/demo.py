"""The replay run and the demo: train a bundle on the first part of a data set's reference period,
start the full stack on an accelerated clock, replay the held-out part, the control and the
scenarios (and optionally the analysis period), write the HTML report, and fail when a scenario's
named alert never fired. The demo writes dist/model-monitoring/results.json with the verdicts."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from roadmap_lab.results import (
    Headline,
    ResultsWriter,
    committed_results,
    headline_figure,
    invocation,
    reference_headline,
)
from roadmap_lab.stats import poisson_rate

from model_monitoring import PROJECT
from model_monitoring.bundle import BUNDLE_FILE, Bundle, train_bundle
from model_monitoring.datasets import (
    REPLAY_DATASET,
    dataset_config,
    default_training_frame,
    load_periods,
    split_reference,
)
from model_monitoring.errors import ModelMonitoringError
from model_monitoring.replay import (
    PhaseResult,
    Replay,
    ReplayPlan,
    Scenario,
    attribute_alerts,
    fired_alerts,
    no_drift_alerts,
    no_drift_hours,
    prepare_rows,
    scenario_from_config,
    verify_detections,
)
from model_monitoring.report import drift_series, write_report
from model_monitoring.settings import ProjectSettings
from model_monitoring.stack import monitoring_stack

DEMO_CLOCK = 60.0  # 15 s scrapes every 0.25 s
FALSE_ALERT_TARGET = "< 1"  # false alerts per production hour, judged on the upper bound
# The demo's plan: 20 production rows/s, so the 20,000 held-out rows take 17 production minutes.
DEMO_PLAN = ReplayPlan(rows_per_second=20.0, control_minutes=10.0)


@dataclass
class ReplayData:
    """A replay's bundle, trained on the first part of the data set's reference period, and the
    rows: what it was fitted on, the held-out part, the analysis period (all prepared)."""

    bundle: Bundle
    bundle_dir: Path
    fit: pd.DataFrame
    held_out: pd.DataFrame
    analysis: pd.DataFrame


@dataclass
class ReplayOutcome:
    dataset: str
    phases: list[PhaseResult]
    plan: ReplayPlan
    clock: float
    evaluation_interval_s: float
    report_path: Path
    figures: dict[str, Any]
    seconds: float

    @property
    def scenarios(self) -> list[PhaseResult]:
        return [p for p in self.phases if p.kind == "scenario"]

    def verify(self) -> None:
        verify_detections(self.phases, self.clock)


def ensure_bundle(settings: ProjectSettings) -> Path:
    """The settings' bundle, trained on the embedded default data when missing."""
    folder = settings.resolved_bundle_dir()
    if not (folder / BUNDLE_FILE).is_file():
        frame, defaults = default_training_frame()
        train_bundle(frame, output=folder, seed=settings.seed, **defaults)
    return folder


def replay_data(dataset: str, bundle_dir: Path, seed: int = 0) -> ReplayData:
    """Train the replay's bundle on the part of ``dataset``'s reference period that is not held
    out, into ``bundle_dir``."""
    config = dataset_config(dataset)
    reference, analysis = load_periods(dataset)
    fit, held_out = split_reference(config, reference, seed)
    bundle = train_bundle(fit, output=bundle_dir, seed=seed, **config.train_arguments())
    return ReplayData(
        bundle, bundle_dir, prepare_rows(fit, bundle), prepare_rows(held_out, bundle),
        prepare_rows(analysis, bundle),
    )  # fmt: skip


def chosen_scenarios(dataset: str, bundle: Bundle, names: tuple[str, ...] | None) -> list[Scenario]:
    """The data set's scenarios (those named, when ``names`` is given)."""
    configured = [scenario_from_config(raw, bundle) for raw in dataset_config(dataset).scenarios]
    unknown = set(names or ()) - {s.name for s in configured}
    if unknown:
        raise ModelMonitoringError(f"no scenario {', '.join(sorted(unknown))} in {dataset}")
    return [s for s in configured if not names or s.name in names]


def run_monitoring_replay(
    settings: ProjectSettings,
    output: Path,
    plan: ReplayPlan,
    *,
    dataset: str = REPLAY_DATASET,
    clock: float = DEMO_CLOCK,
    workers: int = 2,
) -> ReplayOutcome:
    started = time.monotonic()
    output.mkdir(parents=True, exist_ok=True)
    data = replay_data(dataset, output / "bundle", settings.seed)
    bundle = data.bundle
    scenarios = chosen_scenarios(dataset, bundle, plan.scenario_names)
    with monitoring_stack(output / "stack", data.bundle_dir, clock=clock, workers=workers) as stack:
        run_started = time.time()
        replay = Replay(stack, bundle, data.held_out, scenarios, plan, seed=settings.seed)
        phases = replay.run(data.analysis if plan.analysis_rows != 0 else None)
        time.sleep(2 * stack.evaluation_interval_s)  # the last evaluation reaches Prometheus
        series = drift_series(stack, run_started, time.time())
        notifications = stack.receiver.snapshot()
        evaluation_interval_s = stack.evaluation_interval_s
    attribute_alerts(phases, fired_alerts(notifications))
    report_path, figures = write_report(
        output, phases, series, notifications, clock=clock, bundle_version=bundle.version
    )
    return ReplayOutcome(
        dataset, phases, plan, clock, evaluation_interval_s, report_path, figures,
        time.monotonic() - started,
    )  # fmt: skip


def _first_pass(phases: list[PhaseResult], clock: float) -> tuple[list[Any], float]:
    """The alerts and production hours of the held-out rows' first pass, in time order."""
    held_out = next(p for p in phases if p.kind == "held_out")
    first_pass_end = held_out.first_pass_ended_at or held_out.ended_at
    alerts = [a for a in held_out.alerts if a.starts_at < first_pass_end]
    return alerts, (first_pass_end - held_out.started_at) * clock / 3600


def false_alert_figure(
    name: str, phases: list[PhaseResult], clock: float, rows_per_second: float,
    target: str | None = FALSE_ALERT_TARGET,
) -> Headline:  # fmt: skip
    """False alerts per production hour of held-out time and the control, with the exact Poisson
    interval (the verdict rule for counts: seeing none in a short replay still leaves a bound)."""
    alerts = no_drift_alerts(phases)
    hours = no_drift_hours(phases, clock)
    held_out = next(p for p in phases if p.kind == "held_out")
    # Resampled rows are easier than time in order (no autocorrelation): the first pass apart.
    first_pass, first_pass_hours = _first_pass(phases, clock)
    return headline_figure(
        name,
        None,
        "per production hour",
        target=target,
        interval=poisson_rate(len(alerts), hours, unit="per production hour"),
        digits=3,
        observed=len(alerts),
        alerts=sorted(Counter(a.label for a in alerts).items()),
        production_hours=round(hours, 3),
        rows_per_second=rows_per_second,
        held_out_rows=held_out.rows,
        held_out_resample_passes=held_out.resample_passes,
        held_out_in_time_order_hours=round(first_pass_hours, 3),
        held_out_in_time_order_alerts=[a.label for a in first_pass],
    )


def in_order_false_alert_figure(
    name: str, phases: list[PhaseResult], clock: float, rows_per_second: float
) -> Headline:
    """False alerts per production hour of the held-out rows' first pass alone: the only
    exposure that is held-out time as it came (resampled passes and the control's random rows
    are easier, and re-test the same rows)."""
    alerts, hours = _first_pass(phases, clock)
    return headline_figure(
        name, None, "per production hour", target=FALSE_ALERT_TARGET,
        interval=poisson_rate(len(alerts), hours, unit="per production hour"), digits=3,
        observed=len(alerts), alerts=sorted(Counter(a.label for a in alerts).items()),
        production_hours=round(hours, 3), rows_per_second=rows_per_second,
    )  # fmt: skip


def run_demo(settings: ProjectSettings) -> Path:
    outcome = run_monitoring_replay(settings, settings.run_dir / "demo", DEMO_PLAN)
    outcome.verify()
    writer = ResultsWriter(PROJECT, settings.dist_dir, invocation("model_monitoring"))
    for name, figure in outcome.figures.items():
        writer.save_figure(figure, name)
    scenarios = outcome.scenarios
    detected = [p for p in scenarios if p.detected_at is not None]
    others = [a for p in scenarios for a in p.false_alerts]
    rate = outcome.plan.rows_per_second
    headline: list[Any] = [
        headline_figure(
            f"detection delay: {p.name} ({p.expected})",
            round((p.detection_delay_s or 0.0) * outcome.clock / 60, 1),
            "production min",
            rows_per_second=rate,
        )
        for p in detected
    ]
    headline += [
        headline_figure(
            "scenarios detected by their named alert", f"{len(detected)}/{len(scenarios)}",
            "scenarios",
        ),
        false_alert_figure(
            "false alerts per production hour (held-out reference time + control)",
            outcome.phases, outcome.clock, rate,
        ),
        headline_figure(
            "other alerts during the scenarios (false alerts)", len(others), "alerts",
            alerts=sorted(Counter(a.label for a in others).items()),
        ),
    ]  # fmt: skip
    committed = committed_results(PROJECT)
    if committed:
        headline += reference_headline(committed)
    return writer.write(
        {
            "headline": headline,
            "dataset": outcome.dataset,
            "clock": outcome.clock,
            "rows_per_second": rate,
            "evaluation_interval_s": outcome.evaluation_interval_s,
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
        "production_minutes": round((phase.ended_at - phase.started_at) * clock / 60, 2),
        "expected": phase.expected,
        "detected": phase.detected_at is not None,
        "detection_delay_production_min": None if delay is None else round(delay * clock / 60, 2),
        "alerts": [a.label for a in phase.alerts],
        "false_alerts": [a.label for a in phase.false_alerts],
        "resample_passes": phase.resample_passes,
    }
