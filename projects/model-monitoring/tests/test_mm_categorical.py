"""Categorical features end to end in one service, by configuration only (nannyml's car-loan data):
the pipeline encodes them, the schema records the categories, the service validates them and
counts unknown ones (served as missing), and the drift job scores them by PSI over category
frequencies and a chi-square test. Also the request path's per-batch metrics (numeric and
categorical inputs) against one library update per value, in both metrics modes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mm_testing import car_loan_held_out, metric_values, wait_for
from model_monitoring.bundle import Bundle, category_values, load_bundle
from model_monitoring.metrics import MULTIPROC_ENV, ServiceMetrics
from model_monitoring.monitor import Monitor
from model_monitoring.predlog import LogTailer
from model_monitoring.service import create_app
from model_monitoring.settings import ProjectSettings
from prometheus_client.parser import text_string_to_metric_families

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


def exposed_samples(metrics: ServiceMetrics) -> dict[tuple[str, Any], float]:
    text = metrics.exposition(None)[0].decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def one_update_per_value(metrics: ServiceMetrics, bundle: Bundle, batch: tuple[Any, ...]) -> None:
    """What observe_batch records, written the library's way: one inc/observe per value."""
    _, numeric, categorical, predicted, confidence = batch
    for index, spec in enumerate(bundle.numeric):
        for value in numeric[:, index]:
            if np.isnan(value):
                metrics.missing.labels(spec.name).inc()
                continue
            if not spec.min <= value <= spec.max:
                metrics.out_of_range.labels(spec.name).inc()
            metrics.feature_value.labels(spec.name).observe(value)
    for spec, values in zip(bundle.categorical, categorical, strict=True):
        for value in values:
            if value is None:
                metrics.missing.labels(spec.name).inc()
            elif value not in (spec.categories or ()):
                metrics.unknown_category.labels(spec.name).inc()
    for label, score in zip(predicted, confidence, strict=True):
        metrics.predicted[int(label)].inc()
        metrics.confidence.observe(float(score))
    metrics.batch_rows.observe(len(predicted))
    metrics.input_rows.inc(len(predicted))


@pytest.mark.parametrize("mode", ["single-process", "multi-process"])
def test_batch_metrics_equal_one_library_update_per_value_and_every_row_is_logged(
    car_loan_bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    from prometheus_client import values

    bundle = load_bundle(car_loan_bundle_dir)
    rng = np.random.default_rng(7)
    held_out = car_loan_held_out()
    batches = []
    for start, rows in ((0, 1), (1, 20), (21, 57)):
        frame = held_out.iloc[start : start + rows]
        numeric = frame[[spec.name for spec in bundle.numeric]].to_numpy(dtype=float)
        numeric[rng.random(numeric.shape) < 0.1] = np.nan  # missing
        numeric[rng.random(numeric.shape) < 0.1] = 1e12  # out of range
        categorical = [list(category_values(frame[spec.name])) for spec in bundle.categorical]
        categorical[0][0] = None
        categorical[-1][-1] = "a category never seen"
        confidence = rng.uniform(0.5, 1.0, rows)
        confidence[:2] = (0.55, 1.0)[: min(rows, 2)]  # on bucket bounds: le is inclusive
        predicted = rng.integers(0, 2, rows)
        ids = [f"{start}-{row}" for row in range(rows)]
        batches.append((ids, numeric, categorical, predicted, confidence))
    samples = []
    for writer in ("monitor", "library"):
        if mode == "multi-process":  # each side its own folder of memory-mapped files
            monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path / writer / "multiproc"))
            (tmp_path / writer / "multiproc").mkdir(parents=True)
            monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())
        categorical_names = [spec.name for spec in bundle.categorical]
        metrics = ServiceMetrics(bundle.feature_names, bundle.classes, categorical_names)
        if writer == "monitor":
            monitor = Monitor(bundle, ProjectSettings(run_dir=tmp_path / writer), metrics)
            for batch in batches:
                monitor.observe_batch(bundle.version, *batch)
            monitor.close()
        else:
            for batch in batches:
                one_update_per_value(metrics, bundle, batch)
        samples.append(exposed_samples(metrics))
    assert samples[0] == pytest.approx(samples[1], rel=1e-12)  # sums added in another order
    assert samples[0][("model_input_rows_total", ())] == 78
    assert samples[0][("model_feature_unknown_category_total",
                       (("feature", bundle.categorical[-1].name),))] >= 1  # fmt: skip
    logged = list(LogTailer(tmp_path / "monitor" / "predictions", "predictions").read_new())
    assert [record["ids"] for record in logged] == [batch[0] for batch in batches]
