"""Serving models:/<name>@champion (issue 26) on real components: an MLflow server with its
registry in PostgreSQL (roadmap_lab.services), versions logged as the housing contract says
(roadmap_lab.housing_model: the pyfunc from code, its parameters and training window), the
service in-process with its follower and watcher threads and as two uvicorn workers (slow); a
version turned into a bundle without a server (fast)."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mm_testing import metric_values, payload, reference_rows, wait_for
from model_monitoring.metrics import MULTIPROC_ENV
from model_monitoring.registry import NoChampion, RegistryUnavailable, sync
from model_monitoring.service import create_app
from model_monitoring.settings import ProjectSettings
from roadmap_lab import housing_model as contract
from roadmap_lab.data import load_california_housing
from roadmap_lab.services import PostgresCluster, mlflow_server, uvicorn_app


@pytest.fixture(scope="module")
def registry_url(
    postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    store = postgres.create_database("mlflow_mm", driver="postgresql+psycopg2")
    with mlflow_server(store, tmp_path_factory.mktemp("mlflow")) as url:
        yield url


def params_and_window(rows: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame]:
    """A logistic regression on ``rows`` as the contract's JSON parameters, and its window."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    columns = [*contract.raw_features(), *contract.ENGINEERED]
    features = contract.add_features(rows)[columns]
    scaler = StandardScaler().fit(features)
    fitted = LogisticRegression(max_iter=500).fit(
        scaler.transform(features), rows[contract.TARGET]
    )
    params = {
        "format": contract.MODEL_FORMAT,
        "features": columns,
        "classes": [0, 1],
        "scaler_mean": scaler.mean_.tolist(),
        "scaler_scale": scaler.scale_.tolist(),
        "coef": fitted.coef_[0].tolist(),
        "intercept": float(fitted.intercept_[0]),
    }
    window = rows.assign(**{contract.HELD_OUT: (rows["id"] % 5 == 0).astype(int)})
    return params, window[contract.window_columns()]


def register_version(url: str, name: str, rows: pd.DataFrame, folder: Path) -> dict[str, Any]:
    params, window = params_and_window(rows)
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps(params))
    window.to_csv(folder / f"{contract.WINDOW_ARTIFACT}.csv", index=False)
    mlflow.set_tracking_uri(url)
    with mlflow.start_run():
        info = contract.log_pyfunc(folder / "model.json", folder / "training_window.csv")
    mlflow.register_model(info.model_uri, name)
    return params


@pytest.fixture(scope="module")
def housing() -> pd.DataFrame:
    return load_california_housing()[0]


def test_a_version_becomes_a_bundle_rebaselined_on_its_window(
    housing: pd.DataFrame, tmp_path: Path
) -> None:
    """A version's model folder (saved as data-pipelines logs it) as a bundle: the signature's
    inputs as numbers, the reference from the window, prediction figures on its held-out rows,
    the pyfunc's probabilities, missing values imputed; written and loaded back."""
    import mlflow.pyfunc
    from mlflow.entities.model_registry import ModelVersion
    from model_monitoring.bundle import load_bundle, write_bundle
    from model_monitoring.registry import build_bundle

    params, window = params_and_window(housing.iloc[:700])
    (tmp_path / "model.json").write_text(json.dumps(params))
    window.to_csv(tmp_path / "training_window.csv", index=False)
    model_dir = tmp_path / "model"
    mlflow.pyfunc.save_model(
        str(model_dir),
        python_model=str(contract.pyfunc_code()),
        artifacts={
            contract.PARAMS_ARTIFACT: str(tmp_path / "model.json"),
            contract.WINDOW_ARTIFACT: str(tmp_path / "training_window.csv"),
        },
        signature=contract.signature(),
        pip_requirements=["mlflow"],
    )
    version = ModelVersion("housing-classifier", "4", 1_700_000_000_000, run_id="r1")
    bundle = build_bundle(model_dir, version, contract.CHAMPION)
    assert bundle.feature_names == contract.raw_features()
    assert {spec.type for spec in bundle.features} == {"float"}
    assert bundle.reference_window["rows"] == 700
    assert bundle.reference_window["scored_rows"] == int((window[contract.HELD_OUT] == 1).sum())
    assert bundle.prediction_reference.rows == bundle.reference_window["scored_rows"]
    assert bundle.source == {
        "registered_model": "housing-classifier", "version": "4", "alias": "champion",
        "run_id": "r1",
    }  # fmt: skip
    write_bundle(tmp_path / "bundle", model_dir, bundle)
    loaded = load_bundle(tmp_path / "bundle")
    rows = reference_rows(20)
    x = rows[contract.raw_features()].to_numpy(dtype=float)
    expected = contract.probability(params, contract.add_features(rows))
    assert np.allclose(loaded.pipeline.predict_proba(x)[:, 1], expected)
    x[0, 0] = np.nan  # MedInc missing: the window's median
    filled = rows.iloc[:1].assign(MedInc=float(np.median(window["MedInc"])))
    assert loaded.pipeline.predict_proba(x)[0, 1] == pytest.approx(
        contract.probability(params, contract.add_features(filled))[0]
    )


def service_settings(tmp_path: Path, url: str, name: str) -> ProjectSettings:
    return ProjectSettings(
        run_dir=tmp_path,
        registered_model=name,
        tracking_uri=url,
        registry_poll_s=0.3,
        bundle_check_s=0.1,
        instrumentation=True,
        drift_interval_s=60,
    )


def served_version(client: TestClient) -> str | None:
    registry = client.get("/model").json()["registry"]
    return registry["version"] if registry else None


def probabilities(client: TestClient, rows: pd.DataFrame) -> np.ndarray:
    reply = client.post("/predict", json=payload(rows))
    assert reply.status_code == 200, reply.text
    return np.array([p["probability"] for p in reply.json()["predictions"]])


@pytest.mark.slow
def test_the_service_serves_the_champion_and_follows_the_alias(
    registry_url: str, housing: pd.DataFrame, tmp_path: Path
) -> None:
    name = f"housing-{uuid.uuid4().hex[:8]}"
    first = register_version(registry_url, name, housing.iloc[:700], tmp_path / "v1")
    second = register_version(registry_url, name, housing.iloc[3000:3700], tmp_path / "v2")
    client_api = mlflow.MlflowClient(registry_url)
    client_api.set_registered_model_alias(name, contract.CHAMPION, "1")
    settings = service_settings(tmp_path / "service", registry_url, name)
    assert sync(settings) and not sync(settings)  # installed once; the same version stays
    rows = reference_rows(30)
    with TestClient(create_app(settings)) as client:
        model = client.get("/model").json()
        assert model["registry"] == {**model["registry"], "registered_model": name, "version": "1"}
        assert model["reference_window"]["rows"] == 700
        expected = contract.probability(first, contract.add_features(rows))
        assert np.allclose(probabilities(client, rows), expected, atol=1e-6)
        info = metric_values(client, "model_info")
        assert {dict(k)["registered_version"]: v for k, v in info.items()} == {"1": 1.0}

        client_api.set_registered_model_alias(name, contract.CHAMPION, "2")
        wait_for(lambda: served_version(client) == "2", timeout_s=60)
        expected = contract.probability(second, contract.add_features(rows))
        assert np.allclose(probabilities(client, rows), expected, atol=1e-6)
        # Rebaselined from version 2's window: its timestamps, its rows.
        window = client.get("/model").json()["reference_window"]
        start = pd.Timestamp(housing.iloc[3000:3700]["timestamp"].min()).isoformat()
        assert window["start"] == start
        info = metric_values(client, "model_info")
        assert {dict(k)["registered_version"]: v for k, v in info.items()} == {"1": 0.0, "2": 1.0}

        # A version that cannot be installed (its window lacks the contract's columns): the
        # follower counts the failure, lives on, and version 2 keeps serving.
        broken = tmp_path / "v3"
        broken.mkdir()
        (broken / "model.json").write_text(json.dumps(second))
        (broken / "training_window.csv").write_text("id\n1\n")
        with mlflow.start_run():
            info3 = contract.log_pyfunc(broken / "model.json", broken / "training_window.csv")
        mlflow.register_model(info3.model_uri, name)
        client_api.set_registered_model_alias(name, contract.CHAMPION, "3")
        poll = (("stage", "poll"),)
        wait_for(lambda: metric_values(client, "model_registry_failures_total").get(poll, 0) >= 2,
                 timeout_s=60)  # fmt: skip
        assert served_version(client) == "2"
        assert client.get("/health/ready").status_code == 200


@pytest.mark.slow
def test_an_outage_keeps_the_model_serving_and_a_start_without_registry_fails_clearly(
    postgres: PostgresCluster,
    housing: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    name = f"housing-{uuid.uuid4().hex[:8]}"
    store = postgres.create_database("mlflow_outage", driver="postgresql+psycopg2")
    rows = reference_rows(10)
    with mlflow_server(store, tmp_path / "mlflow") as url:
        settings = service_settings(tmp_path / "service", url, name)
        with pytest.raises(NoChampion, match=f"{name}@champion does not exist"):
            sync(settings)
        register_version(url, name, housing.iloc[:700], tmp_path / "v1")
        with pytest.raises(NoChampion, match="does not exist"):
            sync(settings)  # the model exists, its alias does not
        mlflow.MlflowClient(url).set_registered_model_alias(name, contract.CHAMPION, "1")
        sync(settings)
        app = create_app(settings)
    with TestClient(app) as client:  # the registry is down from here on
        failures = {"stage": "poll"}
        wait_for(lambda: metric_values(client, "model_registry_failures_total").get(
            tuple(failures.items()), 0) >= 2, timeout_s=60)  # fmt: skip
        assert served_version(client) == "1"
        assert len(probabilities(client, rows)) == 10
    with pytest.raises(RegistryUnavailable, match=f"registry at {url} failed"):
        sync(settings)


@pytest.mark.slow
def test_every_worker_of_a_two_worker_server_switches(
    registry_url: str, housing: pd.DataFrame, tmp_path: Path
) -> None:
    """Both workers served version 1 (each wrote its own prediction log); once the alias moves,
    every reply, whichever worker takes it, comes from version 2."""
    name = f"housing-{uuid.uuid4().hex[:8]}"
    register_version(registry_url, name, housing.iloc[:700], tmp_path / "v1")
    register_version(registry_url, name, housing.iloc[3000:3700], tmp_path / "v2")
    mlflow.MlflowClient(registry_url).set_registered_model_alias(name, contract.CHAMPION, "1")
    settings = service_settings(tmp_path / "service", registry_url, name)
    sync(settings)
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    env = {
        MULTIPROC_ENV: str(multiproc),
        "MODEL_MONITORING_RUN_DIR": str(settings.run_dir),
        "MODEL_MONITORING_REGISTERED_MODEL": name,
        "MODEL_MONITORING_TRACKING_URI": registry_url,
        "MODEL_MONITORING_REGISTRY_POLL_S": "0.3",
        "MODEL_MONITORING_BUNDLE_CHECK_S": "0.1",
    }
    rows = payload(reference_rows(5))

    def versions(count: int) -> set[str]:
        replies = [
            client.post("/predict", json=rows, headers={"Connection": "close"})
            for _ in range(count)
        ]
        return {reply.json()["model_version"] for reply in replies}

    with uvicorn_app(
        "model_monitoring.service:create_app", tmp_path / "uvicorn", factory=True, workers=2,
        env=env, ready_path="/health/ready",
    ) as url, httpx.Client(base_url=url, timeout=30) as client:  # fmt: skip
        logs = settings.resolved_log_dir()
        wait_for(lambda: versions(5) and len(list(logs.glob("predictions-*.jsonl"))) == 2)
        assert versions(10) == {f"{name}/1"}
        mlflow.MlflowClient(registry_url).set_registered_model_alias(name, contract.CHAMPION, "2")
        # Every worker switches: 20 replies in a row from version 2, whichever worker answers.
        wait_for(lambda: versions(20) == {f"{name}/2"}, timeout_s=60)


def test_a_worker_retries_a_bundle_it_cannot_switch_to_and_is_not_ready_meanwhile(
    bundle_dir: Path, car_loan_bundle_dir: Path, tmp_path: Path
) -> None:
    from model_monitoring.bundle import bundle_identity, load_bundle
    from model_monitoring.registry import BundleWatcher

    settings = ProjectSettings(run_dir=tmp_path, bundle_check_s=0.1)
    served = settings.resolved_bundle_dir()
    shutil.copytree(bundle_dir, served)
    identity = bundle_identity(served)
    housing_features = load_bundle(served).feature_names
    switched, failures = [], []

    def switch(bundle: Any) -> None:  # the service's rule: the same schema only
        if bundle.feature_names != housing_features:
            raise ValueError("another schema")
        switched.append(bundle.version)

    def replace_with(source: Path) -> None:  # a new folder renamed into place, as a swap does
        staging = tmp_path / "staging"
        shutil.copytree(source, staging)
        shutil.rmtree(served)
        staging.rename(served)

    watcher = BundleWatcher(settings, switch, lambda: failures.append(1), identity)
    watcher.check_once()
    assert (switched, failures) == ([], [])  # the bundle it loaded: nothing to do
    replace_with(car_loan_bundle_dir)
    watcher.check_once()
    watcher.check_once()
    assert (switched, len(failures)) == ([], 2)  # refused, and tried again
    replace_with(bundle_dir)
    watcher.check_once()
    watcher.check_once()
    assert len(switched) == 1 and len(failures) == 2  # switched once, then nothing new

    app = create_app(ProjectSettings(run_dir=tmp_path))
    with TestClient(app) as client:
        assert client.get("/health/ready").status_code == 200
        app.state.served.stale = True  # what the service's watcher sets when a switch fails
        reply = client.get("/health/ready")
        assert reply.status_code == 503 and "could not switch" in reply.json()["status"]
