"""The torch-enabled variant's job: serving a transformer pyfunc (experiment-tracking's MiniLM
champion has this shape) through the pyfunc interface, and reloading between it and the
scikit-learn model under one running service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlc_testing import (
    GREAT_TEXT,
    OTHER_TEXT,
    ModelFolders,
    RunningService,
    allow_reloads_from,
    reload,
    running_service,
    service_env,
)
from roadmap_lab.testing.tiny_models import build_tiny_bert

REVIEWS = [GREAT_TEXT, OTHER_TEXT, "Fine tea, a bit weak.", "My dog loves these treats."]


@pytest.fixture(scope="module")
def transformer_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import mlflow.pyfunc

    folder = tmp_path_factory.mktemp("transformer")
    output = folder / "model"
    mlflow.pyfunc.save_model(
        path=str(output),
        python_model=str(Path(__file__).with_name("mlc_transformer_model.py")),
        artifacts={"classifier": str(build_tiny_bert(folder / "classifier"))},
    )
    return output


@pytest.fixture(scope="module")
def server(
    model_folders: ModelFolders, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    folder = tmp_path_factory.mktemp("service")
    env = service_env(
        folder / "run",
        model_folders.good,
        reload_folders=allow_reloads_from(tmp_path_factory.getbasetemp()),
    )
    with running_service(folder, env) as service:
        yield service


@pytest.mark.slow
def test_serves_a_transformer_pyfunc_and_reloads_between_flavours(
    server: RunningService, transformer_model: Path, model_folders: ModelFolders
) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert reload(client, transformer_model).status_code == 200
        assert client.get("/model").json()["uri"] == str(transformer_model)
        answer = client.post("/predict", json={"texts": REVIEWS})
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert len(predictions) == len(REVIEWS)
        for prediction in predictions:
            assert 0.0 <= prediction["p_great"] <= 1.0
            assert prediction["label"] == ("great" if prediction["p_great"] >= 0.5 else "other")

        assert reload(client, model_folders.good).status_code == 200
        back = client.post("/predict", json={"texts": [GREAT_TEXT, OTHER_TEXT]}).json()
        assert back["predictions"][0]["label"] == "great"
        assert back["predictions"][1]["label"] == "other"
