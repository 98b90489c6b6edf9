"""model-monitoring's image: the default bundle baked in, and the service (2 workers, multi-process
metrics) started inside the image predicts, takes labels and exports its metrics when called from
outside. The machinery: project_images.py."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from project_images import ImageCheck, Service, Smoke, check_project_image, post_json

# POST /labels needs an API key (issue 21); the service in the image gets this one.
LABELS_KEY = "image-test-labels-key"
ROWS = [
    {"MedInc": 8.3, "HouseAge": 41, "AveRooms": 6.9, "AveBedrms": 1.0, "Population": 322,
     "AveOccup": 2.5, "Latitude": 37.9, "Longitude": -122.2},
    {"MedInc": 1.5, "HouseAge": 20, "AveRooms": 4.0, "AveBedrms": 1.1, "Population": 1500,
     "AveOccup": 3.5, "Latitude": 34.0, "Longitude": -118.3},
]  # fmt: skip


def _predict_label_and_scrape(base_url: str) -> None:
    answer = post_json(f"{base_url}/predict", {"rows": ROWS})
    predictions = answer["predictions"]
    assert len(predictions) == 2, answer
    assert all(0.5 <= p["confidence"] <= 1.0 for p in predictions), answer
    labels = {"labels": [{"id": p["id"], "label": 1} for p in predictions]}
    request = urllib.request.Request(
        f"{base_url}/labels", data=json.dumps(labels).encode(),
        headers={"content-type": "application/json", "X-API-Key": LABELS_KEY},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 202 and json.loads(reply.read())["accepted"] == 2
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    assert "model_input_rows_total 2.0" in text, text[:2000]
    assert "model_info{" in text


CHECK = ImageCheck(
    pex="projects.model-monitoring/cli.pex",
    smoke=(
        Smoke(("python", "-m", "model_monitoring", "--help"), "rebaseline"),
        Smoke(
            (
                "python",
                "-c",
                "import os, pathlib; p = pathlib.Path(os.environ['MODEL_MONITORING_BUNDLE_DIR']); "
                "print(p, (p / 'bundle.json').is_file() and (p / 'model.joblib').is_file())",
            ),
            "/opt/app/bundle True",
        ),
    ),
    service=Service(
        command=("env", f"MODEL_MONITORING_LABELS_API_KEY={LABELS_KEY}", "python", "-m",
                 "model_monitoring", "serve", "--host", "127.0.0.1", "--port", "{port}",
                 "--workers", "2"),
        ready_path="/health/ready",
        call=_predict_label_and_scrape,
        startup_timeout_s=180.0,
    ),  # fmt: skip
)


@pytest.mark.slow
def test_image_builds_and_runs_as_non_root(
    repo: Path, tmp_path: Path, record_testsuite_property: Callable[[str, object], None]
) -> None:
    check_project_image("model-monitoring", CHECK, repo, tmp_path, record_testsuite_property)
