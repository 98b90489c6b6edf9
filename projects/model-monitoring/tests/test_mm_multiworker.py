"""Two uvicorn workers in multi-process mode: counts combine across workers, one worker's drift
job publishes the gauges, the exposition holds exactly the catalogued metrics, and when the
worker running the job dies another takes the job over and prunes the dead one's log file."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from mm_testing import LABELS_KEY, payload, reference_rows
from model_monitoring.api import API_KEY_HEADER
from model_monitoring.metrics import CATEGORICAL_METRIC_NAMES, METRIC_NAMES, MULTIPROC_ENV
from prometheus_client.parser import text_string_to_metric_families
from roadmap_lab.services import uvicorn_app

WINDOW_ROWS = 2000

pytestmark = pytest.mark.slow


def samples(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    reply = httpx.get(f"{url}/metrics", timeout=10)
    assert reply.status_code == 200  # served directly, no 307 to /metrics/
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            found.setdefault(sample.name, {})[key] = sample.value
    return found


def test_two_workers_share_metrics_and_one_runs_the_drift_job(
    bundle_dir: Path, tmp_path: Path
) -> None:
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    env = {
        MULTIPROC_ENV: str(multiproc),
        "MODEL_MONITORING_BUNDLE_DIR": str(bundle_dir),
        "MODEL_MONITORING_LOG_DIR": str(tmp_path / "predictions"),
        "MODEL_MONITORING_DRIFT_INTERVAL_S": "0.2",
        "MODEL_MONITORING_DRIFT_MIN_ROWS": "100",
        "MODEL_MONITORING_LABELLED_MIN_ROWS": "50",
        "MODEL_MONITORING_LABELS_API_KEY": LABELS_KEY,
        "MODEL_MONITORING_DRIFT_WINDOW_ROWS": str(WINDOW_ROWS),
        "MODEL_MONITORING_LABELLED_WINDOW_ROWS": str(WINDOW_ROWS),
    }
    with uvicorn_app(
        "model_monitoring.service:create_app", tmp_path / "service", factory=True, workers=2,
        env=env, ready_path="/health/ready",
    ) as url, httpx.Client(base_url=url, timeout=30) as client:  # fmt: skip
        # A fresh connection per request, until both workers have served some (each writes its
        # own prediction log file): the kernel spreads new connections over the workers.
        requests = 0
        log_files = tmp_path / "predictions"
        while requests < 40 or (
            len(list(log_files.glob("predictions-*.jsonl"))) < 2 and requests < 400
        ):
            rows = reference_rows(25, seed=requests)
            requests += 1
            reply = client.post("/predict", json=payload(rows), headers={"Connection": "close"})
            assert reply.status_code == 200
            labels = [
                {"id": p["id"], "label": int(y)}
                for p, y in zip(reply.json()["predictions"], rows["clf_target"], strict=True)
            ]
            answer = client.post(
                "/labels", json={"labels": labels}, headers={API_KEY_HEADER: LABELS_KEY}
            )
            assert answer.status_code == 202
        assert client.post("/predict", json={"rows": []}).status_code == 422
        assert len(list(log_files.glob("predictions-*.jsonl"))) == 2
        # Both windows keep the last WINDOW_ROWS rows (more than 80 requests can be needed before
        # the kernel gives both workers a connection).
        windowed = min(requests * 25, WINDOW_ROWS)
        found = {}
        for _ in range(100):
            found = samples(url)
            if found.get("model_labelled_window_rows", {}).get((), 0) >= windowed:
                break
            time.sleep(0.2)
        assert found["model_input_rows_total"][()] == requests * 25
        ok = (("endpoint", "/predict"), ("status", "200"))
        assert found["model_http_requests_total"][ok] == requests
        assert (
            found["model_client_errors_total"][
                (("endpoint", "/predict"), ("reason", "empty_batch"))
            ]
            == 1
        )
        # Every label found its prediction, although the two were logged by different workers.
        assert found["model_labels_unmatched_total"][()] == 0
        assert found["model_labelled_window_rows"][()] == windowed
        assert found["model_labelled_accuracy"][()] > 0.8
        assert 0 <= found["model_feature_drift_psi"][(("feature", "MedInc"),)] < 0.2
        assert found["model_drift_window_rows"][()] == windowed
        # One drift job (a file lock elects it), in one of the two workers.
        workers = {path.stem.split("-")[1] for path in log_files.glob("predictions-*.jsonl")}
        holder = (log_files / ".drift-job.lock").read_text().strip()
        assert holder in workers
        assert len(found["model_info"]) == 1
        assert set(found) == METRIC_NAMES - CATEGORICAL_METRIC_NAMES  # housing: numbers only
        assert found["model_drift_job_failures_total"][()] == 0

        # The worker running the job dies: the other takes the job over, reads the dead
        # worker's log once more (its window is its own) and then deletes that file.
        os.kill(int(holder), signal.SIGKILL)
        dead_log = log_files / f"predictions-{holder}.jsonl"
        deadline = time.monotonic() + 30
        while dead_log.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not dead_log.exists(), "the dead worker's log was not pruned"
        assert (log_files / ".drift-job.lock").read_text().strip() != holder
        found = samples(url)
        assert found["model_drift_window_rows"][()] == windowed
