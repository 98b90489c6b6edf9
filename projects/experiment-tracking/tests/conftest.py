"""Fixtures: a tiny BERT and synthetic data (fast), and real MLflow servers (sqlite and PostgreSQL
backend stores) started on free ports of 127.0.0.1 and stopped afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from et_testing import TINY_CONFIG, mlflow_server, postgres_database

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: starts real servers or several processes (CI runs them)"
    )


@pytest.fixture(autouse=True)
def _no_tracking_server_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
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
        with postgres_database() as database, mlflow_server(database, folder) as url:
            yield url
