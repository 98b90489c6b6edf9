"""What the commands share: the provider (asked for the model a version names), the cache, the
registry, the evaluation of one prompt version on an eval config, and the gate of changed prompts
against production (from the registry, or from the files at a git commit), judged with
production's eval config."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from prompt_registry.changes import prompt_at, scorer_code_at
from prompt_registry.errors import PromptRegistryError, ProviderError, RegistryError
from prompt_registry.evalconfig import EvalConfig, config_changes, scorer_code_digest
from prompt_registry.evaluation import EvalReport, run_eval
from prompt_registry.gate import GateResult, NewConfigRuns, ScorerCode, decide
from prompt_registry.prompts import PromptContent, PromptFolder, load_prompt
from prompt_registry.providers import (
    GenerationCache,
    LocalProvider,
    OpenAIProvider,
    Progress,
    Provider,
)
from prompt_registry.registry import PRODUCTION, Registry, registry_for
from prompt_registry.scorers import build_scorer
from prompt_registry.settings import ProjectSettings

logger = logging.getLogger(__name__)


def make_provider(
    settings: ProjectSettings, name: str | None = None, progress: Progress | None = None
) -> Provider:
    """The provider the settings name (or ``name``); ``progress`` hears of each generation."""
    if (name or settings.provider) == "openai":
        return OpenAIProvider(
            settings.openai_base_url,
            settings.openai_model,
            settings.openai_api_key,
            settings.openai_concurrency,
            settings.openai_timeout_s,
            settings.openai_max_retries,
            progress,
        )
    return LocalProvider(settings.model_dir, settings.batch_size, progress)


@dataclass
class Production:
    content: PromptContent | None
    source: str


@dataclass
class Baselines:
    """The no-ratchet baselines of one gate (registry versions only)."""

    # What production holds the candidate to; None when that is production itself (or none).
    current: PromptContent | None = None
    # The baseline the candidate would set once production, when it moves it (its pin, or
    # dropping production's pin); the gate requires it to be no worse than the current one.
    moved_to: PromptContent | None = None
    # Why the candidate's pin cannot be a baseline (a version that was never production).
    refused_pin: str | None = None


class Harness:
    """Evaluations and gates under one set of settings (one provider, cache and registry)."""

    def __init__(
        self,
        settings: ProjectSettings,
        provider: Provider | None = None,
        judge: Provider | None = None,
        track: bool = True,
    ) -> None:
        self.settings = settings
        self.provider = provider or make_provider(settings)
        self.judge = judge
        self.cache = GenerationCache(settings.cache_file()) if settings.cache else None
        self.track = track
        self._registry: Registry | None = None
        # The endpoint asked for each model a version names (one provider per model).
        self._served: dict[str, Provider] = {}

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self.settings.run_dir.mkdir(parents=True, exist_ok=True)
            self._registry = registry_for(self.settings)
        return self._registry

    def folder(self, name: str) -> PromptFolder:
        return load_prompt(self.settings.prompts_dir, name)

    def provider_for(self, content: PromptContent) -> Provider:
        """The provider asked for the model the version names (the settings' provider when it
        names none); only an OpenAI-compatible endpoint serves models by name."""
        model = content.params.name
        if model is None:
            return self.provider
        if not isinstance(self.provider, OpenAIProvider):
            raise ProviderError(
                f"{content.name} {content.label()} runs on model {model!r}, served by name: "
                "use the openai provider (--provider openai)"
            )
        if model not in self._served:
            self._served[model] = self.provider.serving(model)
        return self._served[model]

    def evaluate(
        self, content: PromptContent, config: EvalConfig, run_name: str | None = None
    ) -> EvalReport:
        """``content`` (on the model it names) on the examples and with the scorers of
        ``config``."""
        scorers = [build_scorer(s, self.judge) for s in config.scorers]
        return run_eval(
            content,
            config.examples,
            scorers,
            self.provider_for(content),
            self.cache,
            self.registry if self.track else None,
            run_name,
            {"eval_config.sha256": config.digest, "golden": config.golden},
        )

    def production(self, name: str, base_ref: str | None, scratch: Path) -> Production:
        """The production version: the registry's ``production`` alias, or with no registry
        configured and a base commit given, the prompt files at that commit."""
        if self.settings.tracking_uri or base_ref is None:
            version = self.registry.alias_version(name, PRODUCTION)
            if version is None:
                return Production(None, f"no {PRODUCTION} alias in {self.registry.tracking_uri}")
            return Production(self.registry.content(name, version=version), "registry")
        folder = prompt_at(self.settings.prompts_dir, name, base_ref, scratch)
        if folder is None:
            return Production(None, f"not at {base_ref}")
        content = folder.content(source=f"{base_ref[:12]}")
        code = scorer_code_at(self.settings.prompts_dir, base_ref)
        if code is not None:
            content = replace(content, eval_config=replace(content.config, scorer_code=code))
        return Production(content, f"files at {base_ref}")

    def _baseline_version(self, name: str, config: EvalConfig) -> int | None:
        """The no-ratchet baseline an eval config names: its pin, else the first production
        version (None when no version was ever marked production)."""
        if config.baseline_version is None:
            return self.registry.first_production(name)
        return config.baseline_version

    def baselines(self, candidate: PromptContent, production: PromptContent) -> Baselines:
        """The baseline production holds the candidate to (production's stored pin, else the
        first production version), and the one the candidate would hold later versions to once
        it is production, when that differs: the baseline may move only to a version that was
        production (checked here) and is no worse (checked by the gate)."""
        name, registry = production.name, self.registry
        current = self._baseline_version(name, production.config)
        if current is not None and not registry.was_production(name, current):
            raise RegistryError(
                f"{name} {production.label()} pins baseline v{current}, which was never "
                f"{PRODUCTION}"
            )
        following = self._baseline_version(name, candidate.config)
        refused = None
        if following not in (None, current) and not registry.was_production(name, following):
            refused = f"pins baseline v{following}, which was never {PRODUCTION}"
            following = current

        def load(version: int | None) -> PromptContent | None:
            if version is None or version == production.version:
                return None
            return registry.content(name, version=version)

        return Baselines(
            current=load(current),
            moved_to=(load(following) or production) if following != current else None,
            refused_pin=refused,
        )

    def gate_content(
        self,
        candidate: PromptContent,
        production: PromptContent | None,
        baselines: Baselines | None = None,
        accept_scorer_code: bool = False,
    ) -> GateResult:
        """The candidate against production (and the baseline) on production's eval config,
        and on its own config when that differs."""
        name, own = candidate.name, candidate.config
        if production is None:
            report = self.evaluate(candidate, own, f"gate-{name}-candidate")
            return decide(report, None, self.settings.gate_max_drop, own.min_pass_rate)
        config = production.config
        baselines = baselines or Baselines()

        def run(content: PromptContent, on: EvalConfig, role: str) -> EvalReport:
            return self.evaluate(content, on, f"gate-{name}-{role}")

        def run_baseline(content: PromptContent | None, role: str) -> EvalReport | None:
            return run(content, config, role) if content else None

        changes = config_changes(config, own)
        new_config = (
            NewConfigRuns(
                run(candidate, own, "candidate-own-config"),
                run(production, own, "production-candidate-config"),
                own.min_pass_rate,
                changes,
            )
            if changes
            else None
        )
        return decide(
            run(candidate, config, "candidate"),
            run(production, config, "production"),
            self.settings.gate_max_drop,
            config.min_pass_rate,
            baseline=run_baseline(baselines.current, "baseline"),
            moved_baseline=run_baseline(baselines.moved_to, "new-baseline"),
            refused_pin=baselines.refused_pin,
            new_config=new_config,
            scorer_code=ScorerCode(config.scorer_code, scorer_code_digest(), accept_scorer_code),
            min_gain=self.settings.gate_min_gain,
        )

    def gate(
        self, names: list[str], base_ref: str | None = None, accept_scorer_code: bool = False
    ) -> list[GateResult]:
        """Each named prompt's files against its production version."""
        results = []
        with tempfile.TemporaryDirectory(prefix="prompt-gate-") as scratch:
            for name in names:
                candidate = self.folder(name).content()
                production = self.production(name, base_ref, Path(scratch))
                logger.info("gate %s: production from %s", name, production.source)
                content = production.content
                in_registry = production.source == "registry"
                baselines = self.baselines(candidate, content) if content and in_registry else None
                results.append(self.gate_content(candidate, content, baselines, accept_scorer_code))
        return results

    def promote(
        self, name: str, version: int, accept_scorer_code: bool = False
    ) -> tuple[GateResult, int | None]:
        """``version`` becomes production only if it passes the gate against the current
        production version (or the floor, with none yet). Returns the gate and the replaced
        version (None when the gate failed or there was none)."""
        registry = self.registry
        current = registry.alias_version(name, PRODUCTION)
        if current == version:
            raise PromptRegistryError(f"{name} v{version} already is {PRODUCTION}")
        candidate = registry.content(name, version=version)
        production = registry.content(name, version=current) if current is not None else None
        baselines = self.baselines(candidate, production) if production else None
        result = self.gate_content(candidate, production, baselines, accept_scorer_code)
        if not result.passed:
            return result, None
        code = result.scorer_code
        accepted = code.transition() if code and code.changed else None
        return result, registry.promote_production(
            name, version, accepted, gated=True, gated_against=current
        )


def build_harness(
    settings: ProjectSettings,
    judge: str | None = None,
    progress: Progress | None = None,
    provider: Provider | None = None,
) -> Harness:
    """A harness on ``provider`` or the settings' provider (``progress`` hears of each
    generation) and, for ``llm_judge`` scorers, the ``judge`` provider (local or openai)."""
    return Harness(
        settings,
        provider=provider or make_provider(settings, progress=progress),
        judge=make_provider(settings, judge) if judge else None,
    )


def evaluate_prompt(
    settings: ProjectSettings,
    name: str,
    version: int | None = None,
    alias: str | None = None,
    limit: int | None = None,
    judge: str | None = None,
    progress: Progress | None = None,
    provider: Provider | None = None,
) -> EvalReport:
    """The ``eval`` command's work without its printing (the benchmark times exactly this, with
    its loaded model as ``provider``): the prompt file, or a registry version, on the first
    ``limit`` examples of its own eval config's golden set."""
    harness = build_harness(settings, judge, progress, provider)
    content = (
        harness.folder(name).content()
        if version is None and alias is None
        else harness.registry.content(name, version, alias)
    )
    config = content.config
    if limit is not None:
        config = replace(config, examples=config.examples[:limit])
    return harness.evaluate(content, config)
