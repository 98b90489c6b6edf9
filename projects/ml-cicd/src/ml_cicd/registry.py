"""The MLflow model registry the retrain pipeline writes to: versions tagged with their data
version and metrics, the ``champion`` alias that the service loads, ``previous-champion``, and a
one-command rollback along the chain of promotions (each promoted version records the version it
replaced in the tag ``promoted_over``)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from ml_cicd.errors import RegistryError
from ml_cicd.settings import ProjectSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous-champion"
TRACKING_URI_VAR = "MLFLOW_TRACKING_URI"


def use_store(settings: ProjectSettings) -> None:
    """Point MLflow at the settings' store (a local sqlite store in run_dir by default).

    ``mlflow.set_tracking_uri`` also exports MLFLOW_TRACKING_URI, which settings made later in
    this process would read as theirs: the variable is put back as it was (MLflow's own global
    takes precedence over it)."""
    import mlflow

    if settings.uses_local_store():
        settings.run_dir.mkdir(parents=True, exist_ok=True)
    uri = settings.resolved_tracking_uri()
    exported = os.environ.get(TRACKING_URI_VAR)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if exported is None:
        os.environ.pop(TRACKING_URI_VAR, None)
    else:
        os.environ[TRACKING_URI_VAR] = exported


def configure(settings: ProjectSettings) -> str:
    """``use_store``, and the experiment created if needed; returns the experiment id."""
    import mlflow

    use_store(settings)
    experiment = mlflow.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    artifact_location = (
        settings.local_artifact_root().as_uri() if settings.uses_local_store() else None
    )
    return str(mlflow.create_experiment(settings.experiment, artifact_location=artifact_location))


def client(settings: ProjectSettings) -> MlflowClient:
    from mlflow import MlflowClient

    use_store(settings)
    uri = settings.resolved_tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def model_exists(mlflow_client: MlflowClient, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(name)
    except MlflowException:
        return False
    return True


def version_for_alias(mlflow_client: MlflowClient, name: str, alias: str) -> Any | None:
    """The model version an alias points at, or None (no such model or alias)."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def versions(mlflow_client: MlflowClient, name: str) -> list[Any]:
    if not model_exists(mlflow_client, name):
        return []
    found = mlflow_client.search_model_versions(f"name='{name}'")
    return sorted(found, key=lambda v: int(v.version))


def version_trained_on(mlflow_client: MlflowClient, name: str, data_version: str) -> Any | None:
    """The newest version trained on exactly this data version, if any."""
    matches = [
        v for v in versions(mlflow_client, name) if v.tags.get("data_version") == data_version
    ]
    return matches[-1] if matches else None


def promote(mlflow_client: MlflowClient, name: str, version: str) -> str | None:
    """Point ``champion`` at ``version``; the replaced champion becomes ``previous-champion``.
    Returns the replaced version (None when there was none)."""
    old = version_for_alias(mlflow_client, name, CHAMPION)
    old_version = str(old.version) if old is not None else None
    if old_version is not None:
        mlflow_client.set_model_version_tag(name, version, "promoted_over", old_version)
        mlflow_client.set_registered_model_alias(name, PREVIOUS_CHAMPION, old_version)
    mlflow_client.set_registered_model_alias(name, CHAMPION, version)
    logger.info("%s: champion -> version %s (was %s)", name, version, old_version or "none")
    return old_version


def rollback(settings: ProjectSettings) -> dict[str, str | None]:
    """Move ``champion`` back to the version the current champion replaced; the current one is
    tagged ``rolled_back``. Raises RegistryError when there is nothing to roll back to."""
    mlflow_client = client(settings)
    name = settings.registered_model
    current = version_for_alias(mlflow_client, name, CHAMPION)
    if current is None:
        raise RegistryError(f"{name} has no '{CHAMPION}' alias: nothing to roll back")
    target = current.tags.get("promoted_over")
    if not target:
        raise RegistryError(
            f"{name} version {current.version} was the first champion: no earlier one to restore"
        )
    target_version = mlflow_client.get_model_version(name, target)
    mlflow_client.set_model_version_tag(name, current.version, "rolled_back", "true")
    mlflow_client.set_registered_model_alias(name, CHAMPION, target)
    earlier = target_version.tags.get("promoted_over")
    if earlier:
        mlflow_client.set_registered_model_alias(name, PREVIOUS_CHAMPION, earlier)
    else:
        mlflow_client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)
    logger.info("%s: champion rolled back from version %s to %s", name, current.version, target)
    return {"model": name, "from": str(current.version), "to": target, "previous": earlier}
