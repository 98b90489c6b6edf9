"""Prompts whose answers the verifier can check: several templates per rule, each filled with
random slot values. The train / held-out split is by template, so held-out prompts are worded in
ways training never saw, not new slot values of trained templates."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Check = dict[str, Any]
Filler = Callable[[random.Random], tuple[dict[str, Any], Check]]


@dataclass(frozen=True)
class Template:
    template_id: str
    rule: str
    text: str
    fill: Filler


@dataclass(frozen=True)
class PromptItem:
    prompt_id: str
    template_id: str
    rule: str
    prompt: str
    check: Check

    def as_row(self) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id,
            "template_id": self.template_id,
            "rule": self.rule,
            "prompt": self.prompt,
            "check": self.check,
        }


COLOURS = [
    ("a ripe banana", "yellow"),
    ("fresh grass", "green"),
    ("snow", "white"),
    ("the sky on a clear day", "blue"),
    ("coal", "black"),
    ("a ripe tomato", "red"),
    ("an orange", "orange"),
]
ANIMALS = [
    ("says moo", "cow"),
    ("barks", "dog"),
    ("has a long trunk", "elephant"),
    ("purrs", "cat"),
    ("makes honey", "bee"),
    ("has black and white stripes", "zebra"),
]
OPPOSITES = [
    ("hot", "cold"),
    ("up", "down"),
    ("day", "night"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("open", "closed"),
    ("wet", "dry"),
]
CAPITALS = [
    ("France", "Paris"),
    ("Italy", "Rome"),
    ("Japan", "Tokyo"),
    ("Spain", "Madrid"),
    ("Germany", "Berlin"),
    ("Egypt", "Cairo"),
]
TOPICS = [
    "the ocean",
    "a city at night",
    "breakfast",
    "a rainy day",
    "winter",
    "a library",
    "a train journey",
    "a garden",
]
INCLUDE = ["bright", "quiet", "orange", "gentle", "ancient", "window", "river", "music", "silver"]
AVOID = [
    ("the sun", "sun"),
    ("a cat", "cat"),
    ("the sea", "water"),
    ("coffee", "coffee"),
    ("a dog", "dog"),
    ("winter", "cold"),
    ("a tree", "tree"),
    ("the moon", "moon"),
]
ENTITIES = [
    ("a book", ["title", "author", "year"]),
    ("a person", ["name", "age"]),
    ("a city", ["name", "country"]),
    ("a car", ["make", "model", "year"]),
    ("a movie", ["title", "director"]),
    ("a pet", ["name", "species"]),
]
EXPLAIN = [
    "why the sky is blue",
    "how plants grow",
    "what a computer does",
    "why we sleep",
    "how rain forms",
    "what gravity is",
]
LISTS = ["fruits", "colours", "animals", "countries", "sports", "vegetables", "tools"]


def _pick(rng: random.Random, options: list[Any]) -> Any:
    return options[rng.randrange(len(options))]


def _answer_fill(options: list[tuple[str, str]]) -> Filler:
    def fill(rng: random.Random) -> tuple[dict[str, Any], Check]:
        clue, answer = _pick(rng, options)
        return {"clue": clue}, {"rule": "one_word", "answers": [answer]}

    return fill


def _include_fill(count: int) -> Filler:
    def fill(rng: random.Random) -> tuple[dict[str, Any], Check]:
        chosen = rng.sample(INCLUDE, count)
        slots = {"topic": _pick(rng, TOPICS), "w1": chosen[0], "w2": chosen[-1]}
        return slots, {"rule": "include_words", "include": chosen}

    return fill


def _avoid_fill(rng: random.Random) -> tuple[dict[str, Any], Check]:
    topic, word = _pick(rng, AVOID)
    return {"topic": topic, "w": word}, {"rule": "avoid_word", "avoid": word}


def _json_fill(rng: random.Random) -> tuple[dict[str, Any], Check]:
    entity, keys = _pick(rng, ENTITIES)
    quoted = ", ".join(f'"{key}"' for key in keys)
    return {"entity": entity, "keys": quoted}, {"rule": "json_keys", "keys": keys}


def _length_fill(rng: random.Random) -> tuple[dict[str, Any], Check]:
    limit = _pick(rng, [5, 8, 10, 12])
    return {"topic": _pick(rng, EXPLAIN), "n": limit}, {"rule": "length", "max_words": limit}


def _arithmetic_fill(operation: str) -> Filler:
    def fill(rng: random.Random) -> tuple[dict[str, Any], Check]:
        if operation == "*":
            a, b = rng.randint(2, 12), rng.randint(2, 12)
            answer = a * b
        elif operation == "-":
            a, b = rng.randint(20, 99), rng.randint(1, 19)
            answer = a - b
        else:
            a, b = rng.randint(2, 60), rng.randint(2, 60)
            answer = a + b
        return {"a": a, "b": b}, {"rule": "arithmetic", "answer": answer}

    return fill


def _bullet_fill(rng: random.Random) -> tuple[dict[str, Any], Check]:
    items = _pick(rng, [2, 3, 4])
    return {"k": items, "things": _pick(rng, LISTS)}, {"rule": "bullet_list", "items": items}


TEMPLATES: list[Template] = [
    Template(
        "one_word/colour",
        "one_word",
        "Answer in one word only: what colour is {clue}?",
        _answer_fill(COLOURS),
    ),
    Template(
        "one_word/animal",
        "one_word",
        "Reply with a single word. Which animal {clue}?",
        _answer_fill(ANIMALS),
    ),
    Template(
        "one_word/opposite",
        "one_word",
        "In one word, what is the opposite of '{clue}'?",
        _answer_fill(OPPOSITES),
    ),
    Template(
        "one_word/capital",
        "one_word",
        "Using just one word, name the capital of {clue}.",
        _answer_fill(CAPITALS),
    ),
    Template(
        "include/one",
        "include_words",
        "Write one sentence about {topic} that uses the word '{w1}'.",
        _include_fill(1),
    ),
    Template(
        "include/two",
        "include_words",
        "Describe {topic} in a short sentence. Include the words '{w1}' and '{w2}'.",
        _include_fill(2),
    ),
    Template(
        "include/mention",
        "include_words",
        "Tell me something about {topic}. Your answer must mention '{w1}'.",
        _include_fill(1),
    ),
    Template(
        "include/line",
        "include_words",
        "Write a short line about {topic} containing the word '{w1}'.",
        _include_fill(1),
    ),
    Template(
        "avoid/without",
        "avoid_word",
        "Describe {topic} in one sentence without using the word '{w}'.",
        _avoid_fill,
    ),
    Template(
        "avoid/do-not-say",
        "avoid_word",
        "Explain what {topic} is, but do not say '{w}'.",
        _avoid_fill,
    ),
    Template(
        "avoid/avoid",
        "avoid_word",
        "Write a sentence about {topic}. Avoid the word '{w}'.",
        _avoid_fill,
    ),
    Template(
        "avoid/leading",
        "avoid_word",
        "Without using the word '{w}', tell me about {topic}.",
        _avoid_fill,
    ),
    Template(
        "json/return",
        "json_keys",
        "Return a JSON object with the keys {keys} describing {entity}. Output only JSON.",
        _json_fill,
    ),
    Template(
        "json/give", "json_keys", "Give me {entity} as JSON with the fields {keys}.", _json_fill
    ),
    Template(
        "json/valid",
        "json_keys",
        "Output valid JSON only: an object with keys {keys}, for {entity}.",
        _json_fill,
    ),
    Template(
        "json/describe",
        "json_keys",
        "Describe {entity} as a JSON object that has exactly these keys: {keys}.",
        _json_fill,
    ),
    Template("length/at-most", "length", "In at most {n} words, explain {topic}.", _length_fill),
    Template(
        "length/no-more", "length", "Explain {topic} using no more than {n} words.", _length_fill
    ),
    Template("length/limit", "length", "Describe {topic}. Use {n} words or fewer.", _length_fill),
    Template(
        "length/short",
        "length",
        "Give a very short answer ({n} words maximum): {topic}?",
        _length_fill,
    ),
    Template(
        "arith/plus",
        "arithmetic",
        "What is {a} + {b}? Reply with the number only.",
        _arithmetic_fill("+"),
    ),
    Template(
        "arith/minus",
        "arithmetic",
        "Compute {a} - {b}. Answer with just the number.",
        _arithmetic_fill("-"),
    ),
    Template(
        "arith/times",
        "arithmetic",
        "What is {a} times {b}? Give only the number.",
        _arithmetic_fill("*"),
    ),
    Template(
        "arith/add",
        "arithmetic",
        "Add {a} and {b}. Respond with only the result.",
        _arithmetic_fill("+"),
    ),
    Template(
        "bullets/list",
        "bullet_list",
        "List {k} {things} as a bulleted list, one per line, nothing else.",
        _bullet_fill,
    ),
    Template(
        "bullets/dash",
        "bullet_list",
        "Give exactly {k} {things}, each on its own line starting with '- '.",
        _bullet_fill,
    ),
    Template("bullets/points", "bullet_list", "Name {k} {things} as bullet points.", _bullet_fill),
    Template("bullets/write", "bullet_list", "Write a bullet list of {k} {things}.", _bullet_fill),
]
RULE_NAMES = sorted({template.rule for template in TEMPLATES})


def heldout_templates(seed: int) -> set[str]:
    """One template per rule, chosen by ``seed``, is kept for evaluation only."""
    rng = random.Random(f"heldout-{seed}")
    held: set[str] = set()
    for rule in RULE_NAMES:
        ids = [template.template_id for template in TEMPLATES if template.rule == rule]
        held.add(ids[rng.randrange(len(ids))])
    return held


def make_prompts(
    per_template: int, seed: int, templates: list[Template] | None = None
) -> list[PromptItem]:
    """Up to ``per_template`` distinct prompts from each template (fewer when its slots run out)."""
    rng = random.Random(seed)
    items: list[PromptItem] = []
    for template in templates or TEMPLATES:
        seen: set[str] = set()
        for _ in range(per_template * 10):
            if len(seen) >= per_template:
                break
            slots, check = template.fill(rng)
            text = template.text.format(**slots)
            if text in seen:
                continue
            seen.add(text)
            items.append(
                PromptItem(
                    prompt_id=f"{template.template_id}#{len(seen) - 1}",
                    template_id=template.template_id,
                    rule=template.rule,
                    prompt=text,
                    check=check,
                )
            )
    return items


def split_by_template(
    items: list[PromptItem], seed: int
) -> tuple[list[PromptItem], list[PromptItem]]:
    """(train, held-out): prompts of the held-out templates go to held-out, the rest to train."""
    held = heldout_templates(seed)
    train = [item for item in items if item.template_id not in held]
    heldout = [item for item in items if item.template_id in held]
    return train, heldout
