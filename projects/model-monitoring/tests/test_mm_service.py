"""The service in-process (one worker): predictions (every request logged and counted), delayed
labels behind an API key, strict input with counted 4xx, body limits while streaming, the
prediction log (rotation, pruning of dead workers' files), the drift job's gauges and its health,
and the bundle written in one step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mm_testing import (
    LABELS_KEY,
    metric_values,
    payload,
    reference_rows,
    train_default_bundle,
    wait_for,
)
from model_monitoring import bundle as bundle_module
from model_monitoring.api import API_KEY_HEADER
from model_monitoring.bundle import BUNDLE_FILE, load_bundle
from model_monitoring.predlog import LogTailer, RotatingJsonLines
from model_monitoring.service import create_app
from model_monitoring.settings import ProjectSettings
from pydantic import SecretStr

KEY = {API_KEY_HEADER: LABELS_KEY}


@pytest.fixture
def settings(bundle_dir: Path, tmp_path: Path) -> ProjectSettings:
    return ProjectSettings(
        run_dir=tmp_path,
        bundle_dir=bundle_dir,
        drift_interval_s=0.1,
        drift_min_rows=50,
        labelled_min_rows=20,
        labels_api_key=SecretStr(LABELS_KEY),
    )


@pytest.fixture
def client(settings: ProjectSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def test_batch_predict_returns_an_id_per_row_and_logs_the_batch(
    client: TestClient, settings: ProjectSettings
) -> None:
    rows = reference_rows(40)
    reply = client.post("/predict", json=payload(rows))
    assert reply.status_code == 200
    body = reply.json()
    ids = [p["id"] for p in body["predictions"]]
    assert len(set(ids)) == 40
    assert all(p["predicted_class"] in ("0", "1") for p in body["predictions"])
    assert all(0.5 <= p["confidence"] <= 1 for p in body["predictions"])
    accuracy = sum(
        int(p["predicted_class"]) == label
        for p, label in zip(body["predictions"], rows["clf_target"], strict=True)
    ) / len(rows)
    assert accuracy > 0.8
    records = list(LogTailer(settings.resolved_log_dir(), "predictions").read_new())
    assert records[0]["ids"] == ids
    assert records[0]["model_version"] == body["model_version"]
    assert records[0]["inputs"]["MedInc"] == pytest.approx(rows["MedInc"].tolist())
    assert metric_values(client, "model_input_rows_total")[()] == 40


def test_every_request_is_logged_and_counted(client: TestClient, settings: ProjectSettings) -> None:
    sizes = [1, 7, 20, 33] * 5
    for seed, size in enumerate(sizes):
        reply = client.post("/predict", json=payload(reference_rows(size, seed=seed)))
        assert reply.status_code == 200
    logged = list(LogTailer(settings.resolved_log_dir(), "predictions").read_new())
    assert [len(record["ids"]) for record in logged] == sizes
    rows = sum(sizes)
    assert len({pred_id for record in logged for pred_id in record["ids"]}) == rows
    assert metric_values(client, "model_input_rows_total")[()] == rows
    assert metric_values(client, "model_predict_batch_rows_count")[()] == len(sizes)
    assert metric_values(client, "model_predict_batch_rows_sum")[()] == rows
    assert metric_values(client, "model_prediction_confidence_count")[()] == rows
    assert sum(metric_values(client, "model_predictions_total").values()) == rows
    assert set(metric_values(client, "model_feature_value_count").values()) == {rows}
    ok = (("endpoint", "/predict"), ("status", "200"))
    assert metric_values(client, "model_http_requests_total")[ok] == len(sizes)
    assert metric_values(client, "model_http_request_duration_seconds_count")[ok] == len(sizes)


BAD_BODIES = {
    "wrong_type": lambda row: {"rows": [{**row, "MedInc": "3.2"}]},
    "wrong_type_bool": lambda row: {"rows": [{**row, "MedInc": True}]},
    "missing_feature": lambda row: {"rows": [{k: v for k, v in row.items() if k != "MedInc"}]},
    "unknown_field": lambda row: {"rows": [{**row, "colour": 1.0}]},
    "unknown_top_level": lambda row: {"rows": [row], "debug": True},
    "oversize_batch": lambda row: {"rows": [row] * 1001},
    "empty_batch": lambda row: {"rows": []},
    "invalid_value": lambda row: {"rows": [{**row, "HouseAge": 12.5}]},
    "not_a_list": lambda row: {"rows": row},
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_input_gets_a_4xx_with_a_message_and_is_counted(client: TestClient, case: str) -> None:
    row = payload(reference_rows(1))["rows"][0]
    reply = client.post("/predict", json=BAD_BODIES[case](row))
    assert reply.status_code == 422
    assert reply.json()["detail"]
    reason = case.removesuffix("_bool").replace("unknown_top_level", "unknown_field")
    reason = reason.replace("not_a_list", "wrong_type")
    counted = metric_values(client, "model_client_errors_total")
    assert counted[(("endpoint", "/predict"), ("reason", reason))] == 1
    assert metric_values(client, "model_input_rows_total")[()] == 0


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b'{"rows": [{"MedInc": NaN}]}', 422, "not_finite"),
        (b'{"rows": [{"MedInc": Infinity}]}', 422, "not_finite"),
        (b'{"rows": [', 400, "invalid_json"),
        (b"x" * 5_000_000, 413, "body_too_large"),
        # No Content-Length: a chunked body is counted as it streams in and cut off at the limit.
        ((b"x" * 100_000 for _ in range(50)), 413, "body_too_large"),
    ],
    ids=["nan", "infinity", "broken_json", "huge", "huge_chunked"],
)
def test_non_json_numbers_broken_json_and_huge_bodies(
    client: TestClient, body: Any, status: int, reason: str
) -> None:
    reply = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == status
    assert reply.json()["detail"]
    assert (
        metric_values(client, "model_client_errors_total")[
            (("endpoint", "/predict"), ("reason", reason))
        ]
        == 1
    )
    statuses = metric_values(client, "model_http_requests_total")
    assert not [labels for labels in statuses if dict(labels)["status"].startswith("5")]


def test_null_is_a_missing_value_that_is_imputed_and_counted(client: TestClient) -> None:
    rows = payload(reference_rows(3))
    rows["rows"][0]["HouseAge"] = None
    rows["rows"][1]["HouseAge"] = None
    assert client.post("/predict", json=rows).status_code == 200
    assert metric_values(client, "model_feature_missing_total")[(("feature", "HouseAge"),)] == 2
    out_of_range = dict(rows["rows"][2], MedInc=1e6)
    assert client.post("/predict", json={"rows": [out_of_range]}).status_code == 200
    assert metric_values(client, "model_feature_out_of_range_total")[(("feature", "MedInc"),)] == 1


def test_delayed_labels_give_accuracy_and_auc(client: TestClient) -> None:
    rows = reference_rows(300, seed=5)
    predictions = client.post("/predict", json=payload(rows)).json()["predictions"]
    labels = [
        {"id": p["id"], "label": int(label)}
        for p, label in zip(predictions, rows["clf_target"], strict=True)
    ]
    assert client.post("/labels", json={"labels": labels}, headers=KEY).status_code == 202
    unknown = {"labels": [{"id": "no-such-id", "label": "1"}]}
    assert client.post("/labels", json=unknown, headers=KEY).status_code == 202
    bad = client.post("/labels", json={"labels": [{"id": "x", "label": 7}]}, headers=KEY)
    assert bad.status_code == 422 and "not one of" in bad.json()["detail"]
    accuracy = wait_for(lambda: metric_values(client, "model_labelled_window_rows")[()] >= 300)
    assert accuracy
    assert metric_values(client, "model_labelled_accuracy")[()] > 0.8
    assert metric_values(client, "model_labelled_auc")[()] > 0.85
    assert wait_for(lambda: metric_values(client, "model_labels_unmatched_total")[()] == 1)


def test_drift_job_scores_a_shifted_feature_above_the_threshold(client: TestClient) -> None:
    rows = reference_rows(400, seed=6)
    client.post("/predict", json=payload(rows.assign(MedInc=rows["MedInc"] * 2)))
    psi = wait_for(
        lambda: metric_values(client, "model_feature_drift_psi").get((("feature", "MedInc"),))
    )
    assert psi > 0.2
    assert metric_values(client, "model_feature_drift_psi")[(("feature", "Latitude"),)] < 0.2
    info = metric_values(client, "model_info")
    assert list(info.values()) == [1.0]


def test_health_and_model_info(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    schema = client.get("/model").json()
    assert [f["name"] for f in schema["features"]][:2] == ["MedInc", "HouseAge"]
    assert {f["type"] for f in schema["features"]} == {"float", "int"}
    assert client.get("/no-such-path").status_code == 404
    assert (
        metric_values(client, "model_http_requests_total")[
            (("endpoint", "unmatched"), ("status", "404"))
        ]
        == 1
    )


def test_instrumentation_off_serves_the_same_predictions(
    settings: ProjectSettings, client: TestClient
) -> None:
    rows = payload(reference_rows(20))
    plain = settings.model_copy(
        update={"instrumentation": False, "run_dir": settings.run_dir / "off"}
    )
    with TestClient(create_app(plain)) as bare:
        off = bare.post("/predict", json=rows).json()["predictions"]
        assert "model_input_rows_total 0.0" in bare.get("/metrics").text
    on = client.post("/predict", json=rows).json()["predictions"]
    assert [p["probability"] for p in off] == [p["probability"] for p in on]
    assert not (settings.run_dir / "off" / "predictions").exists() or not list(
        (settings.run_dir / "off" / "predictions").glob("predictions-*.jsonl")
    )


def test_prediction_log_rotates_and_the_tailer_loses_nothing(tmp_path: Path) -> None:
    writer = RotatingJsonLines(tmp_path, "predictions", max_bytes=10_000, backups=100)
    tailer = LogTailer(tmp_path, "predictions")
    seen = []
    for batch in range(300):
        writer.write({"ids": [f"b{batch}"], "pad": "x" * 200})
        if batch % 37 == 0:
            seen += [r["ids"][0] for r in tailer.read_new()]
    writer.close()
    seen += [r["ids"][0] for r in tailer.read_new()]
    assert seen == [f"b{batch}" for batch in range(300)]
    assert len(list(tmp_path.glob("predictions-*-*.jsonl"))) > 3  # rotated files
    kept = RotatingJsonLines(tmp_path / "few", "labels", max_bytes=10_000, backups=2)
    for batch in range(300):
        kept.write({"ids": [f"b{batch}"], "pad": "x" * 200})
    assert len(list((tmp_path / "few").glob("labels-*-*.jsonl"))) == 2
    last = json.loads((tmp_path / "few").joinpath(kept.path.name).read_text().splitlines()[-1])
    assert last["ids"] == ["b299"]


def test_labels_need_the_api_key(client: TestClient, settings: ProjectSettings) -> None:
    body = {"labels": [{"id": "a", "label": 1}]}
    for headers in ({}, {API_KEY_HEADER: "wrong"}, {API_KEY_HEADER: LABELS_KEY[:-1]}):
        refused = client.post("/labels", json=body, headers=headers)
        assert refused.status_code == 401 and API_KEY_HEADER in refused.json()["detail"]
    errors = metric_values(client, "model_client_errors_total")
    assert errors[(("endpoint", "/labels"), ("reason", "unauthorized"))] == 3
    assert metric_values(client, "model_labels_received_total")[()] == 0
    assert client.post("/labels", json=body, headers=KEY).status_code == 202
    # Without a configured key nobody may write labels, and the answer says why.
    unset = {"labels_api_key": None, "run_dir": settings.run_dir / "keyless"}
    keyless = settings.model_copy(update=unset)
    with TestClient(create_app(keyless)) as bare:
        disabled = bare.post("/labels", json=body, headers=KEY)
        assert disabled.status_code == 503
        assert "LABELS_API_KEY" in disabled.json()["detail"]


def test_the_drift_job_counts_failed_runs_and_keeps_its_last_success(
    client: TestClient, settings: ProjectSettings, tmp_path: Path
) -> None:
    bundle_dir = train_default_bundle(tmp_path / "bundle")  # a copy this test may break
    broken = settings.model_copy(update={"bundle_dir": bundle_dir, "run_dir": tmp_path / "run"})
    with TestClient(create_app(broken)) as service:
        interval = wait_for(lambda: metric_values(service, "model_drift_interval_seconds")[()])
        assert interval == pytest.approx(0.1)
        healthy = wait_for(
            lambda: metric_values(service, "model_drift_last_success_timestamp_seconds")[()]
        )
        assert metric_values(service, "model_drift_job_failures_total")[()] == 0
        (bundle_dir / BUNDLE_FILE).write_text("{ not json")  # a broken rebaseline
        wait_for(lambda: metric_values(service, "model_drift_job_failures_total")[()] >= 3)
        last = metric_values(service, "model_drift_last_success_timestamp_seconds")[()]
        assert last < time.time() - 0.25  # stale: no success since the break
        assert last >= healthy


def test_a_dead_workers_log_is_pruned_once_consumed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    files = [f"predictions-{dead_pid}.jsonl", f"predictions-{dead_pid}-1.jsonl",
             f"predictions-{os.getpid()}.jsonl"]  # fmt: skip
    for age, name in enumerate(files):  # the tailer reads the oldest first
        (tmp_path / name).write_text(f'{{"ids": ["{name}"]}}\n')
        os.utime(tmp_path / name, (1000 + age, 1000 + age))
    tailer = LogTailer(tmp_path, "predictions")
    reading = tailer.read_new()
    assert next(reading)["ids"] == [files[0]]
    assert (tmp_path / files[0]).exists()  # deleted only once the caller took every line
    assert [r["ids"][0] for r in reading] == files[1:]
    remaining = sorted(path.name for path in tmp_path.glob("*.jsonl"))
    assert remaining == [f"predictions-{os.getpid()}.jsonl"]  # the live writer's file stays


def test_the_bundle_is_written_to_a_new_folder_and_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = train_default_bundle(tmp_path / "bundle")
    first = load_bundle(folder)
    train_default_bundle(folder)  # again, over the old one
    second = load_bundle(folder)
    assert second.model_sha256 == first.model_sha256  # same data, same model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no leftovers

    def failing_rename(source: Any, target: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(bundle_module.os, "rename", failing_rename)
    with pytest.raises(OSError, match="disk full"):
        train_default_bundle(folder)
    assert load_bundle(folder).version == second.version  # the old bundle, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
