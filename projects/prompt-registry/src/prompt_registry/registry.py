"""MLflow's prompt registry: immutable versions, the ``staging`` and ``production`` aliases, and
eval runs linked to the prompt version they measured.

Each version carries the digest of its content (template, variables, parameters) as a tag, so
registering a prompt whose content already is a version creates nothing new. Promoting to
production keeps the version it replaces under ``previous-production``: ``rollback`` is one
command away. Application code calls :func:`load_for_app`, which reads
``prompts:/<name>@production`` from the registry, or the prompt file when no registry is set.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prompt_registry.errors import RegistryError
from prompt_registry.prompts import ModelParams, PromptContent, PromptFolder, load_prompt

logger = logging.getLogger(__name__)

STAGING, PRODUCTION, PREVIOUS_PRODUCTION = "staging", "production", "previous-production"
KNOWN_ALIASES = (STAGING, PRODUCTION, PREVIOUS_PRODUCTION)
DIGEST_TAG, VARIABLES_TAG = "content_sha256", "variables"


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:300] if str(error) else type(error).__name__


class Registry:
    """The prompt registry (and tracking store) at one MLflow tracking URI."""

    def __init__(self, tracking_uri: str, experiment: str = "prompt-evals") -> None:
        import mlflow
        from mlflow import MlflowClient

        self.tracking_uri, self.experiment = tracking_uri, experiment
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri, registry_uri=tracking_uri)

    # --- versions and aliases -------------------------------------------------------------------

    def versions(self, name: str) -> list[Any]:
        """Every version of the prompt, oldest first ([] when the prompt is not registered)."""
        from mlflow.exceptions import MlflowException

        try:
            if self.client.get_prompt(name) is None:
                return []
            found = list(self.client.search_prompt_versions(name, max_results=1000))
        except MlflowException as error:
            if "RESOURCE_DOES_NOT_EXIST" in str(error.error_code):
                return []
            raise RegistryError(f"registry {self.tracking_uri}: {_short(error)}") from None
        except OSError as error:
            raise RegistryError(
                f"cannot reach registry {self.tracking_uri}: {_short(error)}"
            ) from None
        return sorted(found, key=lambda v: int(v.version))

    def aliases(self, name: str) -> dict[str, int]:
        """The project's aliases (staging, production, previous-production) that are set."""
        found = {alias: self.alias_version(name, alias) for alias in KNOWN_ALIASES}
        return {alias: version for alias, version in found.items() if version is not None}

    def alias_version(self, name: str, alias: str) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_prompt_version_by_alias(name, alias).version)
        except MlflowException:
            return None
        except OSError as error:
            raise RegistryError(
                f"cannot reach registry {self.tracking_uri}: {_short(error)}"
            ) from None

    def set_alias(self, name: str, alias: str, version: int) -> None:
        import mlflow

        mlflow.genai.set_prompt_alias(name, alias, version)

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
        except MlflowException as error:
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
        existing = [
            int(v.version)
            for v in self.versions(folder.name)
            if v.tags.get(DIGEST_TAG) == content.digest
        ]
        if existing:
            version, created = existing[-1], False
        else:
            tags = {DIGEST_TAG: content.digest, VARIABLES_TAG: ",".join(content.variables)}
            tags.update({f"meta.{k}": v for k, v in folder.spec.metadata.items()})
            registered = mlflow.genai.register_prompt(
                name=folder.name,
                template=content.template,
                commit_message=message or folder.spec.description or None,
                tags=tags,
                model_config={
                    "max_tokens": content.params.max_new_tokens,
                    "temperature": content.params.temperature,
                },
            )
            version, created = int(registered.version), True
        self.set_alias(folder.name, STAGING, version)
        return version, created

    def promote_production(self, name: str, version: int) -> int | None:
        """Point ``production`` at ``version``; the replaced version stays reachable as
        ``previous-production``. Returns the replaced version."""
        previous = self.alias_version(name, PRODUCTION)
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

    def log_eval(
        self, content: PromptContent, report: Any, run_name: str | None, tags: dict[str, str]
    ) -> str:
        """One MLflow run per eval: parameters, pass rates, per-example results; linked to the
        prompt version when it is a registered one."""
        import mlflow

        mlflow.set_experiment(self.experiment)
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
                    **content.params.model_dump(),
                }
            )
            mlflow.log_metrics(
                {
                    "pass_rate": report.pass_rate,
                    "pass_rate_low": report.pass_interval.low,
                    "pass_rate_high": report.pass_interval.high,
                    "cache_hits": report.cache_hits,
                    "model_calls": report.model_calls,
                    **{
                        f"pass_rate_{name}": rate for name, rate in report.scorer_pass_rates.items()
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


def content_of(version: Any) -> PromptContent:
    """A registry PromptVersion as PromptContent (parameters from its model config)."""
    config = version.model_config or {}
    params = ModelParams(
        max_new_tokens=int(config.get("max_tokens") or ModelParams().max_new_tokens),
        temperature=float(config.get("temperature") or 0.0),
    )
    variables = version.tags.get(VARIABLES_TAG)
    return PromptContent(
        name=version.name,
        template=str(version.template),
        variables=tuple(variables.split(",")) if variables else tuple(sorted(version.variables)),
        params=params,
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
