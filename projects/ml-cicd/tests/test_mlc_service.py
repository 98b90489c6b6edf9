"""The HTTP service as users meet it: a real uvicorn on 127.0.0.1 serving model folders trained
for the session. Predictions, validation errors (4xx with a message, never a 500), the admin
reload (auth, refusals that keep the old model, switches under traffic), metrics, timeouts,
startup failure, SIGTERM, and several workers sharing their metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from ml_cicd.service import create_app
from ml_cicd.settings import ServiceSettings
from mlc_testing import (
    GREAT_TEXT,
    OTHER_TEXT,
    SLOW_DELAY_S,
    ModelFolders,
    RunningService,
    allow_reloads_from,
    metric_samples,
    metric_value,
    reload,
    running_service,
    service_env,
    start_service_process,
)
from roadmap_lab.services import ServiceError

MAX_BATCH = 8
MAX_TEXT_CHARS = 200
MAX_BODY_BYTES = 4096
PREDICT_TIMEOUT_S = 1.5


@pytest.fixture(scope="module")
def server(
    model_folders: ModelFolders, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    folder = tmp_path_factory.mktemp("service")
    env = service_env(
        folder / "run",
        model_folders.good,
        reload_folders=allow_reloads_from(tmp_path_factory.getbasetemp()),
        max_batch=MAX_BATCH,
        max_text_chars=MAX_TEXT_CHARS,
        max_body_bytes=MAX_BODY_BYTES,
        predict_timeout_s=PREDICT_TIMEOUT_S,
    )
    with running_service(folder, env) as service:
        yield service


@pytest.fixture(scope="module")
def client(server: RunningService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture
def restore_good(client: httpx.Client, model_folders: ModelFolders) -> Iterator[None]:
    """For tests that switch models: the good model serves again afterwards."""
    yield
    if client.get("/model").json()["uri"] != str(model_folders.good):
        assert reload(client, model_folders.good).status_code == 200


def _predict(client: httpx.Client, texts: list[str]) -> httpx.Response:
    return client.post("/predict", json={"texts": texts})


def test_predict_answers_a_label_and_probability_per_text(
    client: httpx.Client, model_folders: ModelFolders
) -> None:
    texts = [GREAT_TEXT, OTHER_TEXT, GREAT_TEXT]
    response = _predict(client, texts)
    assert response.status_code == 200, response.text
    body = response.json()
    predictions = body["predictions"]
    assert len(predictions) == len(texts)
    assert [p["label"] for p in predictions] == ["great", "other", "great"]
    for prediction in predictions:
        assert 0.0 <= prediction["p_great"] <= 1.0
        assert prediction["label"] == ("great" if prediction["p_great"] >= 0.5 else "other")
    assert predictions[0]["p_great"] == pytest.approx(predictions[2]["p_great"])
    assert body["model"] == {
        "name": model_folders.good.name,
        "version": None,
        "alias": None,
        "data_version": model_folders.data_version,
    }


def test_model_and_health_endpoints(client: httpx.Client, model_folders: ModelFolders) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["model"]["uri"] == str(model_folders.good)
    info = client.get("/model").json()
    assert info["uri"] == str(model_folders.good)
    assert info["data_version"] == model_folders.data_version
    assert info["metrics"]["macro_f1"] == pytest.approx(model_folders.macro_f1)
    assert info["model_type"] == "tfidf-logistic-regression"
    assert info["model_uuid"]


def _chunks(size: int) -> Iterator[bytes]:
    """A body without Content-Length (chunked): only its streamed size can be checked."""
    yield b'{"texts": ["'
    for _ in range(size // 1024):
        yield b"a" * 1024
    yield b'"]}'


JSON = {"content-type": "application/json"}
INVALID_REQUESTS = {
    "empty list": (json.dumps({"texts": []}), JSON, 422),
    "too many texts": (json.dumps({"texts": ["good"] * (MAX_BATCH + 1)}), JSON, 422),
    "not a string": (json.dumps({"texts": ["fine", 3]}), JSON, 422),
    "a number as string list": (json.dumps({"texts": "just one"}), JSON, 422),
    "empty text": (json.dumps({"texts": ["fine", ""]}), JSON, 422),
    "text too long": (json.dumps({"texts": ["a" * (MAX_TEXT_CHARS + 1)]}), JSON, 422),
    "extra field": (json.dumps({"texts": ["fine"], "model": "x"}), JSON, 422),
    "missing field": (json.dumps({"text": ["fine"]}), JSON, 422),
    "not an object": (json.dumps(["fine"]), JSON, 422),
    "null": ("null", JSON, 422),
    "no body": ("", JSON, 422),
    "invalid JSON": ('{"texts": ["unclosed', JSON, 400),
    "not JSON content type": (json.dumps({"texts": ["fine"]}), {"content-type": "text/plain"}, 422),
    "oversized body": (json.dumps({"texts": ["a" * MAX_BODY_BYTES]}), JSON, 413),
    "oversized chunked body": (None, JSON, 413),
}


@pytest.mark.parametrize("case", INVALID_REQUESTS, ids=list(INVALID_REQUESTS))
def test_invalid_requests_get_4xx_with_a_message(client: httpx.Client, case: str) -> None:
    body, headers, expected = INVALID_REQUESTS[case]
    content = _chunks(2 * MAX_BODY_BYTES) if body is None else body.encode()
    response = client.post("/predict", content=content, headers=headers)
    assert response.status_code == expected, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    if expected == 422:
        assert response.json()["errors"], "a validation error lists what is wrong"
    # The service is still fine.
    assert _predict(client, ["fine"]).status_code == 200


def test_unknown_route_and_method_are_json_4xx(client: httpx.Client) -> None:
    assert client.get("/nope").status_code == 404
    assert client.get("/nope").json()["detail"]
    wrong_method = client.get("/predict")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["detail"]


def test_admin_reload_needs_the_api_key(client: httpx.Client, model_folders: ModelFolders) -> None:
    before = client.get("/model").json()
    missing = client.post("/admin/reload", json={"model_uri": str(model_folders.second)})
    assert missing.status_code == 401
    assert "X-API-Key" in missing.json()["detail"]
    wrong = reload(client, model_folders.second, key="not-the-key")
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "wrong X-API-Key"
    # A header value that is not ASCII is compared as bytes: 401, not a 500.
    odd = client.post(
        "/admin/reload", json={}, headers=[(b"X-API-Key", "schlüssel".encode("latin-1"))]
    )
    assert odd.status_code == 401
    assert client.get("/model").json() == before


def test_admin_reload_is_disabled_without_a_configured_key(model_folders: ModelFolders) -> None:
    # The app without its lifespan: nothing loaded, no key configured.
    app = create_app(ServiceSettings(model_uri=str(model_folders.good), api_key=None))
    http = TestClient(app)
    response = http.post("/admin/reload", json={}, headers={"X-API-Key": "anything"})
    assert response.status_code == 503
    assert "ML_CICD_API_KEY" in response.json()["detail"]
    # Before a model is loaded the service is alive but not ready.
    assert http.get("/health/live").status_code == 200
    for path in ("/health/ready", "/model"):
        assert http.get(path).status_code == 503
        assert http.get(path).json()["detail"]
    assert http.post("/predict", json={"texts": ["fine"]}).status_code == 503


@pytest.mark.parametrize(
    ("folder", "reason"),
    [
        ("broken", "cannot load model"),
        ("nan", "smoke prediction"),
        ("missing", "no model folder"),
        ("models:/no-such-model@champion", "needs a registry"),
    ],
)
def test_a_failed_reload_keeps_the_old_model_serving(
    client: httpx.Client, model_folders: ModelFolders, tmp_path: Path, folder: str, reason: str
) -> None:
    uri = {
        "broken": model_folders.broken,
        "nan": model_folders.nan,
        "missing": tmp_path / "missing",
    }.get(folder, folder)
    before = client.get("/model").json()
    response = reload(client, uri)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["switched"] is False
    assert reason in body["reason"]
    assert body["detail"] == body["reason"]
    assert body["model"] == {k: v for k, v in before.items() if k not in ("worker_pid", "workers")}
    assert body["workers"] == before["workers"]
    assert client.get("/model").json() == before
    assert _predict(client, [GREAT_TEXT]).json()["predictions"][0]["label"] == "great"


def test_reload_switches_to_a_good_second_model(
    client: httpx.Client, model_folders: ModelFolders, restore_good: None
) -> None:
    before = client.get("/model").json()
    response = reload(client, model_folders.second)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["switched"] is True
    assert body["model"]["uri"] == str(model_folders.second)
    now = client.get("/model").json()
    assert now["uri"] == str(model_folders.second)
    assert now["model_uuid"] != before["model_uuid"]
    assert now["loaded_at"] > before["loaded_at"]
    assert _predict(client, [OTHER_TEXT]).json()["model"]["name"] == model_folders.second.name
    # No URI: reload what is serving (a registry alias may have moved).
    again = reload(client, None)
    assert again.status_code == 200
    assert again.json()["model"]["uri"] == str(model_folders.second)
    assert again.json()["model"]["loaded_at"] > now["loaded_at"]


def test_reloads_under_traffic_fail_no_request(
    server: RunningService, client: httpx.Client, model_folders: ModelFolders, restore_good: None
) -> None:
    stop = threading.Event()
    failures: list[str] = []
    served_by: list[set[str]] = [set() for _ in range(4)]
    counts = [0] * 4

    def hammer(index: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while not stop.is_set():
                try:
                    response = _predict(http, [GREAT_TEXT, OTHER_TEXT])
                except httpx.HTTPError as error:
                    failures.append(f"{type(error).__name__}: {error}")
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text}")
                    continue
                body = response.json()
                if [p["label"] for p in body["predictions"]] != ["great", "other"]:
                    failures.append(f"wrong labels: {body}")
                served_by[index].add(body["model"]["name"])
                counts[index] += 1

    threads = [threading.Thread(target=hammer, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    try:
        for target in (model_folders.second, model_folders.good, model_folders.second):
            time.sleep(0.4)  # traffic on the model serving before this reload
            response = reload(client, target)
            assert response.status_code == 200, response.text
            assert response.json()["model"]["uri"] == str(target)
        time.sleep(0.4)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == []
    assert min(counts) > 0, counts
    assert set().union(*served_by) == {model_folders.good.name, model_folders.second.name}


def test_a_second_reload_while_one_runs_gets_409_then_slow_predictions_time_out(
    server: RunningService, client: httpx.Client, model_folders: ModelFolders, restore_good: None
) -> None:
    first: list[httpx.Response] = []
    loading = threading.Thread(target=lambda: first.append(reload(client, model_folders.slow)))
    loading.start()
    # The slow model's smoke prediction takes 2 * SLOW_DELAY_S: wait until the reload is in it.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        in_progress = metric_value(
            client.get("/metrics").text,
            "mlcicd_http_requests_in_progress",
            route="/admin/reload",
        )
        if in_progress >= 1:
            break
        time.sleep(0.02)
    time.sleep(0.2)
    second = reload(client, model_folders.second)
    loading.join(timeout=30)
    assert second.status_code == 409, second.text
    assert second.json()["switched"] is False
    assert "another reload is running" in second.json()["reason"]
    assert first[0].status_code == 200, first[0].text
    assert client.get("/model").json()["uri"] == str(model_folders.slow)

    # The slow model: one text fits in the prediction timeout, a batch does not.
    assert _predict(client, ["fine"]).status_code == 200
    started = time.monotonic()
    timed_out = _predict(client, ["fine"] * MAX_BATCH)
    assert timed_out.status_code == 504
    assert "longer than" in timed_out.json()["detail"]
    assert time.monotonic() - started < MAX_BATCH * SLOW_DELAY_S
    metrics = client.get("/metrics").text
    assert metric_value(metrics, "mlcicd_model_reloads_total", outcome="busy") >= 1
    assert metric_value(metrics, "mlcicd_http_requests_total", route="/predict", status="504") >= 1


def test_a_reload_loads_from_the_registry_or_an_allowed_folder_only(
    client: httpx.Client, model_folders: ModelFolders, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A good model, but outside the allowed folders (the test's base temp folder): refused
    # before anything loads it.
    outside = Path(tempfile.mkdtemp(prefix="ml-cicd-outside-"))
    try:
        shutil.copytree(model_folders.second, outside / "model")
        allowed = tmp_path_factory.mktemp("allowed")
        (allowed / "escape").symlink_to(outside / "model")
        refused = {
            str(outside / "model"): "not under a folder allowed for reloads",
            str(allowed / ".." / ".." / outside.name / "model"): "not under a folder allowed",
            str(allowed / "escape"): "not under a folder allowed",  # a symlink out of it
            "runs:/0123456789abcdef/model": "registry models only",
            "s3://bucket/model": "registry models only",
            "models:/name/1/extra": "cannot read model URI",
        }
        before = client.get("/model").json()
        for uri, reason in refused.items():
            response = reload(client, uri)
            assert response.status_code == 422, (uri, response.text)
            assert reason in response.json()["reason"], (uri, response.text)
            assert response.json()["switched"] is False
        assert client.get("/model").json() == before
    finally:
        shutil.rmtree(outside)


def test_a_full_prediction_queue_answers_503_at_once(
    model_folders: ModelFolders, tmp_path: Path
) -> None:
    # Two slots; each slow request (8 texts) holds one for 4 s, well within its timeout.
    env = service_env(
        tmp_path / "run", model_folders.slow, max_pending_predictions=2, predict_timeout_s=30
    )
    with running_service(tmp_path, env) as service, httpx.Client(base_url=service.url) as client:
        slow_replies: list[httpx.Response] = []
        senders = [httpx.Client(base_url=service.url, timeout=30) for _ in range(2)]
        threads = [
            threading.Thread(target=lambda c=c: slow_replies.append(_predict(c, ["x"] * 8)))
            for c in senders
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until both slots are taken
            metrics = client.get("/metrics").text
            if metric_value(metrics, "mlcicd_http_requests_in_progress", route="/predict") >= 2:
                break
            time.sleep(0.02)
        shed = _predict(client, ["one more"])
        replies_before_the_503 = len(slow_replies)
        for thread in threads:
            thread.join(timeout=30)
        for sender in senders:
            sender.close()
        assert shed.status_code == 503, shed.text
        assert shed.headers["Retry-After"] == "1"
        assert "busy: 2 predictions already waiting or running" in shed.json()["detail"]
        assert replies_before_the_503 == 0  # refused at once, not after waiting for a slot
        assert [r.status_code for r in slow_replies] == [200, 200]
        assert metric_value(client.get("/metrics").text, "mlcicd_predictions_shed_total") == 1
        # The slots are free again.
        assert _predict(client, ["fine"]).status_code == 200


def test_metrics_count_requests_predictions_and_reloads(
    client: httpx.Client, model_folders: ModelFolders
) -> None:
    before = client.get("/metrics").text
    assert _predict(client, [GREAT_TEXT, OTHER_TEXT, GREAT_TEXT]).status_code == 200
    assert client.post("/predict", json={"texts": []}).status_code == 422
    after_response = client.get("/metrics")
    assert after_response.headers["content-type"].startswith("text/plain")
    after = after_response.text

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert delta("mlcicd_predictions_total", label="great") == 2
    assert delta("mlcicd_predictions_total", label="other") == 1
    assert delta("mlcicd_http_requests_total", route="/predict", status="200") == 1
    assert delta("mlcicd_http_requests_total", route="/predict", status="422") == 1
    assert delta("mlcicd_http_request_duration_seconds_count", route="/predict") == 2
    assert delta("mlcicd_predict_batch_size_count") == 1
    assert delta("mlcicd_predict_batch_size_sum") == 3
    assert delta("mlcicd_p_great_count") == 3
    serving = [labels for labels, value in metric_samples(after, "mlcicd_model_info") if value == 1]
    assert [labels["uri"] for labels in serving] == [str(model_folders.good)]
    assert serving[0]["data_version"] == model_folders.data_version
    outcomes = {
        labels["outcome"] for labels, _ in metric_samples(after, "mlcicd_model_reloads_total")
    }
    assert outcomes == {"switched", "failed", "busy", "timeout"}


def test_startup_fails_with_the_reason_when_the_model_does_not_load(
    model_folders: ModelFolders, tmp_path: Path
) -> None:
    # uvicorn's exit code for a failed startup: 3.
    with pytest.raises(ServiceError, match="exited with code 3") as failure:
        start_service_process(tmp_path, service_env(tmp_path / "run", model_folders.broken))
    assert "ModelLoadError: cannot load model" in str(failure.value)


def test_sigterm_finishes_the_request_in_flight_and_exits_0(
    model_folders: ModelFolders, tmp_path: Path
) -> None:
    env = service_env(tmp_path / "run", model_folders.slow, predict_timeout_s=30)
    service = start_service_process(tmp_path, env)
    try:
        replies: list[httpx.Response] = []
        request = threading.Thread(
            target=lambda: replies.append(
                httpx.post(f"{service.url}/predict", json={"texts": ["a", "b"]}, timeout=30)
            )
        )
        request.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            metrics = httpx.get(f"{service.url}/metrics", timeout=5).text
            if metric_value(metrics, "mlcicd_http_requests_in_progress", route="/predict") >= 1:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the prediction never started")
        os.kill(service.process.pid, signal.SIGTERM)
        request.join(timeout=30)
        assert replies and replies[0].status_code == 200, replies
        deadline = time.monotonic() + 20
        while service.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.process.poll() == 0, service.process.log_tail()
        log = service.process.log_tail(200)
        assert "model released" in log
        assert "Traceback" not in log
    finally:
        service.process.stop()


def _fresh_connection_model(service: RunningService) -> dict[str, Any]:
    return httpx.get(f"{service.url}/model", timeout=30).json()


@pytest.mark.slow
def test_two_workers_switch_models_together_and_share_their_metrics(
    model_folders: ModelFolders, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    env = service_env(
        run_dir, model_folders.good, reload_folders=allow_reloads_from(model_folders.root)
    )
    service = start_service_process(tmp_path, env, workers=2)
    try:
        with httpx.Client(base_url=service.url, timeout=60) as http:
            switched = reload(http, model_folders.second)
            assert switched.status_code == 200, switched.text
            workers = switched.json()["workers"]
            assert len(workers) == 2 and len({w["pid"] for w in workers}) == 2
            assert {(w["uri"], w["generation"]) for w in workers} == {
                (str(model_folders.second), 1)
            }
            # Every reply after the 200 comes from the new model, whichever worker answers:
            # fresh connections until both workers have answered (the kernel may hand many
            # connections in a row to one worker).
            answered: dict[int, str] = {}
            sent, deadline = 0, time.monotonic() + 120
            while len(answered) < 2 and time.monotonic() < deadline:
                for _ in range(10):
                    reply = httpx.post(f"{service.url}/predict", json={"texts": ["x", "y"]})
                    assert reply.status_code == 200
                    assert reply.json()["model"]["name"] == model_folders.second.name
                    info = _fresh_connection_model(service)
                    answered[info["worker_pid"]] = info["uri"]
                sent += 10
            assert answered == {w["pid"]: str(model_folders.second) for w in workers}

            # A model one worker cannot load: no worker switches, the reply names the worker.
            refused = reload(http, model_folders.loads_once)
            assert refused.status_code == 422, refused.text
            assert re.search(r"worker \d+: cannot load model", refused.json()["reason"])
            assert "loaded once already" in refused.json()["reason"]
            assert {(w["uri"], w["generation"]) for w in refused.json()["workers"]} == {
                (str(model_folders.second), 1)
            }
            for _ in range(10):
                assert _fresh_connection_model(service)["uri"] == str(model_folders.second)

            # The counts of both workers add up: two texts per request.
            metrics = http.get("/metrics").text
            serving = {
                labels["pid"]
                for labels, value in metric_samples(metrics, "mlcicd_model_info")
                if value == 1 and labels["uri"] == str(model_folders.second)
            }
            assert len(serving) == 2  # one model-info series per worker
            assert metric_value(metrics, "mlcicd_predictions_total") == 2 * sent
            multiproc_dirs = list(run_dir.glob("prometheus-multiproc-*"))
            assert len(multiproc_dirs) == 1 and any(multiproc_dirs[0].iterdir())
    finally:
        code = service.process.stop()
    assert code == 0, service.process.log_tail()
    assert not list(run_dir.glob("prometheus-multiproc-*"))
    assert not list(run_dir.glob("workers-*"))
