"""The model the service serves: loaded from a registry URI (``models:/<name>@<alias>``,
``models:/<name>/<version>``, ``models:/<name>/latest``), any other MLflow URI or a model folder,
and checked with a smoke prediction; which URIs a reload may load (``reload_source_problem``).
``reloads.py`` swaps models in every worker.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ml_cicd.errors import ModelLoadError
from ml_cicd.model import INPUT_EXAMPLE, load_pyfunc, p_great_function
from ml_cicd.settings import ServiceSettings

logger = logging.getLogger(__name__)

PGreat = Callable[[Sequence[str]], np.ndarray]
# models:/<name>@<alias>, models:/<name>/<version> or models:/<name>/latest (no sub-path).
REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>[^/@]+))$")
LATEST = "latest"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
# Model-version tags read when the model's own metadata lacks them: ours, then
# experiment-tracking's.
DATA_VERSION_TAGS = ("data_version", "dataset_sha256")
METRIC_TAG_PREFIX = "metrics."
EVAL_METRICS_TAG = "eval.metrics"


@dataclass(frozen=True)
class RegistryReference:
    name: str
    version: str | None  # a number or "latest"
    alias: str | None


def parse_registry_uri(uri: str) -> RegistryReference | None:
    """The registered model a ``models:/`` URI names, or None for any other URI or a folder."""
    if not uri.startswith("models:/"):
        return None
    match = REGISTRY_URI.match(uri)
    if match is None:
        raise ModelLoadError(
            f"cannot read model URI {uri}: use models:/<name>@<alias>, models:/<name>/<version> "
            "or models:/<name>/latest"
        )
    return RegistryReference(match["name"], match["version"], match["alias"])


@dataclass(frozen=True)
class LoadedModel:
    """One loaded, smoke-tested model and what it says about itself. Immutable: swapped whole."""

    uri: str  # as requested, e.g. models:/reviews@champion
    name: str
    version: str | None  # registry version; None for a folder or another URI
    alias: str | None
    data_version: str | None
    metrics: Mapping[str, float]
    model_type: str | None
    run_id: str | None
    model_uuid: str | None
    loaded_at: datetime
    p_great: PGreat = field(repr=False, compare=False)
    generation: int = 0  # set when the service installs it (reloads.py)
    # A registry model's downloaded files; removed once the model is no longer served.
    download_dir: Path | None = field(default=None, repr=False, compare=False)

    def reference(self) -> dict[str, str | None]:
        """What every prediction reply names."""
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "data_version": self.data_version,
        }

    def info(self) -> dict[str, Any]:
        return {
            **self.reference(),
            "uri": self.uri,
            "metrics": dict(self.metrics),
            "model_type": self.model_type,
            "run_id": self.run_id,
            "model_uuid": self.model_uuid,
            "loaded_at": self.loaded_at.isoformat(),
            "generation": self.generation,
        }

    def discard_files(self) -> None:
        if self.download_dir is not None:
            shutil.rmtree(self.download_dir, ignore_errors=True)


# --- Loading --------------------------------------------------------------------------------------


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _registry_client(tracking_uri: str | None) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def resolve_version(reference: RegistryReference, tracking_uri: str | None) -> Any:
    """The registry's ModelVersion that ``reference`` names now (aliases move)."""
    from mlflow.exceptions import MlflowException

    tracking_uri = tracking_uri or os.environ.get(TRACKING_URI_ENV)
    if not tracking_uri:
        # MLflow would fall back to a local store in the working folder: never what a server wants.
        raise ModelLoadError(
            f"models:/{reference.name} needs a registry: set MLFLOW_TRACKING_URI "
            "(or ML_CICD_TRACKING_URI) to the tracking server"
        )
    client = _registry_client(tracking_uri)
    try:
        if reference.alias is not None:
            return client.get_model_version_by_alias(reference.name, reference.alias)
        if reference.version == LATEST:
            versions = client.search_model_versions(f"name = '{reference.name}'")
            if not versions:
                raise ModelLoadError(f"registered model {reference.name} has no versions")
            return max(versions, key=lambda version: int(version.version))
        return client.get_model_version(reference.name, str(reference.version))
    except MlflowException as error:
        raise ModelLoadError(
            f"cannot resolve model {reference.name} "
            f"{'@' + reference.alias if reference.alias else 'version ' + str(reference.version)}"
            f" in the registry at {tracking_uri or 'the default tracking URI'}: "
            f"{_first_line(error)}"
        ) from error


def check_model_uri(uri: str, tracking_uri: str | None = None) -> None:
    """Cheap pre-flight before a server starts: the registry version or the folder exists.

    Other URIs (runs:/, s3://, ...) are checked when they load."""
    reference = parse_registry_uri(uri)
    if reference is not None:
        resolve_version(reference, tracking_uri)
    elif _is_path(uri) and not (Path(uri) / "MLmodel").is_file():
        raise ModelLoadError(f"{uri} is not an MLflow model folder (no MLmodel file in it)")


def _is_path(uri: str) -> bool:
    """A local folder rather than an MLflow URI (models:/, runs:/, s3://, file://, ...)."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", uri) is None


def _metadata(pyfunc: Any) -> dict[str, Any]:
    metadata = getattr(getattr(pyfunc, "metadata", None), "metadata", None)
    return dict(metadata) if isinstance(metadata, Mapping) else {}


def _numeric_metrics(raw: Mapping[str, Any]) -> dict[str, float]:
    metrics = {}
    for key, value in raw.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if np.isfinite(number):
            metrics[str(key)] = number
    return metrics


def _metrics_from_tags(tags: Mapping[str, str]) -> dict[str, float]:
    metrics = _numeric_metrics(
        {k[len(METRIC_TAG_PREFIX) :]: v for k, v in tags.items() if k.startswith(METRIC_TAG_PREFIX)}
    )
    if not metrics and EVAL_METRICS_TAG in tags:
        try:
            metrics = _numeric_metrics(json.loads(tags[EVAL_METRICS_TAG]))
        except (ValueError, AttributeError):
            metrics = {}
    return metrics


def smoke_test(p_great: PGreat) -> np.ndarray:
    """Predict ``INPUT_EXAMPLE``: finite probabilities in [0, 1], one per text, else
    ModelLoadError."""
    try:
        values = np.asarray(p_great(list(INPUT_EXAMPLE)), dtype=float)
    except Exception as error:  # any model code may fail; the reason goes to the caller
        raise ModelLoadError(
            f"smoke prediction failed: {type(error).__name__}: {_first_line(error)}"
        ) from error
    if values.shape != (len(INPUT_EXAMPLE),):
        raise ModelLoadError(
            f"smoke prediction returned shape {values.shape} for {len(INPUT_EXAMPLE)} texts"
        )
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
        raise ModelLoadError(
            f"smoke prediction returned p_great {values.tolist()}: not probabilities in [0, 1]"
        )
    return values


def load_model(
    uri: str, tracking_uri: str | None = None, version: str | None = None
) -> LoadedModel:
    """Load ``uri`` and smoke-test it; ModelLoadError (one line) says why it cannot serve.

    A ``models:/`` URI is resolved to its version first (or to ``version``, when given: every
    worker of a service loads the version the first one resolved), then that version is
    downloaded, so the reported version is the one loaded even when the alias moves meanwhile."""
    reference = parse_registry_uri(uri)
    registered = None
    download_dir = None
    tags: Mapping[str, str] = {}
    try:
        if reference is None:
            if _is_path(uri) and not Path(uri).exists():
                raise ModelLoadError(f"no model folder at {uri}")
            pyfunc = _load_pyfunc(uri)
        else:
            tracking_uri = tracking_uri or os.environ.get(TRACKING_URI_ENV)
            pinned = RegistryReference(reference.name, version, None) if version else reference
            registered = resolve_version(pinned, tracking_uri)
            tags = dict(registered.tags or {})
            download_dir = Path(tempfile.mkdtemp(prefix="ml-cicd-model-"))
            local = _download(reference.name, str(registered.version), tracking_uri, download_dir)
            pyfunc = _load_pyfunc(local, shown_as=f"{uri} (version {registered.version})")
        p_great = p_great_function(pyfunc)
        smoke_test(p_great)
    except BaseException:
        if download_dir is not None:
            shutil.rmtree(download_dir, ignore_errors=True)
        raise

    metadata = _metadata(pyfunc)
    data_version = metadata.get("data_version") or next(
        (tags[tag] for tag in DATA_VERSION_TAGS if tags.get(tag)), None
    )
    metrics = _numeric_metrics(metadata.get("metrics") or {}) or _metrics_from_tags(tags)
    mlmodel = getattr(pyfunc, "metadata", None)
    name = reference.name if reference is not None else Path(uri.rstrip("/")).name or uri
    loaded = LoadedModel(
        uri=uri,
        name=name,
        version=str(registered.version) if registered is not None else None,
        alias=reference.alias if reference is not None else None,
        data_version=str(data_version) if data_version else None,
        metrics=MappingProxyType(metrics),
        model_type=str(metadata["model_type"]) if metadata.get("model_type") else None,
        run_id=getattr(mlmodel, "run_id", None) or getattr(registered, "run_id", None),
        model_uuid=getattr(mlmodel, "model_uuid", None),
        loaded_at=datetime.now(UTC),
        p_great=p_great,
        download_dir=download_dir,
    )
    logger.info(
        "loaded model %s (name %s, version %s, data version %s)",
        uri,
        loaded.name,
        loaded.version,
        (loaded.data_version or "unknown")[:12],
    )
    return loaded


def _download(name: str, version: str, tracking_uri: str | None, destination: Path) -> str:
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        return str(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}",
                dst_path=str(destination),
                tracking_uri=tracking_uri,
                registry_uri=tracking_uri,
            )
        )
    except (MlflowException, OSError) as error:
        raise ModelLoadError(
            f"cannot download model {name} version {version}: {_first_line(error)}"
        ) from error


def _load_pyfunc(uri: str, shown_as: str | None = None) -> Any:
    try:
        return load_pyfunc(uri)
    except ModelLoadError as error:
        if shown_as is None:
            raise
        raise ModelLoadError(str(error).replace(uri, shown_as)) from error.__cause__
    except Exception as error:  # model code runs at load time (unpickling, load_context)
        raise ModelLoadError(
            f"cannot load model {shown_as or uri}: {type(error).__name__}: {_first_line(error)}"
        ) from error


def default_model_dir(settings: ServiceSettings) -> Path:
    return settings.run_dir / "model"


def ensure_default_model(settings: ServiceSettings) -> str:
    """The embedded default model folder, trained (a few seconds) when it is missing."""
    folder = default_model_dir(settings)
    if not (folder / "MLmodel").is_file():
        from ml_cicd.training import train_default_model

        logger.info("no model at %s: training the embedded default model", folder)
        train_default_model(folder, seed=settings.seed)
    return str(folder.resolve())


def configured_model_uri(settings: ServiceSettings) -> str:
    """The URI the service starts with: ``settings.model_uri``, else the default model folder."""
    return settings.model_uri or str(default_model_dir(settings).resolve())


def served_model_uri(settings: ServiceSettings) -> str:
    """``configured_model_uri``, the default model trained first when it is missing."""
    if not settings.model_uri:
        ensure_default_model(settings)
    return configured_model_uri(settings)


def reload_source_problem(uri: str, settings: ServiceSettings) -> str | None:
    """Why an admin reload may not load ``uri``, or None when it may. A reload loads from the
    registry (``models:/``); besides, only the URI the service was started with and folders
    under ``settings.reload_folders``: loading a pyfunc runs its code (unpickling), so an
    arbitrary folder or URI is refused. ModelLoadError for a malformed ``models:/`` URI."""
    if parse_registry_uri(uri) is not None or uri == configured_model_uri(settings):
        return None
    allowed = [Path(folder).resolve() for folder in settings.reload_folders]
    if _is_path(uri):
        real = Path(uri).resolve()  # symlinks and ".." resolved: no way out of an allowed folder
        if any(real.is_relative_to(folder) for folder in allowed):
            return None
        listed = ", ".join(map(str, allowed)) or "none configured"
        return (
            f"{uri} is not under a folder allowed for reloads (ML_CICD_RELOAD_FOLDERS: {listed}); "
            "reload a registry model: models:/<name>@<alias> or models:/<name>/<version>"
        )
    return (
        f"a reload loads registry models only (models:/<name>@<alias> or "
        f"models:/<name>/<version>), not {uri.split(':', 1)[0]}: URIs"
    )
