"""Prompts whose answers the verifier can check: several templates per rule, each filled with
random slot values, in three groups (``split_templates``, a pure function of the seed):

* training templates: 3 of the 5 templates of each TRAINING rule; the only ones pairs are built on;
* held-out templates of training rules: the other 2 per training rule (14), worded in ways
  training never saw;
* held-out rules: every template of the HELD-OUT rules (4 families x 4 templates), rules no pair
  is ever built from; the headline win-rate is measured on these.
"""

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
# Its own questions: one template per list, so a held-out template never repeats a trained one's.
YOUNG = [
    ("cat", "kitten"),
    ("dog", "puppy"),
    ("cow", "calf"),
    ("sheep", "lamb"),
    ("horse", "foal"),
    ("duck", "duckling"),
    ("frog", "tadpole"),
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
QUESTIONS = [
    "is water wet",
    "can birds fly",
    "is the sun a star",
    "do fish live in water",
    "is ice cold",
    "do plants need light",
]
STARTS = ["Yes", "Today", "Once", "Sure", "Well", "Honestly"]
# Held-out rules explain other things than the length rule's EXPLAIN: "explain X" was trained
# to be short there.
WONDERS = [
    "how bridges stay up",
    "why leaves change colour",
    "what a volcano is",
    "how bees make honey",
    "why the sea is salty",
    "what electricity is",
]
# The fewest words that do what a held-out prompt asks besides its rule: an answer too short to
# be a sentence or an explanation must not pass "no commas" or "all lowercase" by saying little.
SENTENCE, SHORT_ANSWER, EXPLANATION, TWO_SENTENCES = 6, 3, 8, 10


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


def _starts_fill(min_words: int) -> Filler:
    def fill(rng: random.Random) -> tuple[dict[str, Any], Check]:
        word = _pick(rng, STARTS)
        slots = {"topic": _pick(rng, TOPICS), "question": _pick(rng, QUESTIONS), "w": word}
        return slots, {"rule": "starts_with", "word": word, "min_words": min_words}

    return fill


def _case_fill(case: str, min_words: int) -> Filler:
    def fill(rng: random.Random) -> tuple[dict[str, Any], Check]:
        slots = {"topic": _pick(rng, TOPICS), "explain": _pick(rng, WONDERS)}
        return slots, {"rule": "letter_case", "case": case, "min_words": min_words}

    return fill


def _plain_fill(rule: str, min_words: int) -> Filler:
    def fill(rng: random.Random) -> tuple[dict[str, Any], Check]:
        slots = {"topic": _pick(rng, TOPICS), "explain": _pick(rng, WONDERS)}
        return slots, {"rule": rule, "min_words": min_words}

    return fill


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
        "one_word/single",
        "one_word",
        "What is a baby {clue} called? Your whole answer must be a single word.",
        _answer_fill(YOUNG),
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
        "include/both",
        "include_words",
        "Use both '{w1}' and '{w2}' in one sentence about {topic}.",
        _include_fill(2),
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
        "avoid/never",
        "avoid_word",
        "Talk about {topic} in a sentence; never write the word '{w}'.",
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
    Template(
        "json/fields",
        "json_keys",
        "Fill in the fields {keys} for {entity}. Answer as a JSON object.",
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
        "length/brief", "length", "Be brief ({n} words at most): explain {topic}.", _length_fill
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
        "arith/subtract",
        "arithmetic",
        "Subtract {b} from {a}. Write only the number.",
        _arithmetic_fill("-"),
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
    Template(
        "bullets/markdown", "bullet_list", "Markdown bullets only: {k} {things}.", _bullet_fill
    ),
    # Held-out rules: never used to build a pair.
    Template(
        "starts/begin",
        "starts_with",
        "Begin your answer with the word '{w}'. Tell me about {topic}.",
        _starts_fill(EXPLANATION),
    ),
    Template(
        "starts/first-word",
        "starts_with",
        "Answer the question ({question}?) and make '{w}' the first word of your reply.",
        _starts_fill(SHORT_ANSWER),
    ),
    Template(
        "starts/open",
        "starts_with",
        "Write one sentence about {topic} that starts with '{w}'.",
        _starts_fill(SENTENCE),
    ),
    Template(
        "starts/reply",
        "starts_with",
        "Reply starting with the word '{w}': {question}?",
        _starts_fill(SHORT_ANSWER),
    ),
    Template(
        "case/lower",
        "letter_case",
        "Write a sentence about {topic} using only lowercase letters.",
        _case_fill("lower", SENTENCE),
    ),
    Template(
        "case/no-capitals",
        "letter_case",
        "Explain {explain} without any capital letters.",
        _case_fill("lower", EXPLANATION),
    ),
    Template(
        "case/upper",
        "letter_case",
        "Write one sentence about {topic} in ALL CAPITAL LETTERS.",
        _case_fill("upper", SENTENCE),
    ),
    Template(
        "case/shout",
        "letter_case",
        "Explain {explain}, writing every letter in uppercase.",
        _case_fill("upper", EXPLANATION),
    ),
    Template(
        "quoted/wrap",
        "quoted",
        "Wrap your entire answer in double quotation marks. Describe {topic}.",
        _plain_fill("quoted", SENTENCE),
    ),
    Template(
        "quoted/quote",
        "quoted",
        "Explain {explain}, and put your whole answer inside double quotes.",
        _plain_fill("quoted", EXPLANATION),
    ),
    Template(
        "quoted/marks",
        "quoted",
        'Write one sentence about {topic} and enclose it in double quotes, like "this".',
        _plain_fill("quoted", SENTENCE),
    ),
    Template(
        "quoted/start-end",
        "quoted",
        "Start and end your answer with a double quote character: {explain}?",
        _plain_fill("quoted", EXPLANATION),
    ),
    Template(
        "commas/none",
        "no_commas",
        "Describe {topic} without using any commas.",
        _plain_fill("no_commas", SENTENCE),
    ),
    Template(
        "commas/avoid",
        "no_commas",
        "Explain {explain}. Do not use a single comma.",
        _plain_fill("no_commas", EXPLANATION),
    ),
    Template(
        "commas/no-punct",
        "no_commas",
        "Write two sentences about {topic}; commas are not allowed.",
        _plain_fill("no_commas", TWO_SENTENCES),
    ),
    Template(
        "commas/free",
        "no_commas",
        "Answer without commas: {explain}?",
        _plain_fill("no_commas", EXPLANATION),
    ),
]
RULE_NAMES = sorted({template.rule for template in TEMPLATES})
# Rules no pair is ever built from: the win-rate on them shows alignment beyond the training signal.
HELDOUT_RULES = ("starts_with", "letter_case", "quoted", "no_commas")
TRAINING_RULES = tuple(rule for rule in RULE_NAMES if rule not in HELDOUT_RULES)
HELDOUT_TEMPLATES_PER_RULE = 2
# The three groups, in the names data rows and reports use.
TRAIN, HELDOUT_TEMPLATE, HELDOUT_RULE = "train", "heldout_template", "heldout_rule"
GROUPS = (TRAIN, HELDOUT_TEMPLATE, HELDOUT_RULE)


def split_templates(seed: int) -> dict[str, list[str]]:
    """Template ids per group: of each training rule, ``HELDOUT_TEMPLATES_PER_RULE`` templates
    (chosen by ``seed``) are held out and the rest train; every template of a held-out rule is
    held out. A pure function of ``seed``."""
    rng = random.Random(f"heldout-{seed}")
    groups: dict[str, list[str]] = {group: [] for group in GROUPS}
    for rule in RULE_NAMES:
        ids = [template.template_id for template in TEMPLATES if template.rule == rule]
        if rule in HELDOUT_RULES:
            groups[HELDOUT_RULE] += ids
            continue
        held = set(rng.sample(ids, HELDOUT_TEMPLATES_PER_RULE))
        groups[HELDOUT_TEMPLATE] += [i for i in ids if i in held]
        groups[TRAIN] += [i for i in ids if i not in held]
    return groups


def heldout_templates(seed: int) -> set[str]:
    """Every template kept for evaluation only: held-out templates of training rules and the
    templates of held-out rules."""
    groups = split_templates(seed)
    return set(groups[HELDOUT_TEMPLATE]) | set(groups[HELDOUT_RULE])


def template_group(seed: int) -> dict[str, str]:
    """template id -> its group under ``seed``."""
    return {tid: group for group, ids in split_templates(seed).items() for tid in ids}


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


def prompt_groups(per_template: int, seed: int) -> dict[str, list[PromptItem]]:
    """``make_prompts(per_template, seed)`` sorted into the three groups of ``split_templates``."""
    groups = template_group(seed)
    sorted_items: dict[str, list[PromptItem]] = {group: [] for group in GROUPS}
    for item in make_prompts(per_template, seed):
        sorted_items[groups[item.template_id]].append(item)
    return sorted_items


def split_by_template(
    items: list[PromptItem], seed: int
) -> tuple[list[PromptItem], list[PromptItem]]:
    """(train, held-out): prompts of training templates, and the rest (held-out templates of
    training rules and every prompt of a held-out rule)."""
    held = heldout_templates(seed)
    train = [item for item in items if item.template_id not in held]
    heldout = [item for item in items if item.template_id in held]
    return train, heldout
