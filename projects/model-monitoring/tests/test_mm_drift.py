"""Drift statistics (numeric and categorical) and the clock scaling of rules and configs (the
per-batch metric updates are checked in test_mm_categorical.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_monitoring.alerting import (
    RULES_FILE,
    load_yaml,
    monitoring_file,
    scaled_alertmanager_config,
)
from model_monitoring.drift import (
    PSI_DRIFT_THRESHOLD,
    category_drift,
    category_reference,
    feature_drift,
    psi,
    reference_feature,
)
from roadmap_lab.prometheus_time import scaled_rules
from scipy import stats


def test_psi_is_small_on_the_same_distribution_and_large_on_a_shift() -> None:
    rng = np.random.default_rng(1)
    reference = reference_feature(rng.normal(0, 1, 20_000))
    same = feature_drift(reference, rng.normal(0, 1, 2000))
    shifted = feature_drift(reference, rng.normal(0.8, 1, 2000))
    assert same.psi < 0.05 and not same.drifted
    assert shifted.psi > PSI_DRIFT_THRESHOLD and shifted.drifted
    assert shifted.p_value < 1e-6 < same.p_value
    assert same.test == shifted.test == "ks"


def test_ks_equals_scipy_called_directly_on_the_same_windows() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(0, 1, 3000)
    reference = reference_feature(values)
    current = rng.normal(0.1, 1.2, 1500)
    ours = feature_drift(reference, current)
    direct = stats.ks_2samp(values, current, method="asymp")  # sample == all 3000 values
    assert ours.statistic == pytest.approx(direct.statistic)
    assert ours.p_value == pytest.approx(direct.pvalue)


def test_missing_values_are_left_out_of_psi_and_counted_apart() -> None:
    rng = np.random.default_rng(3)
    reference = reference_feature(rng.normal(0, 1, 5000))
    current = rng.normal(0, 1, 1000)
    holed = current.copy()
    holed[:300] = np.nan
    result = feature_drift(reference, holed)
    assert result.missing_rate == pytest.approx(0.3)
    assert result.psi == pytest.approx(psi(reference, current[300:]))


CATEGORIES = ["a", "b", "c"]


def categories(counts: dict[Any, int], seed: int = 0) -> np.ndarray:
    values = np.array([v for v, n in counts.items() for _ in range(n)], dtype=object)
    return np.random.default_rng(seed).permutation(values)


def test_category_psi_is_small_on_the_same_frequencies_and_large_on_a_new_mix() -> None:
    reference = category_reference(categories({"a": 5000, "b": 3000, "c": 2000}), CATEGORIES)
    assert reference.proportions == pytest.approx([0.5, 0.3, 0.2])
    same = category_drift(reference, categories({"a": 1000, "b": 600, "c": 400}, seed=1))
    mixed = category_drift(reference, categories({"a": 400, "b": 600, "c": 1000}, seed=2))
    assert same.psi == pytest.approx(0.0, abs=1e-9) and not same.drifted
    assert mixed.psi > PSI_DRIFT_THRESHOLD and mixed.drifted
    assert mixed.test == "chi2" and mixed.p_value < 1e-6


def test_chi_square_equals_scipy_called_directly() -> None:
    reference = category_reference(categories({"a": 500, "b": 300, "c": 200}), CATEGORIES)
    counts = {"a": 230, "b": 170, "c": 100}
    ours = category_drift(reference, categories(counts))
    direct = stats.chisquare([230, 170, 100], [250, 150, 100])
    assert ours.statistic == pytest.approx(direct.statistic)
    assert ours.p_value == pytest.approx(direct.pvalue)


def test_unknown_and_missing_categories_are_left_out_and_reported_apart() -> None:
    reference = category_reference(categories({"a": 500, "b": 300, "c": 200}), CATEGORIES)
    clean = categories({"a": 250, "b": 150, "c": 100})
    holed = np.concatenate([clean, np.array([None] * 100 + ["zz"] * 400, dtype=object)])
    result = category_drift(reference, holed)
    assert result.missing_rate == pytest.approx(0.1)
    assert result.unknown_rate == pytest.approx(0.4)
    assert result.psi == pytest.approx(category_drift(reference, clean).psi)
    assert result.p_value == pytest.approx(category_drift(reference, clean).p_value)


def test_discrete_reference_merges_tied_bins() -> None:
    reference = reference_feature(np.array([1.0] * 900 + [2.0] * 100))
    assert len(reference.proportions) == len(reference.edges) + 1
    assert sum(reference.proportions) == pytest.approx(1.0)
    assert psi(reference, np.array([1.0] * 90 + [2.0] * 10)) == pytest.approx(0.0, abs=1e-9)


def test_scaled_rules_keep_every_rule_and_pass_promtool(tmp_path: Path) -> None:
    import yaml

    production = load_yaml(monitoring_file(RULES_FILE))
    scaled = scaled_rules(production, 30)
    path = tmp_path / "scaled.yml"
    path.write_text(yaml.safe_dump(scaled), encoding="utf-8")
    check = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    drift = next(
        rule for group in scaled["groups"] for rule in group["rules"]
        if rule.get("alert") == "ModelFeatureDrift"
    )  # fmt: skip
    assert drift["for"] == "10s"  # 5m / 30
    assert production == load_yaml(monitoring_file(RULES_FILE))  # the committed file untouched


def test_scaled_alertmanager_config_points_every_receiver_at_the_local_one() -> None:
    production = load_yaml(monitoring_file("alertmanager.yml"))
    scaled = scaled_alertmanager_config(production, 30, "http://127.0.0.1:5000")
    assert scaled["route"]["group_wait"] == "1s"
    assert scaled["route"]["group_interval"] == "10s"
    urls = [w["url"] for r in scaled["receivers"] for w in r["webhook_configs"]]
    assert urls == ["http://127.0.0.1:5000/oncall", "http://127.0.0.1:5000/model-team"]
