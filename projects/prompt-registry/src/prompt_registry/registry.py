"""MLflow's prompt registry: immutable versions, the ``staging`` and ``production`` aliases, and
eval runs linked to the prompt version they measured.

Each version carries as tags the digest of its content (template, variables, the model it names and
its parameters, eval config, scorer code), so registering a prompt whose content already is a
version creates nothing new, and its eval config itself (golden examples, scorers, floor, pinned
baseline, the scorer code's digest), which the gate judges later candidates with. Promoting to
production marks the version (the first one so marked is the default no-ratchet baseline) and keeps
the version it replaces under ``previous-production``: ``rollback`` is one command away.

Reads fail closed: only the registry's own "not found" means a prompt or alias is absent; any
other failure (unreachable server, an error answer) is a :class:`RegistryError`. Application
code calls :func:`load_for_app`, which reads ``prompts:/<name>@production`` from the registry,
or the prompt file when no registry is set.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prompt_registry.errors import RegistryError
from prompt_registry.evalconfig import EvalConfig, check_storable
from prompt_registry.prompts import ModelParams, PromptContent, PromptFolder, load_prompt
from prompt_registry.settings import ProjectSettings

logger = logging.getLogger(__name__)

STAGING, PRODUCTION, PREVIOUS_PRODUCTION = "staging", "production", "previous-production"
KNOWN_ALIASES = (STAGING, PRODUCTION, PREVIOUS_PRODUCTION)
DIGEST_TAG, VARIABLES_TAG = "content_sha256", "variables"
EVAL_CONFIG_TAG, SCORER_CODE_TAG = "eval_config", "scorer_code_sha256"
# Set when a version first becomes production (UTC time), and when its gate accepted a scorer-code
# change (production's digest -> the running one).
PROMOTED_TAG, ACCEPTED_SCORER_CODE_TAG = "promoted_to_production_at", "accepted_scorer_code_change"
# MLflow keeps model-version tag values up to this length.
MAX_TAG_VALUE = 100_000


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:300] if str(error) else type(error).__name__


def _not_found(error: Exception, alias: str | None = None) -> bool:
    """The registry's own answer that a prompt (or the alias) does not exist."""
    code = str(getattr(error, "error_code", ""))
    if "RESOURCE_DOES_NOT_EXIST" in code:
        return True
    return (
        alias is not None
        and "INVALID_PARAMETER_VALUE" in code
        and f"alias {alias} not found" in str(error)
    )


class Registry:
    """The prompt registry (and tracking store) at one MLflow tracking URI."""

    def __init__(
        self, tracking_uri: str, experiment: str = "prompt-evals", artifact_root: Path | None = None
    ) -> None:
        import mlflow
        from mlflow import MlflowClient

        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.artifact_root = artifact_root
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri, registry_uri=tracking_uri)

    @contextlib.contextmanager
    def _failing_closed(self, what: str) -> Iterator[None]:
        """Any failure of the registry as one RegistryError line."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except (MlflowException, OSError) as error:
            raise RegistryError(
                f"registry {self.tracking_uri}: cannot {what}: {_short(error)}"
            ) from None

    # --- versions and aliases -------------------------------------------------------------------

    def versions(self, name: str) -> list[Any]:
        """Every version of the prompt, oldest first ([] when the prompt is not registered)."""
        from mlflow.exceptions import MlflowException

        with self._failing_closed(f"list the versions of {name}"):
            try:
                found = list(self.client.search_prompt_versions(name, max_results=1000))
            except MlflowException as error:
                if not _not_found(error):
                    raise
                return []
        return sorted(found, key=lambda v: int(v.version))

    def aliases(self, name: str) -> dict[str, int]:
        """The project's aliases (staging, production, previous-production) that are set."""
        found = {alias: self.alias_version(name, alias) for alias in KNOWN_ALIASES}
        return {alias: version for alias, version in found.items() if version is not None}

    def alias_version(self, name: str, alias: str) -> int | None:
        """The version the alias names; None only when the registry answers that the prompt or
        the alias does not exist (any other failure raises: the gate never mistakes an outage
        for "no production version")."""
        from mlflow.exceptions import MlflowException

        with self._failing_closed(f"read {name}@{alias}"):
            try:
                found = self.client.get_prompt_version_by_alias(name, alias)
            except MlflowException as error:
                if not _not_found(error, alias):
                    raise
                return None
        if found is None:  # MLflow answers None when it swallowed an error
            raise RegistryError(f"registry {self.tracking_uri}: no answer for {name}@{alias}")
        return int(found.version)

    def first_production(self, name: str) -> int | None:
        """The first version that was ever production (the default no-ratchet baseline): the
        earliest promotion, not the lowest number (an older version promoted later must not
        become the baseline)."""
        promoted = [
            (v.tags[PROMOTED_TAG], int(v.version))
            for v in self.versions(name)
            if PROMOTED_TAG in v.tags
        ]
        return min(promoted, default=(None, None))[1]

    def was_production(self, name: str, version: int) -> bool:
        """Whether the version was ever promoted to production."""
        return any(
            int(v.version) == version and PROMOTED_TAG in v.tags for v in self.versions(name)
        )

    def set_alias(self, name: str, alias: str, version: int) -> None:
        import mlflow

        with self._failing_closed(f"set {name}@{alias}"):
            mlflow.genai.set_prompt_alias(name, alias, version)

    def tag_version(self, name: str, version: int, key: str, value: str) -> None:
        with self._failing_closed(f"tag {name} v{version}"):
            self.client.set_prompt_version_tag(name, str(version), key, value)

    def content(
        self, name: str, version: int | None = None, alias: str | None = None
    ) -> PromptContent:
        """A registered version (by number or alias) as prompt content."""
        import mlflow
        from mlflow.exceptions import MlflowException

        ref = f"@{alias}" if alias else f"/{version}"
        try:
            loaded = mlflow.genai.load_prompt(
                f"prompts:/{name}{ref}", link_to_model=False, cache_ttl_seconds=0
            )
        except (MlflowException, OSError) as error:
            raise RegistryError(
                f"no prompt version prompts:/{name}{ref}: {_short(error)}"
            ) from None
        if loaded is None:
            raise RegistryError(f"no prompt version prompts:/{name}{ref}")
        return content_of(loaded)

    def register(self, folder: PromptFolder, message: str | None = None) -> tuple[int, bool]:
        """Register the folder's content unless a version already holds it; point ``staging`` at
        the version. Returns (version, created)."""
        import mlflow

        content = folder.content()
        stored_config = check_storable(content.config, MAX_TAG_VALUE)
        existing = [
            int(v.version)
            for v in self.versions(folder.name)
            if v.tags.get(DIGEST_TAG) == content.digest
        ]
        if existing:
            version, created = existing[-1], False
        else:
            tags = {
                DIGEST_TAG: content.digest,
                VARIABLES_TAG: ",".join(content.variables),
                EVAL_CONFIG_TAG: stored_config,
                SCORER_CODE_TAG: content.config.scorer_code,
            }
            tags.update({f"meta.{k}": v for k, v in folder.spec.metadata.items()})
            with self._failing_closed(f"register {folder.name}"):
                registered = mlflow.genai.register_prompt(
                    name=folder.name,
                    template=content.template,
                    commit_message=message or folder.spec.description or None,
                    tags=tags,
                    model_config=model_config(content.params),
                )
            version, created = int(registered.version), True
        self.set_alias(folder.name, STAGING, version)
        return version, created

    def promote_production(
        self,
        name: str,
        version: int,
        accepted_scorer_code: str | None = None,
        *,
        gated: bool = False,
        gated_against: int | None = None,
    ) -> int | None:
        """Point ``production`` at ``version`` and mark it as promoted (with the scorer-code
        change its gate accepted, if any); the replaced version stays reachable as
        ``previous-production``. Returns the replaced version. ``gated``: refuse when
        production is no longer ``gated_against``, the version (or None) the gate compared
        with."""
        previous = self.alias_version(name, PRODUCTION)
        if gated and previous != gated_against:
            raise RegistryError(
                f"{name}: {PRODUCTION} moved from {gated_against} to {previous} during the "
                "gate: run the promotion again"
            )
        if accepted_scorer_code:
            self.tag_version(name, version, ACCEPTED_SCORER_CODE_TAG, accepted_scorer_code)
        # The replaced version too, in case its alias was set by hand: the first production
        # version (the default baseline) is the earliest mark, and a mark is never moved.
        for promoted in (previous, version):
            if promoted is not None and not self.was_production(name, promoted):
                now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # sorts as text
                self.tag_version(name, promoted, PROMOTED_TAG, now)
        if previous is not None and previous != version:
            self.set_alias(name, PREVIOUS_PRODUCTION, previous)
        self.set_alias(name, PRODUCTION, version)
        return previous

    def rollback(self, name: str) -> tuple[int, int]:
        """Production back to ``previous-production`` (which then names the rolled-back one)."""
        aliases = self.aliases(name)
        if PREVIOUS_PRODUCTION not in aliases or PRODUCTION not in aliases:
            raise RegistryError(f"prompt {name} has no previous production version to go back to")
        current, previous = aliases[PRODUCTION], aliases[PREVIOUS_PRODUCTION]
        self.set_alias(name, PRODUCTION, previous)
        self.set_alias(name, PREVIOUS_PRODUCTION, current)
        return current, previous

    # --- eval runs --------------------------------------------------------------------------------

    def use_experiment(self) -> None:
        """The eval experiment, created with the local store's artifact folder where there is one
        (MLflow's default is ./mlruns in whatever folder the command runs from)."""
        import mlflow

        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = (
            found.experiment_id
            if found is not None
            else self.client.create_experiment(
                self.experiment,
                artifact_location=self.artifact_root.as_uri() if self.artifact_root else None,
            )
        )
        mlflow.set_experiment(experiment_id=experiment_id)

    def log_eval(
        self, content: PromptContent, report: Any, run_name: str | None, tags: dict[str, str]
    ) -> str:
        """One MLflow run per eval: parameters, pass rates, per-example results; linked to the
        prompt version when it is a registered one."""
        import mlflow

        with self._failing_closed(f"record the eval of {content.name}"):
            self.use_experiment()
            with mlflow.start_run(run_name=run_name or f"eval-{content.name}") as run:
                mlflow.set_tags(
                    {
                        "prompt.name": content.name,
                        "prompt.digest": content.digest,
                        "prompt.source": content.source,
                        **(
                            {"prompt.uri": f"prompts:/{content.name}/{content.version}"}
                            if content.version
                            else {}
                        ),
                        **tags,
                    }
                )
                mlflow.log_params(
                    {
                        "prompt_version": (
                            content.version if content.version is not None else "unregistered"
                        ),
                        "provider": report.provider,
                        "examples": report.n,
                        **content.params.recorded(),
                    }
                )
                mlflow.log_metrics(
                    {
                        "pass_rate": report.pass_rate,
                        "pass_rate_low": report.pass_interval.low,
                        "pass_rate_high": report.pass_interval.high,
                        "cache_hits": report.cache_hits,
                        "model_calls": report.model_calls,
                        "truncated": report.truncated,
                        **{
                            f"pass_rate_{name}": rate
                            for name, rate in report.scorer_pass_rates.items()
                        },
                    }
                )
                mlflow.log_dict(
                    {"summary": report.summary(), "examples": [vars(e) for e in report.examples]},
                    "eval_results.json",
                )
                if content.version is not None:
                    self.client.link_prompt_version_to_run(
                        run.info.run_id, f"prompts:/{content.name}/{content.version}"
                    )
                return str(run.info.run_id)


def model_config(params: ModelParams) -> dict[str, Any]:
    """The version's model and parameters in MLflow's prompt model config (``model_name`` only
    when the version names its model)."""
    config: dict[str, Any] = {
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
    }
    if params.name is not None:
        config["model_name"] = params.name
    return config


def content_of(version: Any) -> PromptContent:
    """A registry PromptVersion as PromptContent (model and parameters from its model config)."""
    config = version.model_config or {}
    params = ModelParams(
        name=config.get("model_name") or None,
        max_new_tokens=int(config.get("max_tokens") or ModelParams().max_new_tokens),
        temperature=float(config.get("temperature") or 0.0),
    )
    variables = version.tags.get(VARIABLES_TAG)
    stored_config = version.tags.get(EVAL_CONFIG_TAG)
    try:
        eval_config = EvalConfig.from_json(stored_config) if stored_config else None
    except (ValueError, KeyError, TypeError):
        raise RegistryError(
            f"{version.name} v{version.version}: its stored eval config is unreadable"
        ) from None
    return PromptContent(
        name=version.name,
        template=str(version.template),
        variables=tuple(variables.split(",")) if variables else tuple(sorted(version.variables)),
        params=params,
        eval_config=eval_config,
        source=f"registry v{version.version}",
        version=int(version.version),
        metadata={k[5:]: v for k, v in version.tags.items() if k.startswith("meta.")},
    )


def load_for_app(
    name: str, prompts_dir: Path, tracking_uri: str | None, alias: str = PRODUCTION
) -> PromptContent:
    """What application code calls: ``prompts:/<name>@<alias>`` from the registry when one is
    configured, else the prompt's file (the fallback needs no server)."""
    if not tracking_uri:
        return load_prompt(prompts_dir, name).content()
    return Registry(tracking_uri).content(name, alias=alias)


def registry_for(settings: ProjectSettings) -> Registry:
    """The settings' registry; a local store keeps its eval artifacts under its run folder."""
    return Registry(
        settings.resolved_tracking_uri(),
        settings.experiment,
        settings.local_artifact_root() if settings.uses_local_store() else None,
    )
