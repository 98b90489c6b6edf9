"""Everything that needs a real MLflow registry, on one ``mlflow server`` for the whole file
(sqlite store, on 127.0.0.1): the service serving ``models:/<name>@champion`` with two workers
that follow the alias together; and retrain failing closed when the registry fails, through an
in-process fault proxy that answers 403 or 500 on some endpoints, and with the server stopped in
the middle of a run: one line, a non-zero exit, nothing registered, the champion unmoved."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
from ml_cicd.cli import app
from ml_cicd.errors import ModelLoadError
from ml_cicd.model import log_model
from ml_cicd.registry import CHAMPION, REGISTRATION_TAG, use_store
from ml_cicd.rollout import ReplicaRollout, RolloutError, roll_out
from ml_cicd.serving import check_model_uri
from ml_cicd.settings import ProjectSettings
from ml_cicd.training import bundled_training_rows
from mlc_fault_proxy import Fault, FaultProxy
from mlc_testing import (
    ADMIN_KEY,
    GREAT_TEXT,
    commit_slice,
    new_data_repo,
    reload,
    service_env,
    start_service_process,
)
from roadmap_lab.services import free_port, mlflow_server
from typer.testing import CliRunner

pytestmark = pytest.mark.slow
SERVED_MODEL = "ml-cicd-under-test"
RETRAINED_MODEL = "ml-cicd-retrained"
INITIAL_ROWS = 1100
# The registry endpoints retrain reads the champion and the registered versions from.
READS = r"/registered-models/(get|alias)$|/model-versions/search$"


@dataclass
class Registry:
    """The file's MLflow server; ``stop`` and ``start`` restart it on the same port and store."""

    store: str
    folder: Path
    port: int = 0
    url: str = ""
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def start(self) -> None:
        self._stack = contextlib.ExitStack()
        self.url = self._stack.enter_context(
            mlflow_server(self.store, self.folder, port=self.port or None)
        )
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        self._stack.close()

    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(tracking_uri=self.url, registry_uri=self.url)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    folder = tmp_path_factory.mktemp("mlflow")
    server = Registry(f"sqlite:///{folder / 'mlflow.db'}", folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- Serving from the registry ------------------------------------------------------------------


def _register_champion(url: str, trained: Any) -> str:
    """Log the model in a run, register it, point the champion alias at it; its version."""
    client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
    use_store(ProjectSettings(tracking_uri=url))  # leaves the environment as it was
    experiment = mlflow.set_experiment("ml-cicd-registry-serving")
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        info = log_model(trained.pipeline, trained.data, trained.metrics)
    version = mlflow.register_model(info.model_uri, SERVED_MODEL)
    client.set_registered_model_alias(SERVED_MODEL, CHAMPION, version.version)
    return str(version.version)


def _versions_of_every_worker(client: httpx.Client) -> set[str | None]:
    return {worker["version"] for worker in client.get("/model").json()["workers"]}


def test_two_workers_serve_the_registry_champion_and_follow_the_alias_together(
    registry: Registry, trained_model: tuple[Path, Any], tmp_path: Path
) -> None:
    _, trained = trained_model
    first = _register_champion(registry.url, trained)
    assert first == "1"
    with pytest.raises(ModelLoadError, match="cannot resolve model"):
        check_model_uri(f"models:/{SERVED_MODEL}@no-such-alias", registry.url)

    env = service_env(
        tmp_path / "run", f"models:/{SERVED_MODEL}@{CHAMPION}", tracking_uri=registry.url
    )
    service = start_service_process(tmp_path, env, workers=2)
    try:
        with httpx.Client(base_url=service.url, timeout=60) as client:
            info = client.get("/model").json()
            assert (info["name"], info["version"], info["alias"]) == (SERVED_MODEL, first, CHAMPION)
            assert info["uri"] == f"models:/{SERVED_MODEL}@{CHAMPION}"
            assert info["data_version"] == trained.data.version
            assert info["metrics"]["macro_f1"] == pytest.approx(trained.metrics["macro_f1"])
            assert info["run_id"] and info["generation"] == 0
            prediction = client.post("/predict", json={"texts": [GREAT_TEXT]}).json()
            assert prediction["predictions"][0]["label"] == "great"
            assert prediction["model"] == {
                "name": SERVED_MODEL,
                "version": first,
                "alias": CHAMPION,
                "data_version": trained.data.version,
            }

            # A new champion, rolled out as the deploy job does: a reload without a URI
            # re-resolves the alias, and every worker loads the version the first one resolved.
            second = _register_champion(registry.url, trained)
            assert second == "2"
            rolled = roll_out([service.url], ADMIN_KEY, expected_version=second)
            assert rolled == [ReplicaRollout(service.url, second, workers=2)]
            info = client.get("/model").json()
            assert (info["version"], info["generation"]) == (second, 1)
            assert {(w["version"], w["generation"]) for w in info["workers"]} == {(second, 1)}
            for _ in range(20):  # fresh connections: either worker may answer
                reply = httpx.post(f"{service.url}/predict", json={"texts": ["ok"]}, timeout=30)
                assert reply.json()["model"]["version"] == second

            # A pinned version; then a version that does not exist keeps it serving.
            pinned = reload(client, f"models:/{SERVED_MODEL}/{first}")
            assert pinned.status_code == 200, pinned.text
            model = pinned.json()["model"]
            assert (model["version"], model["alias"]) == (first, None)
            assert _versions_of_every_worker(client) == {first}
            missing = reload(client, f"models:/{SERVED_MODEL}/99")
            assert missing.status_code == 422
            assert "cannot resolve model" in missing.json()["reason"]
            assert missing.json()["model"]["version"] == first
            assert _versions_of_every_worker(client) == {first}

            # The rollout stops at a replica that serves another version than the champion (this
            # one is pinned to version 1) or does not answer, and says how far it got.
            down = f"http://127.0.0.1:{free_port()}"
            with pytest.raises(RolloutError, match=rf"{service.url}: its workers serve .*'1'"):
                roll_out([service.url, down], ADMIN_KEY, expected_version=second)
            rolled_first = rf"{down}/admin/reload: no answer .*before it: {service.url}"
            with pytest.raises(RolloutError, match=rolled_first):
                roll_out([service.url, down], ADMIN_KEY)
    finally:
        assert service.process.stop() == 0, service.process.log_tail()


# --- Retrain fails closed -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def retrain_data(
    registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, str]:
    """A data repository whose first slice made champion version 1 of RETRAINED_MODEL, with a
    second slice committed since (a retrain would train on it): (repo, run dir, champion)."""
    folder = tmp_path_factory.mktemp("retrain")
    rows = bundled_training_rows().sample(frac=1, random_state=0).reset_index(drop=True)
    repo = new_data_repo(folder, rows.iloc[:INITIAL_ROWS])
    done = _retrain(repo, folder / "runs", registry.url)
    assert done.exit_code == 0, done.output
    commit_slice(repo, "0002-reviews.csv", rows.iloc[INITIAL_ROWS:])
    champion = registry.client().get_model_version_by_alias(RETRAINED_MODEL, CHAMPION)
    return repo, folder / "runs", str(champion.version)


def _retrain(repo: Path, run_dir: Path, tracking_uri: str) -> Any:
    return CliRunner().invoke(
        app,
        ["retrain", "--data-dir", str(repo), "--run-dir", str(run_dir),
         "--tracking-uri", tracking_uri, "--model-name", RETRAINED_MODEL],
    )  # fmt: skip


def _registered(registry: Registry) -> tuple[int, str]:
    """(how many versions RETRAINED_MODEL has, the version its champion alias names)."""
    client = registry.client()
    versions = client.search_model_versions(f"name='{RETRAINED_MODEL}'")
    return len(versions), str(client.get_model_version_by_alias(RETRAINED_MODEL, CHAMPION).version)


def _one_error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


@pytest.fixture
def no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow retries a failing registry for minutes by default: once here."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


@pytest.mark.parametrize("status", [403, 500])
def test_a_registry_that_fails_reads_stops_retrain(
    registry: Registry, retrain_data: tuple[Path, Path, str], no_retries: None, status: int
) -> None:
    repo, run_dir, champion = retrain_data
    before = _registered(registry)
    proxy = FaultProxy(registry.url)
    proxy.faults = [Fault("GET", READS, status)]
    with proxy.running():
        done = _retrain(repo, run_dir, proxy.url)
    assert done.exit_code == 2, done.output
    line = _one_error_line(done.output)
    assert f"the registry at {proxy.url} failed while reading the champion" in line
    assert str(status) in line
    assert proxy.answered, "the fault proxy answered no request"
    assert _registered(registry) == before  # nothing registered, the champion unmoved
    assert before[1] == champion


def test_a_registry_stopped_mid_run_stops_retrain(
    registry: Registry,
    retrain_data: tuple[Path, Path, str],
    no_retries: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ml_cicd.retrain

    repo, run_dir, champion = retrain_data
    before = _registered(registry)
    train = ml_cicd.retrain.train_and_evaluate

    def train_then_stop_the_registry(*args: Any, **kwargs: Any) -> Any:
        trained = train(*args, **kwargs)
        registry.stop()  # after the champion was read, before it is scored or anything written
        return trained

    monkeypatch.setattr(ml_cicd.retrain, "train_and_evaluate", train_then_stop_the_registry)
    try:
        done = _retrain(repo, run_dir, registry.url)
    finally:
        registry.start()
    assert done.exit_code == 2, done.output
    line = _one_error_line(done.output)
    assert re.search(rf"cannot load model models:/{RETRAINED_MODEL}/{champion}\b", line), line
    assert _registered(registry) == before


def test_a_champion_move_that_fails_is_completed_by_the_next_run(
    registry: Registry, retrain_data: tuple[Path, Path, str], no_retries: None
) -> None:
    repo, run_dir, champion = retrain_data
    count, _ = _registered(registry)
    proxy = FaultProxy(registry.url)
    proxy.faults = [Fault("POST", r"/registered-models/alias$", 500)]
    with proxy.running():
        failed = _retrain(repo, run_dir, proxy.url)
    assert failed.exit_code == 2, failed.output
    assert "failed while registering the challenger" in _one_error_line(failed.output)
    # The challenger was registered, but the champion did not move, and the registration is
    # marked incomplete: a rerun on the same data does not take it for done.
    assert _registered(registry) == (count + 1, champion)
    interrupted = registry.client().get_model_version(RETRAINED_MODEL, str(count + 1))
    assert REGISTRATION_TAG not in interrupted.tags

    done = _retrain(repo, run_dir, registry.url)
    assert done.exit_code == 0, done.output
    assert "promoted" in done.output
    assert _registered(registry) == (count + 2, str(count + 2))
