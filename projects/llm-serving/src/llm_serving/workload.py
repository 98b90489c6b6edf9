"""Benchmark workloads: the same token-id prompts for vLLM and Hugging Face.

* ``fixed_workload``: every prompt exactly ``input_len`` tokens (held-out reviews), every output
  exactly ``output_len`` tokens (EOS ignored): the shape of vLLM's throughput benchmark.
* ``chat_workload``: FreshQA questions in the chat template, EOS respected, and a per-request
  ``max_tokens`` from a long-tailed (log-normal) distribution: what a chat service sees.

Every prompt is drawn once: the online runs get reviews the offline runs did not use, and the
FreshQA perplexity texts are questions the chat workload does not ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from roadmap_lab.data import load_freshqa, load_reviews

from llm_serving.errors import BenchmarkSizeError

if TYPE_CHECKING:
    import pandas as pd
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Workload:
    name: str
    prompts: list[list[int]]  # token ids
    max_tokens: list[int]  # per request
    ignore_eos: bool

    def __post_init__(self) -> None:
        if not self.prompts:
            raise ValueError(f"workload {self.name!r} has no prompts")
        if len(self.prompts) != len(self.max_tokens):
            raise ValueError("one max_tokens per prompt")

    @property
    def input_tokens(self) -> int:
        return sum(len(prompt) for prompt in self.prompts)

    def head(self, n: int) -> Workload:
        return Workload(self.name, self.prompts[:n], self.max_tokens[:n], self.ignore_eos)


def _tokenize(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    ids: list[list[int]] = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return ids


def review_prompts(
    tokenizer: PreTrainedTokenizerBase, n: int, input_len: int, seed: int = 0
) -> list[list[int]]:
    """``n`` distinct test-split reviews cut to exactly ``input_len`` tokens."""
    _, test = load_reviews()
    texts = test["text"].sample(frac=1.0, random_state=seed).tolist()
    prompts = [ids[:input_len] for ids in _tokenize(tokenizer, texts) if len(ids) >= input_len]
    if len(prompts) < n:
        raise BenchmarkSizeError(
            f"only {len(prompts)} test reviews have {input_len} tokens; asked for {n}"
        )
    return prompts[:n]


def fixed_workload(
    tokenizer: PreTrainedTokenizerBase, n: int, input_len: int, output_len: int, seed: int = 0
) -> Workload:
    """``n`` test-split reviews cut to exactly ``input_len`` tokens; ``output_len`` tokens each."""
    prompts = review_prompts(tokenizer, n, input_len, seed)
    return Workload("fixed", prompts, [output_len] * n, ignore_eos=True)


def long_tail_lengths(
    n: int, median: float, sigma: float, low: int, high: int, seed: int
) -> list[int]:
    """Log-normal output budgets (most short, a few long), clipped to ``[low, high]``."""
    rng = np.random.default_rng(seed)
    lengths = rng.lognormal(mean=np.log(median), sigma=sigma, size=n)
    return np.clip(np.rint(lengths), low, high).astype(int).tolist()


def _shuffled_freshqa(seed: int) -> pd.DataFrame:
    return load_freshqa().sample(frac=1.0, random_state=seed)


def chat_workload(
    tokenizer: PreTrainedTokenizerBase,
    n: int,
    median: float = 40,
    sigma: float = 0.9,
    max_len: int = 320,
    seed: int = 0,
) -> Workload:
    """``n`` FreshQA questions as chat prompts; budgets long-tailed; generation stops at EOS."""
    questions = _shuffled_freshqa(seed)["question"].tolist()[:n]
    if len(questions) < n:
        raise BenchmarkSizeError(f"FreshQA has {len(questions)} questions; asked for {n}")
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        for question in questions
    ]
    budgets = long_tail_lengths(n, median, sigma, low=8, high=max_len, seed=seed)
    return Workload("chat", _tokenize(tokenizer, texts), budgets, ignore_eos=False)


def heldout_texts(
    tokenizer: PreTrainedTokenizerBase, n: int, max_len: int = 256, seed: int = 1
) -> list[list[int]]:
    """Test-split reviews (not the training split the quantizer calibrates on), for perplexity."""
    _, test = load_reviews()
    texts = test["text"].sample(n=n, random_state=seed).tolist()
    return [ids[:max_len] for ids in _tokenize(tokenizer, texts) if len(ids) >= 8]


def freshqa_texts(
    tokenizer: PreTrainedTokenizerBase, n: int, chat_requests: int, seed: int = 0
) -> list[list[int]]:
    """FreshQA questions with their answers ("question answer"), for perplexity on another domain
    than the reviews the quantizer calibrates on; none of them is among the ``chat_requests``
    questions the chat workload asks."""
    rows = _shuffled_freshqa(seed).iloc[chat_requests:]
    if len(rows) < n:
        raise BenchmarkSizeError(
            f"FreshQA has {len(rows)} questions beside the {chat_requests} chat ones; "
            f"asked for {n} perplexity texts"
        )
    texts = [f"{row.question} {row.answer}" for row in rows.head(n).itertuples()]
    return _tokenize(tokenizer, texts)
