"""The registry (issue 26) on real components: an MLflow server with its registry in PostgreSQL
(roadmap_lab.services); weeks published by the plain steps, then registered and gated as the
DAG's register task does; one dag.test() run with the register task (all slow), and the DAG
without a registry (no register task)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
from data_pipelines import registry, steps
from data_pipelines.model import predict_proba
from data_pipelines.names import PIPELINE_DAG_ID, PIPELINE_TASKS, REGISTER_TASK
from data_pipelines.runner import load_dag, run_dag
from data_pipelines.settings import ProjectSettings
from roadmap_lab import housing_model as contract
from roadmap_lab.services import PostgresCluster, mlflow_server

WEEKS = ("2021-02-14", "2021-02-21", "2021-02-28")  # the tests' history starts at the first


@pytest.mark.usefixtures("airflow_home")
def test_without_a_registry_the_dag_has_no_register_task() -> None:
    assert set(load_dag(PIPELINE_DAG_ID).task_dict) == set(PIPELINE_TASKS)
    assert not ProjectSettings().registers


@pytest.fixture(scope="module")
def registry_url(
    postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    store = postgres.create_database("mlflow_dp", driver="postgresql+psycopg2")
    with mlflow_server(store, tmp_path_factory.mktemp("mlflow")) as url:
        yield url


@pytest.fixture
def registered(pipeline_env: Path, registry_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """This test's registered model name on the module's server."""
    name = f"housing-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DATA_PIPELINES_TRACKING_URI", registry_url)
    monkeypatch.setenv("DATA_PIPELINES_REGISTERED_MODEL", name)
    return name


def publish_and_register(key: str) -> dict:
    settings = ProjectSettings()
    return registry.register(settings, steps.run_plain(settings, key))


@pytest.mark.slow
def test_each_model_is_registered_with_its_contract_and_the_gate_moves_the_alias(
    registered: str, pipeline_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = publish_and_register(WEEKS[0])
    assert first == {**first, "version": "1", "promoted": True, "champion_before": "none"}
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(registered, contract.CHAMPION).version == "1"

    # The version: its tags, its run's metrics, a signature, the window's rows, the same
    # probabilities as the published model.json.
    version = client.get_model_version(registered, "1")
    folder = pipeline_env / "models" / WEEKS[0]
    current = (folder / "CURRENT").read_text().strip()
    manifest = json.loads((folder / current / "manifest.json").read_text())
    window = [m["slice_id"] for m in manifest["window"]]
    assert version.tags[contract.TAG_SLICE_ID] == WEEKS[0]
    assert version.tags[contract.TAG_WINDOW_SLICES] == ",".join(window)
    assert version.tags[contract.TAG_MODEL_SHA256] == manifest["model"]["sha256"]
    assert version.tags[contract.TAG_MANIFEST_SHA256] == steps.sha256_hex(
        (folder / current / "manifest.json").read_bytes()
    )
    assert version.tags[contract.TAG_WINDOW_START] < version.tags[contract.TAG_WINDOW_END]
    assert version.tags["registration"] == "complete"
    run = client.get_run(version.run_id)
    accuracy = manifest["metrics"]["in_window"]["accuracy"]
    assert run.data.metrics["in_window_accuracy"] == pytest.approx(accuracy)
    info = mlflow.models.get_model_info(f"models:/{registered}/1")
    assert info.signature.inputs.input_names() == contract.raw_features()
    outputs = [contract.OUTPUT_PROBABILITY, contract.OUTPUT_CLASS]
    assert info.signature.outputs.input_names() == outputs
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{registered}/1"))
    rows = pd.read_csv(next((local / "artifacts").glob("*.csv")))
    assert list(rows.columns) == contract.window_columns()
    assert len(rows) == sum(m["rows"] for m in manifest["window"])
    assert set(rows[contract.HELD_OUT]) == {0, 1}
    params = json.loads((folder / current / "model.json").read_text())
    served = mlflow.pyfunc.load_model(f"models:/{registered}@{contract.CHAMPION}")
    predicted = served.predict(rows[contract.raw_features()])
    expected = predict_proba(params, contract.add_features(rows))
    assert np.allclose(predicted[contract.OUTPUT_PROBABILITY], expected)

    # A challenger the gate refuses leaves the champion; its decision is on the version.
    monkeypatch.setenv("DATA_PIPELINES_GATE_MARGIN", "0.5")
    second = publish_and_register(WEEKS[1])
    assert second["version"] == "2" and not second["promoted"]
    assert "rejected (quality failed)" in second["reason"] and second["champion_before"] == "1"
    # Both were scored on the held-out rows of week 2's window, all of them.
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{registered}/2"))
    held_out = int(pd.read_csv(next((local / "artifacts").glob("*.csv")))[contract.HELD_OUT].sum())
    assert second["reason"].endswith(f"({held_out} held-out rows)")
    assert client.get_model_version_by_alias(registered, contract.CHAMPION).version == "1"
    # The week's forward figures (model 1 on week 2's slice) went on model 1's run.
    assert "forward_accuracy" in client.get_run(version.run_id).data.metrics
    # A rerun of the week registers nothing new and changes nothing.
    assert publish_and_register(WEEKS[1]) == second
    assert len(client.search_model_versions(f"name = '{registered}'")) == 2

    monkeypatch.setenv("DATA_PIPELINES_GATE_MARGIN", "-1")
    third = publish_and_register(WEEKS[2])
    assert third["promoted"] and third["champion_before"] == "1"
    assert client.get_model_version_by_alias(registered, contract.CHAMPION).version == "3"
    assert client.get_model_version(registered, "3").tags["promoted_over"] == "1"
    # A promotion gated against a champion that has moved since (here: 1, now 3) moves nothing.
    gated = client.get_model_version(registered, "2")
    with pytest.raises(registry.RegistryError, match="alias .* moved to version 3"):
        registry._move_alias(client, registered, gated, client.get_model_version(registered, "1"))
    assert client.get_model_version_by_alias(registered, contract.CHAMPION).version == "3"


def version(week: str, number: str = "1") -> SimpleNamespace:
    return SimpleNamespace(version=number, tags={contract.TAG_SLICE_ID: week})


def held_out_rows(labels: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"clf_target": labels, contract.HELD_OUT: 1})


@pytest.mark.parametrize(
    ("labels", "champion", "refused"),
    [
        ([0, 1] * 10, None, None),
        ([0, 1] * 10, version("2021-02-14"), None),
        ([0, 1] * 9, None, "refused: 18 held-out rows with 2 class(es)"),
        ([1] * 40, None, "refused: 40 held-out rows with 1 class(es)"),
        ([0, 1] * 10, version("2021-02-28", "3"), "refused: week 2021-02-21 is older"),
    ],
)
def test_the_gate_refuses_too_few_rows_and_a_past_week(
    labels: list[int], champion: SimpleNamespace | None, refused: str | None
) -> None:
    reason = registry._refusal(
        ProjectSettings(), version("2021-02-21", "2"), champion, held_out_rows(labels)
    )
    assert reason is None if refused is None else (reason or "").startswith(refused)


@pytest.mark.slow
def test_a_stopped_registry_fails_closed_and_moves_nothing(
    pipeline_env: Path,
    postgres: PostgresCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = postgres.create_database("mlflow_stopped", driver="postgresql+psycopg2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("DATA_PIPELINES_GATE_MARGIN", "-1")  # week 2 would be promoted
    with mlflow_server(store, tmp_path) as url:
        monkeypatch.setenv("DATA_PIPELINES_TRACKING_URI", url)
        assert publish_and_register(WEEKS[0])["promoted"]
    with pytest.raises(registry.RegistryError, match=f"registry at {url} failed.*not moved"):
        publish_and_register(WEEKS[1])
    with mlflow_server(store, tmp_path, port=int(url.rsplit(":", 1)[1])):
        client = mlflow.MlflowClient(url)
        name = contract.REGISTERED_MODEL
        assert client.get_model_version_by_alias(name, contract.CHAMPION).version == "1"
        assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == ["1"]


@pytest.mark.slow
@pytest.mark.usefixtures("airflow_home")
def test_the_dag_registers_after_publish(registered: str, pipeline_env: Path) -> None:
    assert set(load_dag(PIPELINE_DAG_ID).task_dict) == {*PIPELINE_TASKS, REGISTER_TASK}
    outcome = run_dag(PIPELINE_DAG_ID, datetime(2021, 2, 14, tzinfo=UTC))
    assert outcome.task_states() == dict.fromkeys([*PIPELINE_TASKS, REGISTER_TASK], "success")
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(registered, contract.CHAMPION).version == "1"

