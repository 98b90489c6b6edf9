"""vLLM's offline engine (``vllm.LLM``), run in a child process per model.

A child process per engine keeps the benchmark honest and the machine sane: each engine gets the
whole RAM budget (two engines at once fail vLLM's free-memory check), and all its memory and
worker processes are gone when the child exits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from llm_serving.config import ServingSettings
from llm_serving.throughput import Throughput, count_output_tokens
from llm_serving.workload import Workload

logger = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """The vLLM child process failed; see its log above."""


def _generate(llm, workload: Workload):
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
    llm, workload: Workload, eos_ids: set[int], label: str
) -> tuple[Throughput, list[list[int]]]:
    outputs, elapsed = _generate(llm, workload)
    tokens = [list(output.outputs[0].token_ids) for output in outputs]
    produced = sum(
        count_output_tokens(ids, set() if workload.ignore_eos else eos_ids, budget)
        for ids, budget in zip(tokens, workload.max_tokens, strict=True)
    )
    result = Throughput(label, len(workload.prompts), workload.input_tokens, produced, elapsed)
    return result, tokens


def _perplexity(llm, texts: list[list[int]]) -> dict[str, float]:
    """exp(mean negative log-likelihood) of the texts' tokens, from vLLM's prompt logprobs."""
    import math

    from vllm import SamplingParams, TokensPrompt

    params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
    outputs = llm.generate(
        [TokensPrompt(prompt_token_ids=ids) for ids in texts], params, use_tqdm=False
    )
    nll, count = 0.0, 0
    for ids, output in zip(texts, outputs, strict=True):
        for position, logprobs in enumerate(output.prompt_logprobs or []):
            if position == 0 or logprobs is None:
                continue  # the first token has no context
            nll -= logprobs[ids[position]].logprob
            count += 1
    return {"perplexity": math.exp(nll / count), "tokens": count}


def _session(settings_json: str, model_dir: str, tasks: dict[str, Any], result_path: str) -> None:
    """Child process body: start one engine, run the tasks, write JSON results."""
    os.setsid()  # own process group, so the parent can stop the engine's processes with it
    settings = ServingSettings.model_validate_json(settings_json)
    os.environ.update(settings.engine_env())
    from roadmap_lab.logs import setup_logging

    setup_logging(settings.log_level)
    from vllm import LLM

    started = time.perf_counter()
    llm = LLM(**settings.engine_kwargs(Path(model_dir)))
    results: dict[str, Any] = {"startup_s": round(time.perf_counter() - started, 1)}
    eos_ids = set(tasks["eos_ids"])
    label = tasks["label"]
    for name, fields in tasks.get("throughput", {}).items():
        workload = Workload(**fields)
        _generate(llm, workload.head(4))  # warm-up, as for the HF baseline
        # A run takes seconds here (minutes for HF): the median of a few evens out noise.
        runs = [_throughput(llm, workload, eos_ids, label) for _ in range(tasks["repeats"])]
        runs.sort(key=lambda run: run[0].output_tokens_per_s)
        throughput, tokens = runs[len(runs) // 2]
        results[name] = {
            "throughput": throughput.to_dict(),
            "tokens": tokens,
            "output_tokens_per_s_runs": [round(run[0].output_tokens_per_s, 2) for run in runs],
        }
        logger.info("%s %s (median of %d): %s", label, name, len(runs), throughput.line())
    if tasks.get("perplexity"):
        results["perplexity"] = _perplexity(llm, tasks["perplexity"])
    Path(result_path).write_text(json.dumps(results), encoding="utf-8")
    # Stop the engine now: left to interpreter exit, its shutdown can wait forever on its own
    # worker processes inside a multiprocessing child.
    llm.llm_engine.engine_core.shutdown()


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _stop_child(child, result_path: Path, grace_s: float = 60.0) -> None:
    """Wait for the child; once it has written its results, give it ``grace_s`` to exit."""
    while child.is_alive() and not result_path.is_file():
        child.join(timeout=2)
    child.join(timeout=grace_s)
    if child.is_alive():
        logger.warning("vLLM child %s still running after its results; killing it", child.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.join()


def run_engine_session(
    settings: ServingSettings,
    model_dir: Path,
    workloads: dict[str, Workload],
    eos_ids: set[int],
    perplexity_texts: list[list[int]] | None = None,
    label: str = "vllm",
    repeats: int = 1,
) -> dict[str, Any]:
    """Start a vLLM engine for ``model_dir`` in a child process and measure ``workloads`` on it.

    Returns ``{"startup_s", <workload name>: {"throughput": {...}, "tokens": [[...]]},
    "perplexity": {...}}``.
    """
    tasks = {
        "label": label,
        "repeats": repeats,
        "eos_ids": sorted(eos_ids),
        "throughput": {
            name: {
                "name": w.name,
                "prompts": w.prompts,
                "max_tokens": w.max_tokens,
                "ignore_eos": w.ignore_eos,
            }
            for name, w in workloads.items()
        },
        "perplexity": perplexity_texts or [],
    }
    with tempfile.TemporaryDirectory(prefix="llm-serving-engine-") as tmp:
        result_path = Path(tmp) / "result.json"
        # spawn: a clean interpreter (vLLM refuses to run in a forked child with threads).
        context = multiprocessing.get_context("spawn")
        child = context.Process(
            target=_session,
            args=(settings.model_dump_json(), str(model_dir), tasks, str(result_path)),
            name=f"vllm-{model_dir.name}",
        )
        with _environment(settings.engine_env()):  # LD_PRELOAD must be there at exec
            child.start()
        try:
            _stop_child(child, result_path)
        except BaseException:  # Ctrl-C: do not leave an engine behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            raise
        if not result_path.is_file():
            raise EngineError(
                f"vLLM engine for {model_dir.name} failed (exit code {child.exitcode})"
            )
        return json.loads(result_path.read_text(encoding="utf-8"))
