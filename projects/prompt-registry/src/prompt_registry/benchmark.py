"""The benchmark (the CLI's ``benchmark``): examples/s of an eval, on one machine, one run.

Both comparisons have the model loaded and warm on both sides and are repeated ``repeats``
times; the headline is the paired ratio over the repeats (``roadmap_lab.stats.paired_ratio``:
geometric mean of the per-repeat ratios with a t interval on their logs), and every run's
figure is kept in run order.

* Batched local generation vs one at a time: the same ``examples`` requests of the
  ``review-sentiment`` prompt (its golden set, cycled) through SmolLM2-135M, greedy, at most
  ``max_new_tokens`` each, in alternating order. The outputs of both are compared on every
  example of every repeat (left padding could change a token in fp32): mismatches are listed.
* A cached rerun vs a warm uncached eval: the ``eval`` command's work (``evaluate_prompt``:
  prompt file, golden set, generation, scoring, the MLflow run with its artifact) with the
  loaded model, in a fresh run folder: once with the cache off (the uncached side's best
  configuration), once untimed with the cache on to fill it, then timed again with the cache on
  (every generation found). Before each timed eval the process forgets its file digests, so
  the cached side looks up the weights' digest (its cache key) in the machine's digest store as
  a rerun in a new process does; the seconds a full hash of the weights takes (what the first
  eval on a machine pays) are recorded beside the figures. One untimed pair runs first, so
  MLflow's first-call costs fall on neither side.

``--publish`` refuses sizes other than the defaults or another model: the claim's name fixes them.
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
from prompt_registry.errors import BenchmarkError
from prompt_registry.evaluation import EvalReport
from prompt_registry.harness import evaluate_prompt
from prompt_registry.plots import throughput_figure
from prompt_registry.prompts import PromptContent, load_prompt
from prompt_registry.providers import (
    GenerationRequest,
    LocalProvider,
    forget_file_digests,
    sha256_file,
)
from prompt_registry.registry import registry_for
from prompt_registry.settings import BenchmarkSizes, ProjectSettings

BENCH_PROMPT = "review-sentiment"
MEASURED_PACKAGES = ("torch", "transformers", "tokenizers", "mlflow", "numpy")
MAX_MISMATCHES_KEPT = 10


def _content(settings: ProjectSettings) -> PromptContent:
    return load_prompt(settings.prompts_dir, BENCH_PROMPT).content()


def _requests(content: PromptContent, sizes: BenchmarkSizes) -> list[GenerationRequest]:
    examples = content.config.examples
    return [
        GenerationRequest(content.render(examples[i % len(examples)].vars), sizes.max_new_tokens)
        for i in range(sizes.examples)
    ]


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def warm_provider(settings: ProjectSettings, sizes: BenchmarkSizes) -> tuple[LocalProvider, float]:
    """The local model loaded and warmed up (both batch shapes), and the seconds that hashing
    its files takes (what a first eval pays once per machine; a rerun finds the digests in the
    digest store)."""
    provider = LocalProvider(settings.model_dir, batch_size=sizes.batch_size)
    requests = _requests(_content(settings), sizes)
    provider.generate(requests[: sizes.batch_size])
    provider.batch_size = 1
    provider.generate(requests[:1])
    files = sorted(path for path in provider.folder().rglob("*") if path.is_file())
    started = time.perf_counter()
    for path in files:
        sha256_file(path)
    return provider, round(time.perf_counter() - started, 3)


def _mismatches(repeat: int, batched: list[str], sequential: list[str]) -> list[dict[str, Any]]:
    return [
        {"repeat": repeat, "example": i, "batched": a, "one_at_a_time": b}
        for i, (a, b) in enumerate(zip(batched, sequential, strict=True))
        if a != b
    ]


def measure_batching(
    provider: LocalProvider, settings: ProjectSettings, sizes: BenchmarkSizes
) -> dict[str, Any]:
    """Batched and one-at-a-time runs back to back, in alternating order, ``repeats`` times; the
    outputs of the two compared on every example."""
    requests = _requests(_content(settings), sizes)
    runs: list[dict[str, Any]] = []
    mismatches: list[dict[str, Any]] = []
    for repeat in range(sizes.repeats):
        outputs: dict[int, list[str]] = {}
        order = (sizes.batch_size, 1) if repeat % 2 == 0 else (1, sizes.batch_size)
        for batch_size in order:
            provider.batch_size = batch_size
            started, cpu_started = time.perf_counter(), time.process_time()
            generations = provider.generate(requests)
            seconds = time.perf_counter() - started
            cpu_seconds = time.process_time() - cpu_started
            outputs[batch_size] = [g.text for g in generations]
            runs.append(
                {
                    "repeat": repeat,
                    "batch_size": batch_size,
                    "examples": len(requests),
                    "seconds": round(seconds, 3),
                    "cpu_seconds": round(cpu_seconds, 3),
                    "examples_per_second": round(len(requests) / seconds, 4),
                    "truncated": sum(g.truncated for g in generations),
                }
            )
        mismatches += _mismatches(repeat, outputs[sizes.batch_size], outputs[1])
    batched = [r for r in runs if r["batch_size"] == sizes.batch_size]
    sequential = [r for r in runs if r["batch_size"] == 1]
    compared = len(requests) * sizes.repeats
    ratios = _ratios(runs, "batch_size", sizes.batch_size, 1)
    return {
        "runs_in_order": runs,
        "ratios": ratios,
        # A speed-up beyond the batch size means the one-at-a-time run was disturbed.
        "disturbed_repeats": [i for i, ratio in enumerate(ratios) if ratio > sizes.batch_size],
        "batched_examples_per_second": _median([r["examples_per_second"] for r in batched]),
        "one_at_a_time_examples_per_second": _median(
            [r["examples_per_second"] for r in sequential]
        ),
        "outputs_compared": compared,
        "outputs_identical": compared - len(mismatches),
        "mismatches": mismatches[:MAX_MISMATCHES_KEPT],
    }


def _timed_eval(
    settings: ProjectSettings, provider: LocalProvider
) -> tuple[EvalReport, float, float]:
    """The eval command's work (``evaluate_prompt``) with the loaded model: its report, wall and
    CPU seconds. The process's file digests are forgotten first, as in a new eval process."""
    forget_file_digests()
    started, cpu_started = time.perf_counter(), time.process_time()
    report = evaluate_prompt(settings, BENCH_PROMPT, provider=provider)
    return report, time.perf_counter() - started, time.process_time() - cpu_started


def _cache_run(
    repeat: int, label: str, report: EvalReport, seconds: float, cpu: float
) -> dict[str, Any]:
    expected_hits = report.n if label == "cached" else 0
    if report.cache_hits != expected_hits:
        raise BenchmarkError(
            f"repeat {repeat}: the {label} eval found {report.cache_hits} of {report.n} "
            f"generations in the cache, not {expected_hits}"
        )
    return {
        "repeat": repeat,
        "run": label,
        "examples": report.n,
        "seconds": round(seconds, 6),
        "cpu_seconds": round(cpu, 6),
        "examples_per_second": round(report.n / seconds, 4),
        "model_calls": report.model_calls,
        "cache_hits": report.cache_hits,
        "pass_rate": round(report.pass_rate, 4),
        "mlflow_run_id": report.run_id,
    }


def _fresh_settings(settings: ProjectSettings, folder: Path) -> ProjectSettings:
    """A local store in a new folder, its experiment made (a one-off, not part of an eval)."""
    folder.mkdir(parents=True)
    fresh = settings.model_copy(update={"run_dir": folder, "tracking_uri": None})
    registry_for(fresh).use_experiment()
    return fresh


def measure_cache(
    provider: LocalProvider, settings: ProjectSettings, run_dir: Path, repeats: int
) -> dict[str, Any]:
    """Per repeat, in a fresh run folder: the eval with the cache off (the uncached side's best
    configuration), once untimed with the cache on to fill it, then timed again with the cache
    on (every generation found). One untimed pair first, so that MLflow's first-call costs fall
    on neither side."""
    warm = _fresh_settings(settings, run_dir / "warm-up")
    for cache_on in (False, True):
        _timed_eval(warm.model_copy(update={"cache": cache_on}), provider)
    runs: list[dict[str, Any]] = []
    differing = 0
    for repeat in range(repeats):
        fresh = _fresh_settings(settings, run_dir / f"repeat-{repeat}")
        uncached = _timed_eval(fresh.model_copy(update={"cache": False}), provider)
        cached_settings = fresh.model_copy(update={"cache": True})
        _timed_eval(cached_settings, provider)
        cached = _timed_eval(cached_settings, provider)
        runs += [_cache_run(repeat, "uncached", *uncached), _cache_run(repeat, "cached", *cached)]
        differing += sum(
            a.output != b.output
            for a, b in zip(uncached[0].examples, cached[0].examples, strict=True)
        )
    return {
        "runs_in_order": runs,
        "ratios": _ratios(runs, "run", "cached", "uncached"),
        "uncached_examples_per_second": _median(
            [r["examples_per_second"] for r in runs if r["run"] == "uncached"]
        ),
        "cached_examples_per_second": _median(
            [r["examples_per_second"] for r in runs if r["run"] == "cached"]
        ),
        "outputs_differing": differing,
    }


def _pairs(
    runs: list[dict[str, Any]], key: str, candidate: Any, baseline: Any
) -> list[tuple[float, float]]:
    per_repeat: dict[int, dict[Any, float]] = {}
    for run in runs:
        per_repeat.setdefault(run["repeat"], {})[run[key]] = run["examples_per_second"]
    return [(r[candidate], r[baseline]) for _, r in sorted(per_repeat.items())]


def _ratios(runs: list[dict[str, Any]], key: str, candidate: Any, baseline: Any) -> list[float]:
    return [round(c / b, 3) for c, b in _pairs(runs, key, candidate, baseline)]


def paired_speedup(
    runs: list[dict[str, Any]], key: str, candidate: Any, baseline: Any
) -> Interval | None:
    """candidate / baseline examples/s over the repeats (each repeat ran both back to back);
    None with a single repeat (no interval)."""
    pairs = _pairs(runs, key, candidate, baseline)
    if len(pairs) < 2:
        return None
    return paired_ratio([c for c, _ in pairs], [b for _, b in pairs])


CACHE_FIGURE = (
    "Cached eval vs a warm uncached eval, in one process (model loaded, MLflow run included, "
    "imports excluded)"
)


def hashed_speedup(cache: dict[str, Any], hash_seconds: float) -> Interval | None:
    """The cached side as a machine's first cached eval pays it: the weights hashed as well."""
    runs = cache["runs_in_order"]
    cached = [r["examples"] / (r["seconds"] + hash_seconds) for r in runs if r["run"] == "cached"]
    uncached = [r["examples_per_second"] for r in runs if r["run"] == "uncached"]
    return paired_ratio(cached, uncached) if len(cached) >= 2 else None


def speedup_headlines(
    batching: dict[str, Any], cache: dict[str, Any], sizes: BenchmarkSizes, hash_seconds: float
) -> list[Headline]:
    """The two targeted figures and the cached one with the weights hashed (no target); each
    value is its interval's estimate (the paired ratio)."""
    batched = paired_speedup(batching["runs_in_order"], "batch_size", sizes.batch_size, 1)
    cached = paired_speedup(cache["runs_in_order"], "run", "cached", "uncached")
    hashed = hashed_speedup(cache, hash_seconds)
    compared = len(cache["runs_in_order"]) // 2 * (cache["runs_in_order"][0]["examples"])
    return [
        headline_figure(
            f"Batched local generation (batch {sizes.batch_size}) vs one at a time, model warm, "
            f"{sizes.repeats} interleaved repeats",
            round(batched.estimate, 3) if batched else batching["ratios"][0],
            "x",
            baseline=batching["one_at_a_time_examples_per_second"],
            target=">= 3",
            interval=batched,
            digits=3,
            baseline_unit="examples/s",
            outputs_identical=f"{batching['outputs_identical']}/{batching['outputs_compared']}",
        ),
        headline_figure(
            f"{CACHE_FIGURE}, {sizes.repeats} repeats",
            round(cached.estimate, 3) if cached else cache["ratios"][0],
            "x",
            baseline=cache["uncached_examples_per_second"],
            target=">= 20",
            interval=cached,
            digits=3,
            baseline_unit="examples/s",
            outputs_identical=f"{compared - cache['outputs_differing']}/{compared}",
        ),
        headline_figure(
            f"{CACHE_FIGURE}, the weights hashed as on a machine's first cached eval, "
            f"{sizes.repeats} repeats",
            round(hashed.estimate, 3) if hashed else None,
            "x",
            baseline=cache["uncached_examples_per_second"],
            interval=hashed,
            digits=3,
            baseline_unit="examples/s",
        ),
    ]


def run_benchmark(
    settings: ProjectSettings, sizes: BenchmarkSizes, command: str, publish: bool = False
) -> tuple[Path, Path | None]:
    if publish:
        if sizes != BenchmarkSizes() or settings.model_dir is not None:
            raise BenchmarkError(
                "--publish measures the committed claim: default sizes and the shipped model only"
            )
        ensure_quiet_machine()
    conditions = BenchmarkConditions()
    provider, hash_seconds = warm_provider(settings, sizes)
    batching = measure_batching(provider, settings, sizes)
    provider.batch_size = sizes.batch_size
    with tempfile.TemporaryDirectory(prefix="prompt-bench-") as scratch:
        cache = measure_cache(provider, settings, Path(scratch) / "run", sizes.repeats)
    writer = ResultsWriter(PROJECT, settings.dist_dir, command, kind="benchmark")
    writer.save_figure(
        throughput_figure(
            {
                f"batch {sizes.batch_size} vs 1": (
                    batching["one_at_a_time_examples_per_second"],
                    batching["batched_examples_per_second"],
                ),
                "cached vs uncached eval": (
                    cache["uncached_examples_per_second"],
                    cache["cached_examples_per_second"],
                ),
            },
            "Eval throughput (SmolLM2-135M, CPU)",
        ),
        "throughput",
    )

    results = {
        "headline": speedup_headlines(batching, cache, sizes, hash_seconds),
        "sizes": sizes.model_dump(),
        "prompt": BENCH_PROMPT,
        "batching": batching,
        "cache": cache,
        "weights_hash_seconds": hash_seconds,
        "model": provider.identity(),
        "prompt_digest": _content(settings).digest,
        "torch_threads": torch_threads(),
        "versions": package_versions(*MEASURED_PACKAGES),
        "conditions": conditions.finish(),
    }
    results_file = writer.write(results)
    return results_file, publish_benchmark(results_file) if publish else None
