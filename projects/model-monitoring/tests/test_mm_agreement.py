"""Our drift decisions against an independent implementation, evidently's DataDriftPreset, on the
same car-loan windows, reported apart for stable windows (held-out reference time) and drifted ones
(the scenarios' shifts): PSI at the same 0.2 threshold, and KS / chi-square at the same p-value.
A shift only one side can see by design (a category the reference never saw) is left out."""

from __future__ import annotations

from pathlib import Path

import pytest
from mm_testing import CAR_LOAN_TRAIN_ROWS, car_loan_held_out
from model_monitoring.benchmark import agreement_windows, comparable_shift, measure_agreement
from model_monitoring.bundle import load_bundle
from model_monitoring.datasets import load_periods
from model_monitoring.demo import chosen_scenarios
from model_monitoring.replay import prepare_rows

pytestmark = pytest.mark.slow


def test_decisions_agree_with_evidently_on_stable_and_on_drifted_windows(
    car_loan_bundle_dir: Path,
) -> None:
    bundle = load_bundle(car_loan_bundle_dir)
    reference, analysis = load_periods("car-loan")
    fit = prepare_rows(reference.head(CAR_LOAN_TRAIN_ROWS), bundle)
    scenarios = chosen_scenarios("car-loan", bundle, None)
    assert [s.name for s in scenarios if not comparable_shift(s, bundle)] == [
        "rising_missing", "unknown_category"
    ]  # fmt: skip
    windows = agreement_windows(prepare_rows(car_loan_held_out(), bundle),
                                prepare_rows(analysis, bundle), scenarios, bundle, 3)  # fmt: skip
    assert [name for group, name, _ in windows if group == "drifted"] == [
        "scaled_feature", "prior_shift", "covariate_shift"
    ]  # fmt: skip
    result = measure_agreement(fit, windows, bundle)
    stable, drifted = result["groups"]["stable"], result["groups"]["drifted"]
    assert stable["windows"] == drifted["windows"] == 3
    assert stable["decisions"] == 3 * len(bundle.features)
    assert stable["psi"].estimate >= 0.9, result["disagreements"]
    # The drifted windows' shifted features are flagged, by both sides.
    assert drifted["psi_flagged"] >= 2 and drifted["psi_flagged_agree"] >= 2
    disagreed = {(d["window"], d["feature"]) for d in result["disagreements"]}
    assert ("scaled_feature", "car_value") not in disagreed
