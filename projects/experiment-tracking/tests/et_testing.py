"""Helpers of the experiment-tracking tests: CLI options for the test model and data, and MLflow
clients bound to one store. Real servers come from roadmap_lab.services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_CONFIG: dict[str, Any] = {
    "epochs": 5,
    "batch_size": 16,
    "learning_rate": 3e-3,
    "patience": 10,
    "log_every_steps": 5,
}


def model_data_args(model_dir: Path, data_files, run_dir: Path, tracker: str) -> list[str]:
    """The `train` options that point the CLI at a test model, test data, a run folder."""
    return [
        "--model-dir",
        str(model_dir),
        "--train-file",
        str(data_files[0]),
        "--test-file",
        str(data_files[1]),
        "--run-dir",
        str(run_dir),
        "--tracker",
        tracker,
    ]


def store_client(uri: str | Path):
    """An MLflow client bound to one store for tracking and registry (a run folder or a URI);
    never the process-wide defaults, which other tests move."""
    import mlflow

    if isinstance(uri, Path):
        uri = f"sqlite:///{(uri / 'mlflow.db').resolve()}"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
