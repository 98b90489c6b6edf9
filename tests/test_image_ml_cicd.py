"""ml-cicd's default image (the Dockerfile's last stage; the torch stage is built by CI, ci.yml):
no torch, the model baked in, and the service started inside the image classifies reviews called
from outside. The machinery: project_images.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from project_images import ImageCheck, Service, Smoke, check_project_image, post_json


def _classify_two_reviews(base_url: str) -> None:
    reviews = [
        "Great coffee, rich and smooth. The best I have had, I reorder it every month.",
        "Stale and bitter, and the bag arrived torn. A waste of money.",
    ]
    answer = post_json(f"{base_url}/predict", {"texts": reviews})
    predictions = answer["predictions"]
    assert len(predictions) == 2, answer
    assert {p["label"] for p in predictions} <= {"great", "other"}, answer
    assert all(0.0 <= p["p_great"] <= 1.0 for p in predictions), answer
    # The baked-in model is a real classifier, not a constant.
    assert predictions[0]["p_great"] > predictions[1]["p_great"], answer


CHECK = ImageCheck(
    pex="projects.ml-cicd/cli.pex",
    smoke=(
        Smoke(("python", "-m", "ml_cicd", "--help"), "retrain"),
        # The default image carries no torch (that is the torch target's job).
        Smoke(
            (
                "python",
                "-c",
                "import importlib.util as u; print('torch', u.find_spec('torch') is not None)",
            ),
            "torch False",
        ),
        # The default model is baked in where ML_CICD_MODEL_URI points.
        Smoke(
            (
                "python",
                "-c",
                "import os, pathlib; uri = os.environ['ML_CICD_MODEL_URI']; "
                "print(uri, pathlib.Path(uri).is_dir() and any(pathlib.Path(uri).iterdir()))",
            ),
            "/opt/app/model True",
        ),
    ),
    service=Service(
        command=("python", "-m", "ml_cicd", "serve", "--host", "127.0.0.1", "--port", "{port}"),
        ready_path="/health/ready",
        call=_classify_two_reviews,
        startup_timeout_s=180.0,
    ),
)


@pytest.mark.slow
def test_image_builds_and_runs_as_non_root(
    repo: Path, tmp_path: Path, record_testsuite_property: Callable[[str, object], None]
) -> None:
    check_project_image("ml-cicd", CHECK, repo, tmp_path, record_testsuite_property)
