"""Fixtures: a tiny BERT and synthetic data (fast), and real MLflow servers (sqlite and PostgreSQL
backend stores) started on free ports of 127.0.0.1 and stopped afterwards (roadmap_lab.services;
the shared pytest plugin adds ``free_tcp_port``, ``postgres``, ``start_service``, the ``slow``
marker and the offline environment)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import roadmap_lab.testing.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports)
from et_testing import TINY_CONFIG
from roadmap_lab.services import mlflow_server, postgres_cluster
from roadmap_lab.testing.pytest_plugin import Isolation

pytest_plugins = ["roadmap_lab.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def environment_isolation() -> Isolation:
    # No settings or tracking server from outside (child processes too: python_child_env()
    # copies this environment); W&B never goes online from a test.
    return Isolation(
        prefixes=("EXPERIMENT_TRACKING_",),
        names=("MLFLOW_TRACKING_URI",),
        values={"WANDB_MODE": "offline"},
    )


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from experiment_tracking.data import LABELS
    from roadmap_lab.testing.tiny_models import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "model", labels=LABELS)


@pytest.fixture(scope="session")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from roadmap_lab.testing.tiny_models import synthetic_reviews

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
