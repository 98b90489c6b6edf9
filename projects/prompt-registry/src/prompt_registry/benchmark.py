"""The benchmark (the CLI's ``benchmark``): examples/s of an eval run, on one machine, one run.

Each comparison is repeated ``repeats`` times back to back (the batching runs in alternating
order) and the headline is the median of the per-repeat ratios: on a shared 2-core machine a
neighbour's load spike can stall one run, and every run's figure is kept in run order.

* Batched local generation vs one at a time: the same ``examples`` requests of the
  ``review-sentiment`` prompt (its golden set, cycled) through SmolLM2-135M, greedy, at most
  ``max_new_tokens`` each; the model is loaded and warmed up before either is timed.
* A cached rerun vs cold: the whole ``eval`` command (prompt and golden set loading, generation,
  scoring, the MLflow run with its artifact) in a fresh run folder, then again; the cold run loads
  the model, the rerun finds every generation in the cache and never loads it. The MLflow store
  is created before either (its schema migration is a one-off, not part of an eval).

Results go to ``<dist>/prompt-registry/benchmark/`` (the CLI prints their headline); ``--publish``
copies them to the committed ``projects/prompt-registry/benchmarks/``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from roadmap_lab.machine import package_versions
from roadmap_lab.results import (
    BenchmarkConditions,
    Headline,
    ResultsWriter,
    ensure_quiet_machine,
    headline_figure,
    publish_benchmark,
)
from roadmap_lab.stats import Interval, paired_ratio

from prompt_registry import PROJECT
from prompt_registry.golden import load_golden
from prompt_registry.harness import evaluate_prompt
from prompt_registry.plots import throughput_figure
from prompt_registry.prompts import load_prompt
from prompt_registry.providers import GenerationRequest, LocalProvider
from prompt_registry.registry import Registry
from prompt_registry.settings import BenchmarkSizes, ProjectSettings

BENCH_PROMPT = "review-sentiment"
MEASURED_PACKAGES = ("torch", "transformers", "tokenizers", "mlflow", "numpy")


def _requests(settings: ProjectSettings, sizes: BenchmarkSizes) -> list[GenerationRequest]:
    folder = load_prompt(settings.prompts_dir, BENCH_PROMPT)
    content = folder.content()
    examples = load_golden(folder.path, folder.spec.eval.golden)
    return [
        GenerationRequest(content.render(examples[i % len(examples)].vars), sizes.max_new_tokens)
        for i in range(sizes.examples)
    ]


def _timed_generation(provider: LocalProvider, requests: list[GenerationRequest]) -> dict[str, Any]:
    started = time.perf_counter()
    outputs = provider.generate(requests)
    seconds = time.perf_counter() - started
    return {
        "batch_size": provider.batch_size,
        "examples": len(requests),
        "seconds": round(seconds, 3),
        "examples_per_second": round(len(requests) / seconds, 4),
        "outputs_sample": outputs[:4],
    }


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def measure_batching(settings: ProjectSettings, sizes: BenchmarkSizes) -> dict[str, Any]:
    """Batched and one-at-a-time runs back to back, in alternating order, ``repeats`` times; the
    headline is the median of the per-repeat ratios (robust to a neighbour's load spike)."""
    requests = _requests(settings, sizes)
    provider = LocalProvider(settings.model_dir, batch_size=sizes.batch_size)
    provider.generate(requests[:2])  # load and warm up
    runs: list[dict[str, Any]] = []
    ratios = []
    for repeat in range(sizes.repeats):
        pair = {}
        order = (sizes.batch_size, 1) if repeat % 2 == 0 else (1, sizes.batch_size)
        for batch_size in order:
            provider.batch_size = batch_size
            run = {"repeat": repeat, **_timed_generation(provider, requests)}
            runs.append(run)
            pair[batch_size] = run
        ratios.append(
            pair[sizes.batch_size]["examples_per_second"] / pair[1]["examples_per_second"]
        )
    batched = [r for r in runs if r["batch_size"] == sizes.batch_size]
    sequential = [r for r in runs if r["batch_size"] == 1]
    agree = sum(
        a == b
        for a, b in zip(batched[0]["outputs_sample"], sequential[0]["outputs_sample"], strict=True)
    )
    return {
        "runs_in_order": runs,
        "ratios": [round(r, 3) for r in ratios],
        "speedup": _median(ratios),
        "batched_examples_per_second": _median([r["examples_per_second"] for r in batched]),
        "one_at_a_time_examples_per_second": _median(
            [r["examples_per_second"] for r in sequential]
        ),
        "sample_outputs_identical": f"{agree}/{len(batched[0]['outputs_sample'])}",
    }


def measure_cache(settings: ProjectSettings, run_dir: Path, repeats: int) -> dict[str, Any]:
    """Per repeat: a cold ``eval`` in a fresh run folder, then the same command again."""
    runs: list[dict[str, Any]] = []
    ratios = []
    for repeat in range(repeats):
        folder = run_dir / f"repeat-{repeat}"
        repeat_settings = settings.model_copy(
            update={"run_dir": folder, "tracking_uri": None, "cache": True}
        )
        folder.mkdir(parents=True, exist_ok=True)
        # The store's schema migrations are a one-off, not part of an eval.
        Registry(repeat_settings.resolved_tracking_uri(), repeat_settings.experiment)
        pair: dict[str, dict[str, Any]] = {}
        for label in ("cold", "cached"):
            started = time.perf_counter()
            report = evaluate_prompt(repeat_settings, BENCH_PROMPT)
            seconds = time.perf_counter() - started
            pair[label] = {
                "repeat": repeat,
                "run": label,
                "examples": report.n,
                "seconds": round(seconds, 3),
                "examples_per_second": round(report.n / seconds, 4),
                "model_calls": report.model_calls,
                "cache_hits": report.cache_hits,
                "pass_rate": round(report.pass_rate, 4),
                "mlflow_run_id": report.run_id,
            }
            runs.append(pair[label])
        ratios.append(pair["cached"]["examples_per_second"] / pair["cold"]["examples_per_second"])
    return {
        "runs_in_order": runs,
        "ratios": [round(r, 3) for r in ratios],
        "speedup": _median(ratios),
        "cold_examples_per_second": _median(
            [r["examples_per_second"] for r in runs if r["run"] == "cold"]
        ),
        "cached_examples_per_second": _median(
            [r["examples_per_second"] for r in runs if r["run"] == "cached"]
        ),
    }


def paired_speedup(
    runs: list[dict[str, Any]], key: str, candidate: Any, baseline: Any
) -> Interval | None:
    """candidate / baseline examples/s over the repeats (each repeat ran both back to back);
    None with a single repeat (no interval)."""
    per_repeat: dict[int, dict[Any, float]] = {}
    for run in runs:
        per_repeat.setdefault(run["repeat"], {})[run[key]] = run["examples_per_second"]
    pairs = [(r[candidate], r[baseline]) for _, r in sorted(per_repeat.items())]
    if len(pairs) < 2:
        return None
    return paired_ratio([c for c, _ in pairs], [b for _, b in pairs])


def speedup_headlines(
    batching: dict[str, Any], cache: dict[str, Any], sizes: BenchmarkSizes
) -> list[Headline]:
    return [
        headline_figure(
            f"Batched local generation (batch {sizes.batch_size}) vs one at a time, "
            f"{sizes.repeats} interleaved repeats",
            batching["speedup"],
            "x",
            baseline=batching["one_at_a_time_examples_per_second"],
            target=">= 3",
            interval=paired_speedup(batching["runs_in_order"], "batch_size", sizes.batch_size, 1),
            digits=3,
            baseline_unit="examples/s",
        ),
        headline_figure(
            "Cached eval rerun vs cold (whole eval command, MLflow run included), "
            f"{sizes.repeats} repeats",
            cache["speedup"],
            "x",
            baseline=cache["cold_examples_per_second"],
            target=">= 20",
            interval=paired_speedup(cache["runs_in_order"], "run", "cached", "cold"),
            digits=3,
            baseline_unit="examples/s",
        ),
    ]


def run_benchmark(
    settings: ProjectSettings, sizes: BenchmarkSizes, command: str, publish: bool = False
) -> tuple[Path, Path | None]:
    if publish:
        ensure_quiet_machine()
    conditions = BenchmarkConditions()
    batching = measure_batching(settings, sizes)
    with tempfile.TemporaryDirectory(prefix="prompt-bench-") as scratch:
        cache = measure_cache(settings, Path(scratch) / "run", sizes.repeats)
    writer = ResultsWriter(PROJECT, settings.dist_dir, command, kind="benchmark")
    writer.save_figure(
        throughput_figure(
            {
                f"batch {sizes.batch_size} vs 1": (
                    batching["one_at_a_time_examples_per_second"],
                    batching["batched_examples_per_second"],
                ),
                "cached vs cold eval": (
                    cache["cold_examples_per_second"],
                    cache["cached_examples_per_second"],
                ),
            },
            "Eval throughput (SmolLM2-135M, CPU)",
        ),
        "throughput",
    )

    results = {
        "headline": speedup_headlines(batching, cache, sizes),
        "sizes": sizes.model_dump(),
        "prompt": BENCH_PROMPT,
        "batching": batching,
        "cache": cache,
        "versions": package_versions(*MEASURED_PACKAGES),
        "conditions": conditions.finish(),
    }
    results_file = writer.write(results)
    return results_file, publish_benchmark(results_file) if publish else None
