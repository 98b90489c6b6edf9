"""The eval harness: render a prompt version on a golden set, generate (through the cache),
score, and record the run in MLflow, linked to the prompt version.

An example passes when every scorer passes it; the pass rate comes with a Wilson 95% interval.
Answers cut at the token limit (finish reason ``length``) are counted: a truncated answer can
fail a scorer for want of tokens, not of quality.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from roadmap_lab.stats import Interval, wilson_interval

from prompt_registry.golden import Example
from prompt_registry.prompts import PromptContent
from prompt_registry.providers import GenerationCache, GenerationRequest, Provider, generate_cached
from prompt_registry.scorers import Scorer

logger = logging.getLogger(__name__)


@dataclass
class ExampleResult:
    id: str
    output: str
    passed: bool
    scores: dict[str, dict[str, Any]]
    truncated: bool = False


@dataclass
class EvalReport:
    prompt: str
    label: str
    digest: str
    version: int | None
    provider: str
    examples: list[ExampleResult]
    pass_interval: Interval
    scorer_pass_rates: dict[str, float]
    cache_hits: int
    model_calls: int
    seconds: float
    run_id: str | None = None

    @property
    def truncated(self) -> int:
        """Answers cut at the token limit (finish reason ``length``)."""
        return sum(e.truncated for e in self.examples)

    @property
    def n(self) -> int:
        return len(self.examples)

    @property
    def pass_rate(self) -> float:
        return sum(e.passed for e in self.examples) / max(1, self.n)

    def passes(self) -> list[bool]:
        return [e.passed for e in self.examples]

    def summary(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "label": self.label,
            "version": self.version,
            "digest": self.digest,
            "provider": self.provider,
            "examples": self.n,
            "pass_rate": round(self.pass_rate, 4),
            "pass_rate_interval": self.pass_interval.as_dict(),
            "scorer_pass_rates": self.scorer_pass_rates,
            "cache_hits": self.cache_hits,
            "model_calls": self.model_calls,
            "truncated": self.truncated,
            "seconds": round(self.seconds, 3),
            "run_id": self.run_id,
        }


def run_eval(
    content: PromptContent,
    examples: Sequence[Example],
    scorers: Sequence[Scorer],
    provider: Provider,
    cache: GenerationCache | None,
    tracking: Any | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
) -> EvalReport:
    """Evaluate one prompt version. ``tracking`` (a :class:`registry.Registry`) records the run."""
    started = time.perf_counter()
    calls_before = provider.calls
    params = content.params
    requests = [
        GenerationRequest(content.render(e.vars), params.max_new_tokens, params.temperature)
        for e in examples
    ]
    generation = generate_cached(provider, requests, cache)
    per_scorer = {scorer.name: scorer.score(generation.texts, examples) for scorer in scorers}
    results = [
        ExampleResult(
            id=example.id,
            output=generated.text,
            passed=all(per_scorer[name][i].passed for name in per_scorer),
            scores={name: asdict(per_scorer[name][i]) for name in per_scorer},
            truncated=generated.truncated,
        )
        for i, (example, generated) in enumerate(zip(examples, generation.generations, strict=True))
    ]
    passed = sum(r.passed for r in results)
    report = EvalReport(
        prompt=content.name,
        label=content.label(),
        digest=content.digest,
        version=content.version,
        provider=provider.name,
        examples=results,
        pass_interval=wilson_interval(passed, len(results)),
        scorer_pass_rates={
            name: round(sum(s.passed for s in scores) / max(1, len(scores)), 4)
            for name, scores in per_scorer.items()
        },
        cache_hits=generation.hits,
        model_calls=provider.calls - calls_before,
        seconds=0.0,
    )
    if tracking is not None:
        report.run_id = tracking.log_eval(content, report, run_name, tags or {})
    report.seconds = time.perf_counter() - started
    logger.info(
        "%s %s: pass rate %.3f on %d examples (%d cached, %d model calls, %d cut at the limit)",
        report.prompt,
        report.label,
        report.pass_rate,
        report.n,
        report.cache_hits,
        report.model_calls,
        report.truncated,
    )
    return report
