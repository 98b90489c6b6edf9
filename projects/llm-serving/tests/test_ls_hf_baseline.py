"""The Hugging Face baseline on the tiny random Llama: static batching semantics."""

from __future__ import annotations

from llm_serving.hf_baseline import generate_batch, run_hf
from llm_serving.workload import Workload


def _prompts(tokenizer, texts):
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def test_left_padded_batch_gives_the_same_greedy_tokens_as_one_by_one(tiny_lm):
    model, tokenizer = tiny_lm
    prompts = _prompts(
        tokenizer, ["The cat sat.", "A very much longer prompt about dogs in parks."]
    )
    batched = generate_batch(model, prompts, [6, 6], True, tokenizer.pad_token_id)
    alone = [generate_batch(model, [p], [6], True, tokenizer.pad_token_id)[0] for p in prompts]
    assert batched == alone
    assert all(len(tokens) == 6 for tokens in batched)


def test_each_row_stops_at_its_own_budget_and_the_batch_at_the_longest(tiny_lm):
    model, tokenizer = tiny_lm
    prompts = _prompts(tokenizer, ["The cat sat.", "Dogs run."])
    outputs = generate_batch(model, prompts, [3, 9], True, tokenizer.pad_token_id)
    # The batch runs as long as its longest row; the short row's extra steps are waste.
    assert [len(tokens) for tokens in outputs] == [9, 9]


def test_eos_is_respected_unless_ignored(tiny_lm):
    model, tokenizer = tiny_lm
    eos = tokenizer.eos_token_id
    prompts = _prompts(tokenizer, ["The cat sat."])

    # Make EOS the model's top choice, so it ends at once when allowed to.
    def favour_eos(module, inputs, logits):
        logits[..., eos] = 1e4
        return logits

    handle = model.lm_head.register_forward_hook(favour_eos)
    try:
        stopped = generate_batch(model, prompts, [8], False, tokenizer.pad_token_id)[0]
        ignored = generate_batch(model, prompts, [8], True, tokenizer.pad_token_id)[0]
    finally:
        handle.remove()
    assert stopped[0] == eos and set(stopped) <= {eos, tokenizer.pad_token_id}
    assert len(ignored) == 8 and eos not in ignored  # min_new_tokens masks EOS


def test_run_hf_counts_useful_tokens_only(tiny_lm):
    model, tokenizer = tiny_lm
    prompts = _prompts(tokenizer, ["The cat sat.", "Dogs run.", "Birds fly.", "Fish swim."])
    workload = Workload("fixed", prompts, [5, 5, 5, 5], ignore_eos=True)
    sequential = run_hf(model, workload, 1, {tokenizer.eos_token_id}, tokenizer.pad_token_id)
    batched = run_hf(model, workload, 4, {tokenizer.eos_token_id}, tokenizer.pad_token_id)
    assert sequential.engine == "hf-sequential" and batched.engine == "hf-static-batch-4"
    assert sequential.output_tokens == batched.output_tokens == 20
    assert sequential.requests == 4 and sequential.input_tokens == sum(map(len, prompts))
