"""The baseline: plain Hugging Face ``generate``, one prompt at a time or in static batches.

Static batching is what a simple PyTorch service does: take ``batch_size`` requests, left-pad them,
generate until every row is done (its EOS or its own ``max_tokens``), return, take the next batch.
Finished rows keep occupying the batch (padding), and a batch is as slow as its longest row.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from llm_serving.throughput import Throughput, count_output_tokens
from llm_serving.workload import Workload

logger = logging.getLogger(__name__)


def load_hf_model(model_dir: Path, dtype: str = "bfloat16", device: str = "cpu"):
    """The model and tokenizer, in eval mode, on ``device`` ("cpu" or "cuda")."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return model.to(device).eval(), tokenizer


class _RowBudget:
    """Stopping criterion: row i is done once it generated ``budgets[i]`` tokens."""

    def __init__(self, prompt_len: int, budgets):
        self.prompt_len = prompt_len
        self.budgets = budgets

    def __call__(self, input_ids, scores, **kwargs):
        return (input_ids.shape[1] - self.prompt_len) >= self.budgets


def generate_batch(
    model, prompts: list[list[int]], max_tokens: list[int], ignore_eos: bool, pad_id: int
):
    """Greedy outputs (token ids, pads removed) of one left-padded static batch."""
    import torch
    from transformers import StoppingCriteriaList

    device = model.device
    width = max(len(prompt) for prompt in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
        attention[row, width - len(prompt) :] = 1
    longest = max(max_tokens)
    budgets = torch.tensor(max_tokens, device=device)
    kwargs = {
        "max_new_tokens": longest,
        "do_sample": False,
        "pad_token_id": pad_id,
        "stopping_criteria": StoppingCriteriaList([_RowBudget(width, budgets)]),
    }
    if ignore_eos:
        # Like vLLM's ignore_eos: every row produces exactly its max_tokens (equal in a batch).
        kwargs["min_new_tokens"] = min(max_tokens)
    with torch.inference_mode():
        output = model.generate(
            input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs
        )
    return [row[width:].tolist() for row in output]


def run_hf(
    model, workload: Workload, batch_size: int, eos_ids: set[int], pad_id: int, label: str = ""
) -> Throughput:
    """Time ``workload`` in arrival order in static batches of ``batch_size`` (1: sequential)."""
    started = time.perf_counter()
    output_tokens = 0
    batches = range(0, len(workload.prompts), batch_size)
    for number, start in enumerate(batches, start=1):
        prompts = workload.prompts[start : start + batch_size]
        budgets = workload.max_tokens[start : start + batch_size]
        outputs = generate_batch(model, prompts, budgets, workload.ignore_eos, pad_id)
        for tokens, budget in zip(outputs, budgets, strict=True):
            output_tokens += (
                budget if workload.ignore_eos else count_output_tokens(tokens, eos_ids, budget)
            )
        if number % max(1, len(batches) // 4) == 0:
            logger.info(
                "%s: batch %d/%d (%.0f s)",
                label or "HF",
                number,
                len(batches),
                time.perf_counter() - started,
            )
    elapsed = time.perf_counter() - started
    engine = "hf-sequential" if batch_size == 1 else f"hf-static-batch-{batch_size}"
    return Throughput(
        engine, len(workload.prompts), workload.input_tokens, output_tokens, elapsed, batch_size
    )


def warm_up(model, workload: Workload, pad_id: int) -> None:
    generate_batch(model, workload.prompts[:2], [4, 4], True, pad_id)
