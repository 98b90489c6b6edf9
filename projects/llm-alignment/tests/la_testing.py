"""Helpers shared by the tests: preference pairs a tiny model can learn in a few steps."""

from __future__ import annotations

from typing import Any

EASY_PROMPTS = [
    "Answer in one word: what colour is snow?",
    "Name a fruit.",
    "What is two plus two?",
    "Say something nice.",
    "Give me a colour.",
    "Name an animal.",
    "What day is it?",
    "Pick a number.",
]


def easy_pairs(count: int = 8) -> list[dict[str, Any]]:
    """Pairs whose chosen answer is always the same short text and whose rejected answer is
    long, varied filler: separable by any model that learns anything."""
    rows = []
    for index in range(count):
        prompt = EASY_PROMPTS[index % len(EASY_PROMPTS)]
        rows.append(
            {
                "prompt": [{"role": "user", "content": prompt}],
                "chosen": [{"role": "assistant", "content": "yes"}],
                "rejected": [
                    {
                        "role": "assistant",
                        "content": f"The old farmer reads the river map {index} times near "
                        "the station, then cooks fresh bread in the park every Sunday.",
                    }
                ],
            }
        )
    return rows
