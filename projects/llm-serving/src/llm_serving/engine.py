"""vLLM's offline engine (``vllm.LLM``), run in a child process per model (see ``child.py``).

Throughput runs are taken with the prefix cache off by default: the HF baseline has none, and
repeats of the same prompts would otherwise skip prefill work the baseline has to do. Each workload
is warmed up by one untimed pass of the whole workload (its full shape), then timed ``repeats``
times; every run is kept in run order and the median one is reported.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_serving.child import loaded_openmp, run_in_child
from llm_serving.progress import progress_bar
from llm_serving.settings import ProjectSettings
from llm_serving.throughput import Throughput, count_output_tokens, median_run
from llm_serving.workload import Workload

if TYPE_CHECKING:
    from vllm import LLM, RequestOutput

logger = logging.getLogger(__name__)


def _generate(llm: LLM, workload: Workload) -> tuple[list[RequestOutput], float]:
    from vllm import SamplingParams, TokensPrompt

    prompts = [TokensPrompt(prompt_token_ids=prompt) for prompt in workload.prompts]
    params = [
        SamplingParams(temperature=0.0, max_tokens=budget, ignore_eos=workload.ignore_eos)
        for budget in workload.max_tokens
    ]
    started = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    return outputs, time.perf_counter() - started


def _throughput(
    llm: LLM, workload: Workload, eos_ids: set[int], label: str
) -> tuple[Throughput, list[list[int]]]:
    outputs, elapsed = _generate(llm, workload)
    tokens = [list(output.outputs[0].token_ids) for output in outputs]
    produced = sum(
        count_output_tokens(ids, set() if workload.ignore_eos else eos_ids, budget)
        for ids, budget in zip(tokens, workload.max_tokens, strict=True)
    )
    result = Throughput(label, len(workload.prompts), workload.input_tokens, produced, elapsed)
    return result, tokens


def _perplexity(llm: LLM, texts: list[list[int]]) -> dict[str, Any]:
    """exp(mean negative log-likelihood) of the texts' tokens, from vLLM's prompt logprobs."""
    from vllm import SamplingParams, TokensPrompt

    params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
    outputs = llm.generate(
        [TokensPrompt(prompt_token_ids=ids) for ids in texts], params, use_tqdm=False
    )
    nll: list[float] = []  # per text: the summed negative log-likelihood and its token count
    counts: list[int] = []
    for ids, output in zip(texts, outputs, strict=True):
        scored = [
            -logprobs[ids[position]].logprob
            for position, logprobs in enumerate(output.prompt_logprobs or [])
            if position > 0 and logprobs is not None  # the first token has no context
        ]
        nll.append(sum(scored))
        counts.append(len(scored))
    return {
        "perplexity": math.exp(sum(nll) / sum(counts)),
        "tokens": sum(counts),
        # Per text, so that a comparison of two models gets a bootstrap interval over the texts.
        "text_nll": nll,
        "text_tokens": counts,
    }


def _session(settings_json: str, model_dir: str, tasks: dict[str, Any]) -> dict[str, Any]:
    """Child process body: start one engine, run the tasks, return the results."""
    settings = ProjectSettings.model_validate_json(settings_json)
    from roadmap_lab.logs import setup_logging

    setup_logging(settings.log_level)
    from vllm import LLM

    started = time.perf_counter()
    llm = LLM(**settings.engine_kwargs(Path(model_dir), prefix_caching=tasks["prefix_caching"]))
    results: dict[str, Any] = {
        "startup_s": round(time.perf_counter() - started, 1),
        # What the engine really ran with, not what was asked for.
        "prefix_caching": bool(llm.llm_engine.vllm_config.cache_config.enable_prefix_caching),
        "openmp": loaded_openmp(),
    }
    eos_ids = set(tasks["eos_ids"])
    label, repeats = tasks["label"], tasks["repeats"]
    with progress_bar() as progress:
        for name, fields in tasks["throughput"].items():
            workload = Workload(**fields)
            step = progress.add_task(f"{label} {name}: warm-up + {repeats} runs", total=repeats + 1)
            _generate(llm, workload)  # warm-up: the whole workload, as the timed runs see it
            progress.advance(step)
            runs = []
            for _ in range(repeats):
                runs.append(_throughput(llm, workload, eos_ids, label))
                progress.advance(step)
            throughput, tokens = median_run(runs)
            results[name] = {
                "throughput": throughput.to_dict(),
                "tokens": tokens,
                # Every run in run order: a trend (warm-up, caching, load) shows here.
                "runs": [run.to_dict() for run, _ in runs],
            }
            logger.info("%s %s (median of %d): %s", label, name, repeats, throughput.line())
    results["perplexity"] = {
        name: _perplexity(llm, texts) for name, texts in tasks["perplexity"].items()
    }
    # Stop the engine now: left to interpreter exit, its shutdown can wait forever on its own
    # worker processes inside a multiprocessing child.
    llm.llm_engine.engine_core.shutdown()
    return results


def run_engine_session(
    settings: ProjectSettings,
    model_dir: Path,
    workloads: dict[str, Workload],
    eos_ids: set[int],
    perplexity_texts: dict[str, list[list[int]]] | None = None,
    label: str = "vllm",
    repeats: int = 1,
    prefix_caching: bool = False,
) -> dict[str, Any]:
    """Start a vLLM engine for ``model_dir`` in a child process and measure ``workloads`` on it.

    Returns ``{"startup_s", "prefix_caching", "openmp", <workload name>: {"throughput": {...},
    "tokens": [[...]], "runs": [{...}, ...]}, "perplexity": {<text set>: {"perplexity",
    "tokens"}}}``.
    """
    tasks = {
        "label": label,
        "repeats": repeats,
        "prefix_caching": prefix_caching,
        "eos_ids": sorted(eos_ids),
        "throughput": {name: asdict(workload) for name, workload in workloads.items()},
        "perplexity": perplexity_texts or {},
    }
    return run_in_child(
        _session,
        (settings.model_dump_json(exclude={"api_key"}), str(model_dir), tasks),
        settings.engine_env(),
        settings.engine_timeout_s,
        f"vLLM engine for {model_dir.name}",
    )
