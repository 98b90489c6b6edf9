"""One tracking interface over MLflow and Weights & Biases (either, both or none).

MLflow: the embedded default is a sqlite store plus an artifact folder in the run folder;
MLFLOW_TRACKING_URI (or EXPERIMENT_TRACKING_TRACKING_URI) points it at a server instead, which is
checked first so that an unreachable server fails in seconds. W&B runs offline unless WANDB_MODE
(or EXPERIMENT_TRACKING_WANDB_MODE) says online; its files go to ``<run_dir>/wandb/``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiment_tracking import PROJECT
from experiment_tracking.errors import ExperimentTrackingError
from experiment_tracking.settings import ProjectSettings

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from mlflow.models.model import ModelInfo

logger = logging.getLogger(__name__)

PYFUNC_MODEL_FILE = Path(__file__).with_name("pyfunc_model.py")
MODEL_REQUIREMENTS = (
    "mlflow",
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "pandas",
    "numpy",
)
HEALTH_TIMEOUT_S = 5.0


class TrackingError(ExperimentTrackingError):
    """The tracking backend cannot be used; the message says why and what to do."""


def _to_param(value: Any) -> str:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    return str(value)


def git_commit() -> tuple[str, bool]:
    """(commit, dirty) of the working directory's checkout; CI may pass GIT_COMMIT/GITHUB_SHA."""
    for variable in ("GIT_COMMIT", "GITHUB_SHA"):
        if os.environ.get(variable):
            return os.environ[variable], False
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit, bool(status)


def model_pip_requirements() -> list[str]:
    """Pinned requirements of the logged model (explicit, so MLflow does not infer them)."""
    requirements = []
    for dist in MODEL_REQUIREMENTS:
        try:
            # "2.13.0+cpu" -> "2.13.0": the local build tag is not on public indexes.
            requirements.append(f"{dist}=={version(dist).split('+')[0]}")
        except PackageNotFoundError:
            requirements.append(dist)
    return requirements


# --- MLflow -----------------------------------------------------------------------------------


def check_tracking_server(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Fail fast with a clear message when an HTTP tracking server does not answer /health."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        response = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except requests.RequestException as error:
        reason = type(error).__name__
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({reason}); start it, fix "
            "MLFLOW_TRACKING_URI, or unset it to use the local store in the run folder"
        ) from error
    if response.status_code != 200:
        raise TrackingError(
            f"MLflow tracking server {uri} answered /health with HTTP {response.status_code}"
        )


def configure_mlflow(settings: ProjectSettings, experiment: str | None = None) -> str:
    """Point MLflow at the configured store and select the experiment; returns its id."""
    import mlflow

    uri = settings.resolved_tracking_uri()
    check_tracking_server(uri)
    if settings.uses_local_store():
        settings.run_dir.mkdir(parents=True, exist_ok=True)
    # An unreachable server must not stall in retries after the health check either.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    # Asynchronous metrics are written in batches once a second: fewer store transactions during
    # training, and finish() drains the queue at once instead of waiting out the logging
    # thread's one-second poll (measured: ~0.05 s instead of ~1.8 s per run).
    os.environ.setdefault("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", "1")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = experiment or settings.experiment
    try:
        found = mlflow.get_experiment_by_name(name)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            artifact_location = (
                settings.local_artifact_root().as_uri() if settings.uses_local_store() else None
            )
            experiment_id = mlflow.create_experiment(name, artifact_location=artifact_location)
    except mlflow.exceptions.MlflowException as error:
        raise TrackingError(
            f"MLflow store {uri} refused the experiment {name!r}: {error}"
        ) from error
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


class MlflowBackend:
    name = "mlflow"

    def __init__(
        self,
        run_name: str,
        tags: Mapping[str, str],
        resume_run_id: str | None = None,
        nested: bool = False,
    ) -> None:
        import mlflow

        self._mlflow = mlflow
        if resume_run_id:
            run = mlflow.start_run(run_id=resume_run_id, nested=nested)
        else:
            run = mlflow.start_run(run_name=run_name, nested=nested, tags=dict(tags))
        self.run_id = run.info.run_id
        self.experiment_id = run.info.experiment_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        existing = self._mlflow.get_run(self.run_id).data.params
        fresh = {k: _to_param(v)[:6000] for k, v in params.items() if k not in existing}
        if fresh:
            self._mlflow.log_params(fresh, run_id=self.run_id)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None) -> None:
        # Asynchronous: the training loop does not wait for the store.
        self._mlflow.log_metrics(dict(metrics), step=step, run_id=self.run_id, synchronous=False)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._mlflow.MlflowClient().log_batch(
            self.run_id,
            tags=[self._mlflow.entities.RunTag(k, _to_param(v)) for k, v in tags.items()],
        )

    def log_figure(self, figure: Figure, artifact_file: str) -> None:
        self._mlflow.MlflowClient().log_figure(self.run_id, figure, artifact_file)

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        self._mlflow.MlflowClient().log_dict(self.run_id, dict(data), artifact_file)

    def log_dataset(self, frame: pd.DataFrame, name: str, context: str, digest: str) -> None:
        import mlflow.data
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        dataset = mlflow.data.from_pandas(frame, name=name, targets="label", digest=digest[:36])
        self._mlflow.MlflowClient().log_inputs(
            self.run_id,
            datasets=[
                DatasetInput(
                    dataset._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, context)]
                )
            ],
        )

    def log_model(self, model_dir: Path, example_texts: list[str]) -> ModelInfo:
        import pandas as pd
        from mlflow.models.signature import ModelSignature
        from mlflow.types.schema import ColSpec, Schema

        signature = ModelSignature(
            inputs=Schema([ColSpec("string", "text")]),
            outputs=Schema([ColSpec("string", "label"), ColSpec("double", "p_great")]),
        )
        active = self._mlflow.active_run()
        if active is None or active.info.run_id != self.run_id:
            raise TrackingError("log_model needs this tracker's MLflow run to be the active run")
        return self._mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_MODEL_FILE),
            artifacts={"classifier": str(model_dir)},
            signature=signature,
            input_example=pd.DataFrame({"text": example_texts}),
            pip_requirements=model_pip_requirements(),
        )

    def finish(self, status: str) -> None:
        self._mlflow.flush_async_logging()
        active = self._mlflow.active_run()
        if active is not None and active.info.run_id == self.run_id:
            self._mlflow.end_run(status=status)
        else:
            self._mlflow.MlflowClient().set_terminated(self.run_id, status=status)


# --- Weights & Biases -------------------------------------------------------------------------


class WandbBackend:
    name = "wandb"

    def __init__(
        self,
        settings: ProjectSettings,
        run_name: str,
        tags: Mapping[str, str],
        resume_run_id: str | None = None,
        group: str | None = None,
    ) -> None:
        wandb_root = settings.run_dir.resolve()
        wandb_root.mkdir(parents=True, exist_ok=True)
        # Keep every W&B file in the run folder (Pants sandboxes may have no HOME).
        os.environ.setdefault("WANDB_SILENT", "true")
        for variable, sub in (
            ("WANDB_CACHE_DIR", "wandb-cache"),
            ("WANDB_CONFIG_DIR", "wandb-config"),
            ("WANDB_DATA_DIR", "wandb-data"),
            ("WANDB_ARTIFACT_DIR", "wandb-artifacts"),
        ):
            os.environ.setdefault(variable, str(wandb_root / sub))
        import wandb

        self._wandb = wandb
        self.run = wandb.init(
            project=settings.wandb_project,
            name=run_name,
            dir=str(wandb_root),
            mode=settings.resolved_wandb_mode(),
            id=resume_run_id,
            resume="allow" if resume_run_id else None,
            group=group,
            tags=[f"{k}={v}"[:64] for k, v in tags.items()],
            reinit="create_new",
            settings=wandb.Settings(console="off", x_disable_stats=True),
        )
        self.run_id = self.run.id
        self.run_dir = Path(self.run.dir).parent

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.run.config.update(
            {
                k: v if isinstance(v, int | float | str | bool) else _to_param(v)
                for k, v in params.items()
            },
            allow_val_change=True,
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int | None) -> None:
        self.run.log(dict(metrics), step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.run.summary.update({f"tag/{k}": _to_param(v) for k, v in tags.items()})

    def log_figure(self, figure: Figure, artifact_file: str) -> None:
        import io

        from PIL import Image

        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")  # rendered here: W&B's own path needs pyplot
        buffer.seek(0)
        self.run.log({f"plots/{Path(artifact_file).stem}": self._wandb.Image(Image.open(buffer))})

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        self.run.summary.update(
            {Path(artifact_file).stem: json.loads(json.dumps(data, default=str))}
        )

    def log_dataset(self, frame: pd.DataFrame, name: str, context: str, digest: str) -> None:
        self.run.config.update(
            {f"dataset/{context}/{name}": {"rows": len(frame), "sha256": digest}},
            allow_val_change=True,
        )

    def finish(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "FINISHED" else 1)


# --- the fan-out ------------------------------------------------------------------------------


class Tracker:
    """Sends every call to each configured backend; with none it does nothing."""

    def __init__(self, backends: Iterable[MlflowBackend | WandbBackend] = ()) -> None:
        self.backends = list(backends)

    @property
    def enabled(self) -> bool:
        return bool(self.backends)

    @property
    def run_ids(self) -> dict[str, str]:
        return {backend.name: backend.run_id for backend in self.backends}

    @property
    def mlflow(self) -> MlflowBackend | None:
        return next((b for b in self.backends if isinstance(b, MlflowBackend)), None)

    @property
    def wandb(self) -> WandbBackend | None:
        return next((b for b in self.backends if isinstance(b, WandbBackend)), None)

    def log_params(self, params: Mapping[str, Any]) -> None:
        for backend in self.backends:
            backend.log_params(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for backend in self.backends:
            backend.log_metrics(metrics, step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for backend in self.backends:
            backend.set_tags(tags)

    def log_figure(self, figure: Figure, artifact_file: str) -> None:
        for backend in self.backends:
            backend.log_figure(figure, artifact_file)

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        for backend in self.backends:
            backend.log_dict(data, artifact_file)

    def log_dataset(self, frame: pd.DataFrame, name: str, context: str, digest: str) -> None:
        for backend in self.backends:
            backend.log_dataset(frame, name, context, digest)

    def log_model(self, model_dir: Path, example_texts: list[str]) -> ModelInfo | None:
        """Log the classifier folder as an MLflow pyfunc model (MLflow only)."""
        return self.mlflow.log_model(model_dir, example_texts) if self.mlflow else None

    def finish(self, status: str = "FINISHED") -> None:
        for backend in reversed(self.backends):
            backend.finish(status)


def standard_tags(dataset_sha256: str, kind: str) -> dict[str, str]:
    commit, dirty = git_commit()
    return {
        "project": PROJECT,
        "run_kind": kind,
        "dataset_sha256": dataset_sha256,
        "mlflow.source.git.commit": commit,
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
    }


def open_tracker(
    settings: ProjectSettings,
    run_name: str,
    tags: Mapping[str, str],
    resume_ids: Mapping[str, str] | None = None,
    nested: bool = False,
    group: str | None = None,
) -> Tracker:
    """Start (or resume) a run on each backend in ``settings.trackers``."""
    resume_ids = resume_ids or {}
    backends: list[MlflowBackend | WandbBackend] = []
    try:
        if "mlflow" in settings.trackers:
            configure_mlflow(settings)
            backends.append(MlflowBackend(run_name, tags, resume_ids.get("mlflow"), nested))
        if "wandb" in settings.trackers and settings.resolved_wandb_mode() != "disabled":
            backends.append(WandbBackend(settings, run_name, tags, resume_ids.get("wandb"), group))
    except BaseException:
        Tracker(backends).finish("FAILED")
        raise
    return Tracker(backends)
