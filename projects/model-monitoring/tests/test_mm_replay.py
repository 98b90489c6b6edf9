"""The replay's judgement without a stack: data set configurations and their scenarios, the shifts
the scenarios make, the held-out split, and how alerts at the receiver become detections and
false alerts (only the named alert and feature count; a missing detection fails the run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mm_testing import car_loan_held_out
from model_monitoring.alerting import Notification
from model_monitoring.bundle import load_bundle
from model_monitoring.datasets import dataset_config, load_periods, parse_config, split_reference
from model_monitoring.demo import false_alert_figure
from model_monitoring.errors import ModelMonitoringError
from model_monitoring.replay import (
    CONTROL,
    LABEL,
    PhaseResult,
    ScenarioRows,
    attribute_alerts,
    fired_alerts,
    no_drift_alerts,
    no_drift_hours,
    prepare_rows,
    scenario_from_config,
    verify_detections,
)


def alert(name: str, starts_at: str, feature: str | None = None) -> dict[str, Any]:
    labels = {"alertname": name, **({"feature": feature} if feature else {})}
    return {"status": "firing", "labels": labels, "startsAt": starts_at,
            "fingerprint": f"{name}-{feature}"}  # fmt: skip


def at(seconds: float) -> str:
    return f"1970-01-01T00:{int(seconds) // 60:02d}:{int(seconds) % 60:02d}Z"


@pytest.mark.parametrize(("name", "fixture"), [("housing", "bundle_dir"),
                                               ("car-loan", "car_loan_bundle_dir")])  # fmt: skip
def test_each_configured_scenario_names_an_alert_and_fits_the_schema(
    name: str, fixture: str, request: pytest.FixtureRequest
) -> None:
    config = dataset_config(name)
    bundle = load_bundle(request.getfixturevalue(fixture))
    scenarios = [scenario_from_config(raw, bundle) for raw in config.scenarios]
    assert len(scenarios) >= 4
    assert all(s.expect and s.expect.startswith("Model") for s in scenarios)
    reference, analysis = load_periods(name)
    assert {config.target, config.timestamp, *config.features} <= set(analysis.columns)
    assert reference[config.timestamp].is_monotonic_increasing


def test_bad_scenarios_and_configs_are_refused_with_a_reason(car_loan_bundle_dir: Path) -> None:
    bundle = load_bundle(car_loan_bundle_dir)
    with pytest.raises(ModelMonitoringError, match="unknown shift"):
        scenario_from_config({"name": "x", "shift": "teleport", "expect": "A"}, bundle)
    with pytest.raises(ModelMonitoringError, match="no feature 'colour'"):
        scenario_from_config({"name": "x", "shift": "scale", "feature": "colour"}, bundle)
    with pytest.raises(ModelMonitoringError, match="car_value is numeric"):
        scenario_from_config({"name": "x", "shift": "category", "feature": "car_value"}, bundle)
    with pytest.raises(ModelMonitoringError, match="salary_range is categorical"):
        scenario_from_config({"name": "x", "shift": "scale", "feature": "salary_range"}, bundle)
    with pytest.raises(ModelMonitoringError, match="needs reference and analysis"):
        parse_config("x", {"source": {"reference": "r.csv"},
                           "columns": {"target": "y", "timestamp": "t", "features": ["a"]}})


def test_held_out_rows_come_after_the_training_rows_in_time() -> None:
    config = dataset_config("car-loan")
    reference, _ = load_periods("car-loan")
    fit, held_out = split_reference(config, reference)
    assert len(held_out) == 20_000 and len(fit) + len(held_out) == len(reference)
    assert fit[config.timestamp].max() < held_out[config.timestamp].min()
    housing = dataset_config("housing")  # timestamps sorted across the map: a random split
    fit, held_out = split_reference(housing, load_periods("housing")[0])
    assert fit.index.intersection(held_out.index).empty
    assert held_out.index.min() < fit.index.max()


def test_scenario_rows_make_the_configured_shifts(car_loan_bundle_dir: Path) -> None:
    bundle = load_bundle(car_loan_bundle_dir)
    pool = prepare_rows(car_loan_held_out(), bundle)
    rows = ScenarioRows(pool, bundle, seed=1)
    by_name = {raw["name"]: scenario_from_config(raw, bundle)
               for raw in dataset_config("car-loan").scenarios}  # fmt: skip
    scaled = rows.draw(2000, by_name["scaled_feature"])
    assert scaled["car_value"].median() > 1.4 * pool["car_value"].median()
    assert np.all(scaled["car_value"] % 1 == 0)  # an integer feature stays a valid input
    prior = rows.draw(2000, by_name["prior_shift"])
    assert 0.17 < prior[LABEL].mean() < 0.23
    mixed = rows.draw(2000, by_name["category_mix"])
    assert 0.5 < (mixed["salary_range"] == "60K+ €").mean() < 0.6  # 50% moved + the 10% there
    start = rows.draw(2000, by_name["rising_missing"], shifted=0)
    late = rows.draw(2000, by_name["rising_missing"], shifted=3000)
    assert start["driver_tenure"].isna().mean() == 0
    assert 0.35 < late["driver_tenure"].isna().mean() < 0.45
    assert rows.draw(500, CONTROL)["car_value"].median() == pytest.approx(
        pool["car_value"].median(), rel=0.1
    )


def test_only_the_named_alert_and_feature_count_as_a_detection(car_loan_bundle_dir: Path) -> None:
    bundle = load_bundle(car_loan_bundle_dir)
    scaled = scenario_from_config(dataset_config("car-loan").scenarios[0], bundle)
    phases = [
        PhaseResult("held_out", "held_out", 0, 100),
        PhaseResult("control", "control", 100, 200, scenario=CONTROL),
        PhaseResult("scaled_feature", "scenario", 200, 400, scenario=scaled, detected_at=330),
    ]
    notifications = [
        Notification(150.0, "model-team", {"alerts": [alert("ModelFeatureMissingValues", at(140),
                                                            "driver_tenure")]}),
        Notification(320.0, "model-team", {"alerts": [alert("ModelFeatureDrift", at(310),
                                                            "loan_length")]}),
        Notification(330.0, "model-team", {"alerts": [alert("ModelFeatureDrift", at(325),
                                                            "car_value")]}),
        # Alertmanager repeats a firing alert: it counts once.
        Notification(360.0, "model-team", {"alerts": [alert("ModelFeatureDrift", at(325),
                                                            "car_value")]}),
    ]  # fmt: skip
    attribute_alerts(phases, fired_alerts(notifications))
    held_out, control, scenario = phases
    assert held_out.alerts == [] and [a.label for a in control.alerts] == [
        "ModelFeatureMissingValues{feature=driver_tenure}"
    ]
    assert [a.label for a in scenario.alerts] == [
        "ModelFeatureDrift{feature=loan_length}", "ModelFeatureDrift{feature=car_value}"
    ]
    assert [a.label for a in scenario.false_alerts] == ["ModelFeatureDrift{feature=loan_length}"]
    assert [a.label for a in no_drift_alerts(phases)] == [
        "ModelFeatureMissingValues{feature=driver_tenure}"
    ]
    assert no_drift_hours(phases, clock=36) == pytest.approx(2.0)  # 200 s x 36 = 2 hours
    verify_detections(phases, clock=36)  # detected: no error


def test_the_run_fails_when_the_named_alert_never_fires(car_loan_bundle_dir: Path) -> None:
    bundle = load_bundle(car_loan_bundle_dir)
    unknown = scenario_from_config(dataset_config("car-loan").scenarios[-1], bundle)
    phase = PhaseResult("unknown_category", "scenario", 0, 600, scenario=unknown)
    # The right alert name on the wrong feature is no detection.
    notifications = [Notification(100.0, "model-team", {"alerts": [
        alert("ModelFeatureUnknownCategories", at(90), "salary_range")]})]  # fmt: skip
    attribute_alerts([phase], fired_alerts(notifications))
    assert phase.missed and len(phase.false_alerts) == 1
    with pytest.raises(ModelMonitoringError, match="unknown_category expected "
                       r"ModelFeatureUnknownCategories\{feature=size_of_downpayment\} within 60 "
                       r"production min, got ModelFeatureUnknownCategories\{feature=salary_range"):
        verify_detections([phase], clock=6)  # fmt: skip


def test_false_alerts_are_a_poisson_rate_with_the_in_order_part_apart() -> None:
    held_out = PhaseResult("held_out", "held_out", 0, 150, rows=3000, resample_passes=2,
                           first_pass_ended_at=50)  # fmt: skip
    control = PhaseResult("control", "control", 150, 200, scenario=CONTROL)
    notifications = [Notification(130.0, "oncall", {"alerts": [alert("ModelDriftJobStale",
                                                                     at(120))]})]  # fmt: skip
    attribute_alerts([held_out, control], fired_alerts(notifications))
    figure = false_alert_figure("false alerts", [held_out, control], clock=36,
                                rows_per_second=5)  # fmt: skip
    assert figure["observed"] == 1 and figure["alerts"] == [("ModelDriftJobStale", 1)]
    assert figure["production_hours"] == pytest.approx(2.0)  # 200 s x 36
    assert figure["value"] == pytest.approx(0.5)
    assert figure["interval"]["low"] > 0 and figure["interval"]["high"] > 2  # exact Poisson
    assert figure["verdict"] == "within noise"  # of < 1: one alert in two hours bounds little
    # The alert came while the held-out rows were resampled, not in the time-ordered first pass.
    assert figure["held_out_in_time_order_hours"] == pytest.approx(0.5)
    assert figure["held_out_in_time_order_alerts"] == []
    assert figure["held_out_resample_passes"] == 2
