"""Fixtures: a tiny BERT and synthetic data (fast), and real MLflow servers (sqlite and PostgreSQL
backend stores) started on free ports of 127.0.0.1 and stopped afterwards (roadmap_lab.services;
its pytest plugin adds ``free_tcp_port``, ``postgres`` and ``start_service``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import roadmap_lab.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports only)
from et_testing import TINY_CONFIG
from roadmap_lab.services import mlflow_server, postgres_cluster

pytest_plugins = ["roadmap_lab.pytest_plugin"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Offline, MLflow's telemetry thread fails and unsets its session variable in os.environ while
# other threads iterate os.environ (seen: KeyError '_MLFLOW_TELEMETRY_SESSION_ID' in requests).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: starts real servers or several processes (CI runs them)"
    )


@pytest.fixture(autouse=True)
def _no_tracking_server_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    # Child processes too: python_child_env() copies this environment.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in [n for n in os.environ if n.startswith("EXPERIMENT_TRACKING_")]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from experiment_tracking.tiny_model import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "model")


@pytest.fixture(scope="session")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from experiment_tracking.tiny_model import synthetic_reviews

    folder = tmp_path_factory.mktemp("synthetic-data")
    train, test = folder / "train.csv", folder / "test.csv"
    synthetic_reviews(300, seed=0).to_csv(train, index=False)
    synthetic_reviews(90, seed=1).to_csv(test, index=False)
    return train, test


@pytest.fixture(scope="session")
def tiny_data(data_files: tuple[Path, Path]):
    from experiment_tracking.data import load_data

    return load_data(*data_files)


@pytest.fixture
def tiny_config():
    from experiment_tracking.settings import TrainConfig

    return TrainConfig(**TINY_CONFIG)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def tracking_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp(f"mlflow-{request.param}")
    if request.param == "sqlite":
        with mlflow_server(f"sqlite:///{folder / 'mlflow.db'}", folder) as url:
            yield url
    else:
        with postgres_cluster() as cluster:
            # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; we ship psycopg2.
            store = cluster.create_database("mlflow", driver="postgresql+psycopg2")
            with mlflow_server(store, folder) as url:
                yield url
