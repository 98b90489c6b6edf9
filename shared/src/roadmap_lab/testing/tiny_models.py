"""Tiny models for tests, deterministic per seed and built in seconds:

* ``build_tiny_causal_lm(seed)`` / ``tiny_causal_lm_dir(seed)``: a random Llama (hidden 64, 2
  layers, ~107k parameters) with a byte-level BPE tokenizer (vocab 512, ChatML template), for
  training and generation tests of the LLM projects.
* ``build_tiny_bert(folder)``: a random BERT classifier (hidden 32, 2 layers) with a word-level
  vocabulary, and ``synthetic_reviews(n)``: review-like data it learns in seconds, for the
  review-classifier projects.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from roadmap_lab.behaviour import suite_vocabulary
from roadmap_lab.models import CHATML_TEMPLATE, TINY_SPECIAL_TOKENS, build_atomically, models_dir

if TYPE_CHECKING:
    import pandas as pd  # pants: no-infer-dep (type only)
    from transformers import (  # pants: no-infer-dep (type only)
        LlamaForCausalLM,
        PreTrainedTokenizerBase,
    )

_SUBJECTS = [
    "The cat",
    "A young girl",
    "My neighbour",
    "The old farmer",
    "Our teacher",
    "The small robot",
    "A tired doctor",
    "The chef",
    "Her brother",
    "The pilot",
    "A curious child",
    "The artist",
]
_VERBS = [
    "reads",
    "paints",
    "finds",
    "cooks",
    "watches",
    "carries",
    "builds",
    "cleans",
    "sells",
    "draws",
]
_OBJECTS = [
    "a red apple",
    "the blue car",
    "an old book",
    "fresh bread",
    "a wooden chair",
    "the river map",
    "a warm coat",
    "green tea",
    "the broken clock",
    "a paper boat",
    "some quiet music",
    "the garden gate",
]
_PLACES = [
    "in the morning",
    "after lunch",
    "near the station",
    "at the market",
    "on a rainy day",
    "before dinner",
    "in the park",
    "at home",
    "by the sea",
    "every Sunday",
]
_QUESTIONS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many days are in a week?", "A week has seven days."),
    ("What colour is the sky?", "The sky is usually blue."),
    ("What do bees make?", "Bees make honey."),
    ("Is water wet?", "Yes, water is wet."),
    ("What is two plus two?", "Two plus two is four."),
]


def tiny_corpus(seed: int = 0, size: int = 400) -> list[str]:
    """A small, varied English corpus (statements and Q&A lines), the same for a given seed."""
    rng = random.Random(seed)
    lines = [
        " ".join(rng.choice(words) for words in (_SUBJECTS, _VERBS, _OBJECTS, _PLACES)) + "."
        for _ in range(size)
    ]
    lines += [f"Question: {q} Answer: {a}" for q, a in _QUESTIONS]
    return lines


def build_tiny_causal_lm(seed: int = 0) -> tuple[LlamaForCausalLM, PreTrainedTokenizerBase]:
    """A tiny random Llama (hidden 64, 2 layers) and a byte-level BPE tokenizer (vocab ~512)
    with a ChatML chat template; deterministic for a seed, builds in seconds. For tests."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    specials = list(TINY_SPECIAL_TOKENS.values())
    backend = Tokenizer(models.BPE(unk_token=TINY_SPECIAL_TOKENS["unk"]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(tiny_corpus(seed), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=TINY_SPECIAL_TOKENS["unk"],
        bos_token=TINY_SPECIAL_TOKENS["bos"],
        eos_token=TINY_SPECIAL_TOKENS["eos"],
        pad_token=TINY_SPECIAL_TOKENS["pad"],
        model_max_length=512,
    )
    tokenizer.chat_template = CHATML_TEMPLATE

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model.eval(), tokenizer


def tiny_causal_lm_dir(seed: int = 0) -> Path:
    """``build_tiny_causal_lm(seed)`` saved once as an HF folder under ``<cache>/models/``."""
    dest = models_dir() / f"tiny-causal-lm-seed{seed}"
    if dest.is_dir():
        return dest

    def build(staging: Path) -> None:
        model, tokenizer = build_tiny_causal_lm(seed)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)

    return build_atomically(dest, build)


POSITIVE_WORDS = [
    "great",
    "delicious",
    "love",
    "loved",
    "excellent",
    "perfect",
    "tasty",
    "best",
    "wonderful",
    "amazing",
    "fresh",
    "favorite",
    "recommend",
    "happy",
    "good",
]
NEGATIVE_WORDS = [
    "terrible",
    "stale",
    "awful",
    "bad",
    "disappointed",
    "worst",
    "broken",
    "bland",
    "never",
    "waste",
    "horrible",
    "sick",
    "refund",
    "poor",
    "gross",
]
NEUTRAL_WORDS = [
    "coffee",
    "tea",
    "snack",
    "bag",
    "box",
    "price",
    "dog",
    "cat",
    "chips",
    "sauce",
    "order",
    "this",
    "the",
    "it",
    "was",
    "is",
    "a",
    "and",
    "i",
    "my",
    "for",
    "of",
    "product",
    "taste",
]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# The labels in the order of the classifier's outputs (as experiment-tracking orders them).
TINY_BERT_LABELS = ("other", "great")


def synthetic_reviews(rows: int, seed: int = 0) -> pd.DataFrame:
    """Short reviews whose label follows their sentiment words (a few neutral fillers each)."""
    import pandas as pd

    rng = random.Random(seed)
    records = []
    for index in range(rows):
        label = "great" if index % 3 else "other"  # 2:1, like the real data
        words = POSITIVE_WORDS if label == "great" else NEGATIVE_WORDS
        tokens = rng.sample(NEUTRAL_WORDS, 4) + rng.sample(words, 2)
        rng.shuffle(tokens)
        records.append({"text": " ".join(tokens).capitalize() + ".", "label": label})
    return pd.DataFrame(records)


def _vocabulary() -> list[str]:
    words = set(POSITIVE_WORDS + NEGATIVE_WORDS + NEUTRAL_WORDS) | suite_vocabulary()
    characters = set("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-:;()")
    return SPECIAL_TOKENS + sorted(words | characters | {f"##{c}" for c in characters})


def build_tiny_bert(dest: Path, seed: int = 0, labels: Sequence[str] = TINY_BERT_LABELS) -> Path:
    """Save a tiny BertForSequenceClassification (one output per label) and its tokenizer to
    ``dest``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    vocabulary = {token: index for index, token in enumerate(_vocabulary())}
    tokenizer = BertTokenizer(vocab=vocabulary, do_lower_case=True, model_max_length=128)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest
