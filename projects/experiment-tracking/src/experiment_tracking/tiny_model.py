"""A tiny random BERT classifier (hidden 32, 2 layers) with a word-level vocabulary, and a synthetic
review data set it can learn in seconds: for tests and smoke runs without the real encoder."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
from roadmap_lab.behaviour import suite_vocabulary

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


def synthetic_reviews(rows: int, seed: int = 0) -> pd.DataFrame:
    """Short reviews whose label follows their sentiment words (a few neutral fillers each)."""
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


def build_tiny_bert(dest: Path, seed: int = 0) -> Path:
    """Save a tiny BertForSequenceClassification (2 labels) and its tokenizer to ``dest``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    from experiment_tracking.data import LABELS

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
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: index for index, label in enumerate(LABELS)},
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest
