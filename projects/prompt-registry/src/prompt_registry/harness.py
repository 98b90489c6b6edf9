"""What the commands share: the provider, the cache, the registry, the evaluation of one prompt
version, and the gate of changed prompts against production (from the registry, or from the files
at a git commit)."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prompt_registry.changes import prompt_at
from prompt_registry.errors import PromptRegistryError
from prompt_registry.evaluation import EvalReport, run_eval
from prompt_registry.gate import GateResult, decide
from prompt_registry.golden import load_golden
from prompt_registry.prompts import PromptContent, PromptFolder, load_prompt
from prompt_registry.providers import (
    GenerationCache,
    LocalProvider,
    OpenAIProvider,
    Progress,
    Provider,
)
from prompt_registry.registry import PRODUCTION, Registry
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
            progress,
        )
    return LocalProvider(settings.model_dir, settings.batch_size, progress)


@dataclass
class Baseline:
    content: PromptContent | None
    source: str


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

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self.settings.run_dir.mkdir(parents=True, exist_ok=True)
            self._registry = Registry(
                self.settings.resolved_tracking_uri(), self.settings.experiment
            )
        return self._registry

    def folder(self, name: str) -> PromptFolder:
        return load_prompt(self.settings.prompts_dir, name)

    def evaluate(
        self, folder: PromptFolder, content: PromptContent, run_name: str | None = None
    ) -> EvalReport:
        """``content`` on the golden set and with the scorers of ``folder`` (the same examples for
        every version of the prompt)."""
        spec = folder.spec.eval
        examples = load_golden(folder.path, spec.golden, spec.limit)
        scorers = [build_scorer(s, self.judge) for s in spec.scorers]
        return run_eval(
            content,
            examples,
            scorers,
            self.provider,
            self.cache,
            self.registry if self.track else None,
            run_name,
            {"golden": spec.golden},
        )

    def production(self, name: str, base_ref: str | None, scratch: Path) -> Baseline:
        """The production version: the registry's ``production`` alias, or with no registry
        configured and a base commit given, the prompt files at that commit."""
        if self.settings.tracking_uri or base_ref is None:
            version = self.registry.alias_version(name, PRODUCTION)
            if version is None:
                return Baseline(None, f"no {PRODUCTION} alias in {self.registry.tracking_uri}")
            return Baseline(self.registry.content(name, version=version), "registry")
        folder = prompt_at(self.settings.prompts_dir, name, base_ref, scratch)
        if folder is None:
            return Baseline(None, f"not at {base_ref}")
        return Baseline(folder.content(source=f"{base_ref[:12]}"), f"files at {base_ref}")

    def gate_content(
        self, folder: PromptFolder, candidate: PromptContent, baseline: PromptContent | None
    ) -> GateResult:
        candidate_report = self.evaluate(folder, candidate, f"gate-{folder.name}-candidate")
        baseline_report = (
            self.evaluate(folder, baseline, f"gate-{folder.name}-production")
            if baseline is not None
            else None
        )
        return decide(
            candidate_report,
            baseline_report,
            self.settings.gate_max_drop,
            folder.spec.eval.min_pass_rate,
            self.settings.gate_resamples,
        )

    def gate(self, names: list[str], base_ref: str | None = None) -> list[GateResult]:
        """Each named prompt's files against its production version."""
        results = []
        with tempfile.TemporaryDirectory(prefix="prompt-gate-") as scratch:
            for name in names:
                folder = self.folder(name)
                baseline = self.production(name, base_ref, Path(scratch))
                logger.info("gate %s: production from %s", name, baseline.source)
                results.append(self.gate_content(folder, folder.content(), baseline.content))
        return results

    def promote(self, name: str, version: int) -> tuple[GateResult, int | None]:
        """``version`` becomes production only if it passes the gate against the current
        production version (or the floor, with none yet). Returns the gate and the replaced
        version (None when the gate failed or there was none)."""
        folder = self.folder(name)
        registry = self.registry
        current = registry.alias_version(name, PRODUCTION)
        if current == version:
            raise PromptRegistryError(f"{name} v{version} already is {PRODUCTION}")
        candidate = registry.content(name, version=version)
        baseline = registry.content(name, version=current) if current is not None else None
        result = self.gate_content(folder, candidate, baseline)
        if not result.passed:
            return result, None
        return result, registry.promote_production(name, version)


def build_harness(
    settings: ProjectSettings, judge: str | None = None, progress: Progress | None = None
) -> Harness:
    """A harness on the settings' provider (``progress`` hears of each generation) and, for
    ``llm_judge`` scorers, the ``judge`` provider (local or openai)."""
    return Harness(
        settings,
        provider=make_provider(settings, progress=progress),
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
) -> EvalReport:
    """The ``eval`` command's work without its printing (the benchmark times exactly this): the
    prompt file, or a registry version, on the first ``limit`` examples of its golden set."""
    harness = build_harness(settings, judge, progress)
    folder = harness.folder(name)
    if limit is not None:
        spec = folder.spec.model_copy(
            update={"eval": folder.spec.eval.model_copy(update={"limit": limit})}
        )
        folder = PromptFolder(folder.path, spec, folder.template)
    content = (
        folder.content()
        if version is None and alias is None
        else harness.registry.content(name, version, alias)
    )
    return harness.evaluate(folder, content)
