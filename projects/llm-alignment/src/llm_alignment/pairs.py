"""Build preference pairs locally: sample several responses per verifiable prompt from the base
model, score them with the verifier and keep (best, worst) where the scores differ enough.

Training pairs come only from the training templates of training rules. Pairs of the held-out
templates of training rules are kept apart (the reward model's held-out accuracy); held-out rules
get no pairs at all, only prompts for the win-rate."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from roadmap_lab import verifiable

from llm_alignment.data import Row, save_dataset
from llm_alignment.generation import generate, load_policy
from llm_alignment.prompts import (
    HELDOUT_RULE,
    HELDOUT_RULES,
    HELDOUT_TEMPLATE,
    TRAIN,
    TRAINING_RULES,
    PromptItem,
    prompt_groups,
    split_templates,
)

logger = logging.getLogger(__name__)


class PairOptions(BaseModel):
    """How the data set is built; recorded in its card."""

    per_template: int = Field(default=6, ge=1, description="prompts drawn from each template")
    samples: int = Field(default=4, ge=2, description="responses sampled per prompt")
    temperature: float = Field(default=1.0, gt=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_new_tokens: int = Field(default=48, ge=4)
    batch_size: int = Field(default=32, ge=1)
    min_gap: float = Field(default=0.25, gt=0, le=1, description="best - worst score to keep")
    seed: int = 0


def best_worst_pair(
    item: PromptItem, responses: list[str], min_gap: float, seed: int = 0
) -> Row | None:
    """The (highest, lowest) scored responses as a conversational pair, or None when the score
    gap is below ``min_gap``. Among equal scores the pick is random (seeded by ``seed`` and the
    prompt), so neither a shorter nor a longer answer is systematically chosen."""
    scored = [(verifiable.score(text, item.check), text) for text in responses]
    top, bottom = max(s for s, _ in scored), min(s for s, _ in scored)
    if top - bottom < min_gap:
        return None
    rng = random.Random(f"{seed}-{item.prompt_id}")
    best = rng.choice([pair for pair in scored if pair[0] == top])
    worst = rng.choice([pair for pair in scored if pair[0] == bottom])
    return {
        "prompt": [{"role": "user", "content": item.prompt}],
        "chosen": [{"role": "assistant", "content": best[1]}],
        "rejected": [{"role": "assistant", "content": worst[1]}],
        "prompt_id": item.prompt_id,
        "template_id": item.template_id,
        "rule": item.rule,
        "check": item.check,
        "score_chosen": best[0],
        "score_rejected": worst[0],
    }


def build_pairs(
    model_dir: Path, folder: Path, options: PairOptions, *, model_name: str = "base"
) -> dict[str, Any]:
    """Sample, score and pair; write the data set with its card into ``folder``; return the card."""
    started = time.monotonic()
    by_group = prompt_groups(options.per_template, options.seed)
    heldout_rows = [
        item.as_row() | {"group": group}
        for group in (HELDOUT_TEMPLATE, HELDOUT_RULE)
        for item in by_group[group]
    ]
    # Held-out rules get no pairs, so no samples either.
    items = by_group[TRAIN] + by_group[HELDOUT_TEMPLATE]
    model, tokenizer = load_policy(model_dir)
    logger.info("Sampling %d responses for each of %d prompts", options.samples, len(items))
    responses = generate(
        model,
        tokenizer,
        [[{"role": "user", "content": item.prompt}] for item in items],
        num_samples=options.samples,
        do_sample=True,
        temperature=options.temperature,
        top_p=options.top_p,
        max_new_tokens=options.max_new_tokens,
        batch_size=options.batch_size,
        seed=options.seed,
    )
    by_id = {item.prompt_id: texts for item, texts in zip(items, responses, strict=True)}
    splits: dict[str, list[Row]] = {}
    for split, group in (("train", TRAIN), ("heldout", HELDOUT_TEMPLATE)):
        pairs = [
            best_worst_pair(item, by_id[item.prompt_id], options.min_gap, options.seed)
            for item in by_group[group]
        ]
        splits[split] = [pair for pair in pairs if pair is not None]
    per_rule: dict[str, dict[str, int]] = {}
    for split, kept in splits.items():
        for rule, count in Counter(pair["rule"] for pair in kept).items():
            per_rule.setdefault(rule, {})[split] = count
    template_groups = split_templates(options.seed)
    card = {
        "name": "verifiable-preference-pairs",
        "description": (
            "Pairs built locally: prompts from templates a rule can verify, responses sampled "
            "from the base model, scored by the verifier; (best, worst) kept where the score "
            f"gap is at least {options.min_gap}, ties broken at random. Training pairs come only "
            "from the training templates of the training rules; held-out pairs from the "
            "held-out templates of training rules; held-out rules get prompts, never pairs."
        ),
        "base_model": model_name,
        "seed": options.seed,
        "generation": options.model_dump(),
        "rules": verifiable.RULE_DESCRIPTIONS,
        "training_rules": list(TRAINING_RULES),
        "heldout_rules": list(HELDOUT_RULES),
        "template_groups": template_groups,
        "heldout_templates": template_groups[HELDOUT_TEMPLATE],
        "splits": {
            "train": {"pairs": len(splits["train"]), "prompts": len(by_group[TRAIN])},
            "heldout": {
                "pairs": len(splits["heldout"]),
                "prompts": len(by_group[HELDOUT_TEMPLATE]),
            },
            HELDOUT_RULE: {"pairs": 0, "prompts": len(by_group[HELDOUT_RULE])},
        },
        "pairs_per_rule": per_rule,
        "mean_sample_score": sum(
            verifiable.score(text, item.check) for item in items for text in by_id[item.prompt_id]
        )
        / max(1, len(items) * options.samples),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    save_dataset(folder, splits["train"], splits["heldout"], heldout_rows, card)
    logger.info(
        "Pairs: %d train, %d held-out (%.0f s)",
        len(splits["train"]),
        len(splits["heldout"]),
        card["build_seconds"],
    )
    return card
