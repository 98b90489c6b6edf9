"""The baseline: plain Hugging Face ``generate``, one prompt at a time or in static batches.

Static batching is what a simple PyTorch service does: take ``batch_size`` requests, left-pad them,
generate until every row is done (its EOS or its own ``max_tokens``), return, take the next batch.
Finished rows keep occupying the batch (padding), and a batch is as slow as its longest row.

The benchmark runs the baseline in a child process (``run_hf_session``) with the vLLM engine's
runtime (see ``ProjectSettings.baseline_env``), once per dtype it tries.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_serving.child import loaded_openmp, run_in_child
from llm_serving.progress import progress_bar
from llm_serving.settings import ProjectSettings
from llm_serving.throughput import Throughput, count_output_tokens
from llm_serving.workload import Workload

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

WARM_UP_TOKENS = 8


def load_hf_model(
    model_dir: Path, dtype: str = "bfloat16", device: str = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model and tokenizer, in eval mode, on ``device`` ("cpu" or "cuda")."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device == "cpu":
        # The baseline's environment sets the thread count (and binds the main thread to one
        # core, so the affinity no longer tells); without it, one thread per available core.
        torch.set_num_threads(
            int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))
        )
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return model.to(device).eval(), tokenizer


class _RowBudget:
    """Stopping criterion: row i is done once it generated ``budgets[i]`` tokens."""

    def __init__(self, prompt_len: int, budgets: torch.Tensor) -> None:
        self.prompt_len = prompt_len
        self.budgets = budgets

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> Any:
        return (input_ids.shape[1] - self.prompt_len) >= self.budgets


class _NoEosBeforeBudget:
    """Like vLLM's ``ignore_eos``: no row ends before its own budget (EOS is masked until then)."""

    def __init__(self, prompt_len: int, budgets: torch.Tensor, eos_ids: list[int]) -> None:
        self.prompt_len = prompt_len
        self.budgets = budgets
        self.eos_ids = eos_ids

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        running = (input_ids.shape[1] - self.prompt_len) < self.budgets
        scores[running.nonzero(as_tuple=True)[0].unsqueeze(1), self.eos_ids] = float("-inf")
        return scores


def generate_batch(
    model: PreTrainedModel,
    prompts: list[list[int]],
    max_tokens: list[int],
    ignore_eos: bool,
    pad_id: int,
) -> list[list[int]]:
    """Greedy outputs (token ids; a row that ended early is padded with ``pad_id``) of one
    left-padded static batch."""
    import torch
    from transformers import LogitsProcessorList, StoppingCriteriaList

    device = model.device
    width = max(len(prompt) for prompt in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
        attention[row, width - len(prompt) :] = 1
    budgets = torch.tensor(max_tokens, device=device)
    kwargs: dict[str, Any] = {
        "max_new_tokens": max(max_tokens),
        "do_sample": False,
        "pad_token_id": pad_id,
        "stopping_criteria": StoppingCriteriaList([_RowBudget(width, budgets)]),
    }
    if ignore_eos:
        eos = model.generation_config.eos_token_id
        eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        if eos_ids:
            kwargs["logits_processor"] = LogitsProcessorList(
                [_NoEosBeforeBudget(width, budgets, eos_ids)]
            )
    with torch.inference_mode():
        output = model.generate(
            input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs
        )
    return [row[width:].tolist() for row in output]


def run_hf(
    model: PreTrainedModel,
    workload: Workload,
    batch_size: int,
    eos_ids: set[int],
    pad_id: int,
    on_batch: Callable[[], None] | None = None,
) -> Throughput:
    """Time ``workload`` in arrival order in static batches of ``batch_size`` (1: sequential).

    Output tokens are counted from what ``generate`` returned: up to each row's budget, and up to
    its EOS unless the workload ignores EOS.
    """
    stop_ids = set() if workload.ignore_eos else eos_ids
    started = time.perf_counter()
    output_tokens = 0
    for start in range(0, len(workload.prompts), batch_size):
        budgets = workload.max_tokens[start : start + batch_size]
        prompts = workload.prompts[start : start + batch_size]
        outputs = generate_batch(model, prompts, budgets, workload.ignore_eos, pad_id)
        output_tokens += sum(
            count_output_tokens(_unpadded(tokens, pad_id, stop_ids), stop_ids, budget)
            for tokens, budget in zip(outputs, budgets, strict=True)
        )
        if on_batch is not None:
            on_batch()
    elapsed = time.perf_counter() - started
    engine = "hf-sequential" if batch_size == 1 else f"hf-static-batch-{batch_size}"
    return Throughput(
        engine,
        len(workload.prompts),
        workload.input_tokens,
        output_tokens,
        elapsed,
        batch_size,
        str(model.dtype).removeprefix("torch."),
    )


def _unpadded(tokens: list[int], pad_id: int, stop_ids: set[int]) -> list[int]:
    """A row without the padding HF appends once the row is done (when the pad is not also the
    EOS that ends it, which ``count_output_tokens`` counts)."""
    if pad_id in stop_ids:
        return tokens
    end = len(tokens)
    while end > 0 and tokens[end - 1] == pad_id:
        end -= 1
    return tokens[:end]


def warm_up(model: PreTrainedModel, workload: Workload, batch_size: int, pad_id: int) -> None:
    """A few tokens of the first batch: the shapes and allocations of this configuration."""
    prompts = workload.prompts[:batch_size]
    generate_batch(model, prompts, [WARM_UP_TOKENS] * len(prompts), True, pad_id)


def _session(
    settings_json: str, model_dir: str, dtype: str, tasks: dict[str, Any]
) -> dict[str, Any]:
    """Child process body: load the model in ``dtype``, time each (workload, batch size)."""
    settings = ProjectSettings.model_validate_json(settings_json)
    from roadmap_lab.logs import setup_logging

    setup_logging(settings.log_level)
    started = time.perf_counter()
    model, tokenizer = load_hf_model(Path(model_dir), dtype, settings.device)
    load_s = time.perf_counter() - started
    eos_ids = set(tasks["eos_ids"])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)
    workloads = {name: Workload(**fields) for name, fields in tasks["workloads"].items()}
    runs = []
    with progress_bar() as progress:
        for name, batch_size in tasks["plan"]:
            workload = workloads[name]
            batches = -(-len(workload.prompts) // batch_size)
            kind = "sequential" if batch_size == 1 else f"batch {batch_size}"
            step = progress.add_task(f"HF {dtype} {name} {kind}", total=batches)
            warm_up(model, workload, batch_size, pad_id)
            result = run_hf(
                model, workload, batch_size, eos_ids, pad_id, partial(progress.advance, step)
            )
            logger.info("HF %s %s %s: %s", dtype, name, kind, result.line())
            runs.append({"workload": name, **result.to_dict()})
    import torch

    return {
        "dtype": dtype,
        "load_s": round(load_s, 1),
        "threads": torch.get_num_threads(),
        "openmp": loaded_openmp(),
        "runs": runs,
    }


def run_hf_session(
    settings: ProjectSettings,
    model_dir: Path,
    dtype: str,
    workloads: dict[str, Workload],
    plan: list[tuple[str, int]],
    eos_ids: set[int],
) -> dict[str, Any]:
    """Time each ``(workload name, batch size)`` of ``plan`` with HF in ``dtype``, in a child
    process with the engine's runtime. Returns ``{"dtype", "load_s", "threads", "openmp", "runs":
    [...]}``."""
    tasks = {
        "workloads": {name: asdict(workload) for name, workload in workloads.items()},
        "plan": plan,
        "eos_ids": sorted(eos_ids),
    }
    return run_in_child(
        _session,
        (settings.model_dump_json(exclude={"api_key"}), str(model_dir), dtype, tasks),
        settings.baseline_env(),
        settings.engine_timeout_s,
        f"HF baseline in {dtype}",
    )
