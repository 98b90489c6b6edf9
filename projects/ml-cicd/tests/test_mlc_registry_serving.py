"""The service serving from a real MLflow registry (``mlflow server``, sqlite store, on
127.0.0.1): ``models:/<name>@champion`` resolves to a version, /model reports it with its alias
and data version, and a reload follows the alias when it moves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
from ml_cicd.errors import ModelLoadError
from ml_cicd.model import log_model
from ml_cicd.serving import check_model_uri
from mlc_testing import GREAT_TEXT, reload, running_service, service_env
from roadmap_lab.services import mlflow_server

pytestmark = pytest.mark.slow
MODEL = "ml-cicd-under-test"
CHAMPION = "champion"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("mlflow")
    with mlflow_server(f"sqlite:///{folder / 'mlflow.db'}", folder) as url:
        yield url


def _register_champion(url: str, trained: Any) -> str:
    """Log the model in a run, register it, point the champion alias at it; its version."""
    client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(url)
    try:
        experiment = mlflow.set_experiment("ml-cicd-registry-serving")
        with mlflow.start_run(experiment_id=experiment.experiment_id):
            info = log_model(trained.pipeline, trained.data, trained.metrics)
        version = mlflow.register_model(info.model_uri, MODEL)
    finally:
        mlflow.set_tracking_uri(previous)
    client.set_registered_model_alias(MODEL, CHAMPION, version.version)
    return str(version.version)


def test_service_serves_the_registry_champion_and_follows_the_alias(
    registry: str, trained_model: tuple[Path, Any], tmp_path: Path
) -> None:
    _, trained = trained_model
    first = _register_champion(registry, trained)
    assert first == "1"
    with pytest.raises(ModelLoadError, match="cannot resolve model"):
        check_model_uri(f"models:/{MODEL}@no-such-alias", registry)

    env = service_env(tmp_path / "run", f"models:/{MODEL}@{CHAMPION}", tracking_uri=registry)
    with (
        running_service(tmp_path, env) as service,
        httpx.Client(base_url=service.url, timeout=60) as client,
    ):
        info = client.get("/model").json()
        assert info["name"] == MODEL
        assert info["version"] == first
        assert info["alias"] == CHAMPION
        assert info["uri"] == f"models:/{MODEL}@{CHAMPION}"
        assert info["data_version"] == trained.data.version
        assert info["metrics"]["macro_f1"] == pytest.approx(trained.metrics["macro_f1"])
        assert info["run_id"]
        prediction = client.post("/predict", json={"texts": [GREAT_TEXT]}).json()
        assert prediction["predictions"][0]["label"] == "great"
        assert prediction["model"] == {
            "name": MODEL,
            "version": first,
            "alias": CHAMPION,
            "data_version": trained.data.version,
        }

        # A new champion: a reload without a URI re-resolves the alias and switches.
        second = _register_champion(registry, trained)
        assert second == "2"
        response = reload(client, None)
        assert response.status_code == 200, response.text
        assert response.json()["model"]["version"] == second
        assert client.get("/model").json()["version"] == second
        assert client.post("/predict", json={"texts": ["ok"]}).json()["model"]["version"] == second

        # A pinned version; then a version that does not exist keeps it serving.
        pinned = reload(client, f"models:/{MODEL}/{first}")
        assert pinned.status_code == 200, pinned.text
        assert (pinned.json()["model"]["version"], pinned.json()["model"]["alias"]) == (first, None)
        missing = reload(client, f"models:/{MODEL}/99")
        assert missing.status_code == 422
        assert "cannot resolve model" in missing.json()["reason"]
        assert missing.json()["model"]["version"] == first
