"""Categorical features end to end in one service, by configuration only (nannyml's car-loan data):
the pipeline encodes them, the schema records the categories, the service validates them and
counts unknown ones (served as missing), and the drift job scores them by PSI over category
frequencies and a chi-square test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mm_testing import car_loan_held_out, metric_values, wait_for
from model_monitoring.bundle import category_values, load_bundle
from model_monitoring.predlog import LogTailer
from model_monitoring.service import create_app
from model_monitoring.settings import ProjectSettings

CATEGORICAL = ["salary_range", "repaid_loan_on_prev_car", "size_of_downpayment"]


def rows_payload(frame: pd.DataFrame, features: list[str]) -> dict[str, Any]:
    prepared = frame[features].copy()
    for name in CATEGORICAL:
        prepared[name] = category_values(frame[name])
    return {"rows": prepared.astype(object).where(prepared.notna(), None).to_dict("records")}


@pytest.fixture
def settings(car_loan_bundle_dir: Path, tmp_path: Path) -> ProjectSettings:
    return ProjectSettings(
        run_dir=tmp_path, bundle_dir=car_loan_bundle_dir, drift_interval_s=0.1, drift_min_rows=50
    )


@pytest.fixture
def client(settings: ProjectSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def test_the_schema_records_the_categories(car_loan_bundle_dir: Path, client: TestClient) -> None:
    bundle = load_bundle(car_loan_bundle_dir)
    assert [spec.name for spec in bundle.categorical] == CATEGORICAL
    schema = {f["name"]: f for f in client.get("/model").json()["features"]}
    assert schema["salary_range"]["categories"] == ["0 - 20K €", "20K - 40K €", "40K - 60K €",
                                                    "60K+ €"]  # fmt: skip
    assert schema["repaid_loan_on_prev_car"]["categories"] == ["False", "True"]  # a boolean
    assert schema["car_value"]["type"] == "int" and schema["car_value"]["categories"] is None


def test_categories_are_served_unknown_ones_counted_and_bad_types_refused(
    client: TestClient, car_loan_bundle_dir: Path, settings: ProjectSettings
) -> None:
    features = load_bundle(car_loan_bundle_dir).feature_names
    held_out = car_loan_held_out().head(200)
    body = rows_payload(held_out, features)
    reply = client.post("/predict", json=body)
    assert reply.status_code == 200
    predicted = [int(float(p["predicted_class"])) for p in reply.json()["predictions"]]
    accuracy = sum(p == y for p, y in zip(predicted, held_out["repaid"], strict=True)) / 200
    assert accuracy > 0.85  # the encoded categories carry signal
    odd = [dict(row) for row in body["rows"][:3]]
    odd[0]["size_of_downpayment"] = "50%"  # a category the model never saw
    odd[1]["salary_range"] = None  # missing
    served = client.post("/predict", json={"rows": odd})
    assert served.status_code == 200 and len(served.json()["predictions"]) == 3
    unknown = metric_values(client, "model_feature_unknown_category_total")
    assert unknown[(("feature", "size_of_downpayment"),)] == 1
    assert unknown[(("feature", "salary_range"),)] == 0
    assert metric_values(client, "model_feature_missing_total")[(("feature", "salary_range"),)] == 1
    for bad, reason in ((3, "wrong_type"), (True, "wrong_type"), ("x" * 500, "invalid_value")):
        refused = client.post("/predict", json={"rows": [{**odd[2], "salary_range": bad}]})
        assert refused.status_code == 422 and "salary_range" in refused.json()["detail"]
        errors = metric_values(client, "model_client_errors_total")
        assert errors[(("endpoint", "/predict"), ("reason", reason))] >= 1
    logged = list(LogTailer(settings.resolved_log_dir(), "predictions").read_new())
    assert logged[1]["inputs"]["size_of_downpayment"][0] == "50%"  # as sent, for the drift job


def test_the_drift_job_scores_categories_by_psi_and_chi_square(
    client: TestClient, car_loan_bundle_dir: Path
) -> None:
    features = load_bundle(car_loan_bundle_dir).feature_names
    held_out = car_loan_held_out().head(600)
    mixed = held_out.assign(salary_range="60K+ €")  # every row in the top range (10% before)
    assert client.post("/predict", json=rows_payload(mixed, features)).status_code == 200
    key = (("feature", "salary_range"),)
    psi = wait_for(lambda: metric_values(client, "model_feature_drift_psi").get(key))
    assert psi > 0.2
    assert metric_values(client, "model_feature_drift_chi2_p_value")[key] < 1e-6
    calm = (("feature", "size_of_downpayment"),)
    assert metric_values(client, "model_feature_drift_psi")[calm] < 0.1
    assert metric_values(client, "model_feature_drift_chi2_p_value")[calm] > 1e-3
    # KS for the numeric features only, chi-square for the categorical ones.
    assert key not in metric_values(client, "model_feature_drift_ks_p_value")
    assert (("feature", "car_value"),) in metric_values(client, "model_feature_drift_ks_p_value")
