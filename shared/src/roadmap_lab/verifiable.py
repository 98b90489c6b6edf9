"""Verifiable rules: instructions whose compliance a program can check, each scoring a response
in [0, 1]. llm-alignment's judge (its pairs, win-rate and GRPO reward) and prompt-registry's
``verifier`` scorer both score with this one module.

Scores are graded where a rule can be partly met (two words instead of one, a JSON object with
some of its keys, a length just over the bound), so that the pairs built from them see more than
pass/fail. Every rule scores an empty response 0: an answer that says nothing must not satisfy
"avoid the word X".

``passes`` is full compliance (the graded score reaches 1). It is what a judge should count: a
graded score lets brevity win (a shorter answer has fewer words to be wrong, fewer letters in the
wrong case, fewer commas), while passing needs the instruction followed.

A check is a plain dict, ``{"rule": <name>, **params}``, so it travels inside data set rows
and golden sets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from roadmap_lab.errors import LabError

WORD = re.compile(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")
INTEGER = re.compile(r"-?\d+(?:,\d{3})*")
BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S")
CODE_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)


class VerifierError(LabError):
    """A check that names an unknown rule or lacks a parameter its rule needs."""


def words(text: str) -> list[str]:
    """The words of ``text``: letters and digits, with inner apostrophes and hyphens."""
    return WORD.findall(text)


def _contains_word(text: str, word: str) -> int:
    """How often ``word`` occurs in ``text`` as a whole word, ignoring case."""
    pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", re.IGNORECASE)
    return len(pattern.findall(text))


def score_one_word(response: str, answers: list[str] | None = None) -> float:
    """One word: 1 / number of words. With ``answers``, a single word that is not one of them
    (ignoring case) scores half: the format is right, the answer is not."""
    found = words(response)
    if not found:
        return 0.0
    score = 1.0 / len(found)
    if answers and len(found) == 1 and found[0].lower() not in {a.lower() for a in answers}:
        score *= 0.5
    return score


def score_include_words(response: str, include: list[str]) -> float:
    """The fraction of the required words that occur (whole words, any case)."""
    if not words(response):
        return 0.0
    if not include:
        raise VerifierError("include_words needs at least one word")
    return sum(1 for word in include if _contains_word(response, word)) / len(include)


def score_avoid_word(response: str, avoid: str) -> float:
    """1 when ``avoid`` does not occur (as a whole word, any case), else 1 / (1 + occurrences)."""
    if not words(response):
        return 0.0
    return 1.0 / (1 + _contains_word(response, avoid))


def _strip_code_fence(text: str) -> str:
    stripped = text.strip()
    fenced = CODE_FENCE.match(stripped)
    return fenced.group(1).strip() if fenced else stripped


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first ``{...}`` in ``text`` that parses as a JSON object, if any (models wrap it in
    prose or code fences)."""
    decoder = json.JSONDecoder()
    for start in (i for i, char in enumerate(text) if char == "{"):
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def score_json_keys(response: str, keys: list[str]) -> float:
    """A JSON object with the given keys.

    The whole response (a code fence around it allowed) is a JSON object: 0.4 + 0.6 x the
    fraction of keys present. A JSON object inside other text: half of that. No object: 0.
    """
    if not keys:
        raise VerifierError("json_keys needs at least one key")
    body = _strip_code_fence(response)
    factor = 1.0
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        value = first_json_object(body)
        factor = 0.5
    if not isinstance(value, dict):
        return 0.0
    present = sum(1 for key in keys if key in value)
    return factor * (0.4 + 0.6 * present / len(keys))


def score_length(response: str, max_words: int, min_words: int = 1) -> float:
    """Between ``min_words`` and ``max_words`` words: 1; longer: max/n; shorter: n/min."""
    if min_words < 1 or max_words < min_words:
        raise VerifierError(
            f"length bounds must satisfy 1 <= min <= max, got {min_words}..{max_words}"
        )
    count = len(words(response))
    if count == 0:
        return 0.0
    if count > max_words:
        return max_words / count
    if count < min_words:
        return count / min_words
    return 1.0


def _as_int(token: str) -> int:
    return int(token.replace(",", ""))


def score_arithmetic(response: str, answer: int) -> float:
    """The number only: 1. Right number first among other text: 0.6. Right number somewhere
    later: 0.3. Otherwise 0."""
    text = response.strip().rstrip(".").strip()
    numbers = [_as_int(token) for token in INTEGER.findall(text)]
    if not numbers:
        return 0.0
    if INTEGER.fullmatch(text) and _as_int(text) == answer:
        return 1.0
    if numbers[0] == answer:
        return 0.6
    if answer in numbers:
        return 0.3
    return 0.0


def score_bullet_list(response: str, items: int) -> float:
    """A list of exactly ``items`` bullets ("- ", "* ", "1. "), nothing else.

    Score: (bullet lines / non-blank lines) x min(bullets, items) / max(bullets, items).
    """
    if items < 1:
        raise VerifierError(f"bullet_list needs items >= 1, got {items}")
    lines = [line for line in response.splitlines() if line.strip()]
    if not lines:
        return 0.0
    bullets = sum(1 for line in lines if BULLET.match(line))
    if bullets == 0:
        return 0.0
    return (bullets / len(lines)) * min(bullets, items) / max(bullets, items)


def _long_enough(response: str, min_words: int) -> float:
    """1 when ``response`` has at least ``min_words`` words, else the share it has: an answer
    too short to do what the prompt asked (a sentence, an explanation) must not pass a rule
    that only says how to write it."""
    if min_words < 1:
        raise VerifierError(f"min_words must be >= 1, got {min_words}")
    return min(1.0, len(words(response)) / min_words)


def score_starts_with(response: str, word: str, min_words: int = 1) -> float:
    """Starts with ``word`` (the first word, any case, quotes and markup before it allowed): 1.
    The word later in the answer: 0.5. Otherwise 0. Times the share of ``min_words`` met."""
    found = words(response)
    if not found:
        return 0.0
    if found[0].lower() == word.lower():
        value = 1.0
    else:
        value = 0.5 if _contains_word(response, word) else 0.0
    return value * _long_enough(response, min_words)


def score_letter_case(response: str, case: str, min_words: int = 1) -> float:
    """Every letter in ``case`` ("lower" or "upper"): the fraction of letters that are, times the
    share of ``min_words`` met."""
    if case not in ("lower", "upper"):
        raise VerifierError(f"letter_case needs case 'lower' or 'upper', got {case!r}")
    letters = [char for char in response if char.isalpha()]
    if not letters:
        return 0.0
    right = sum(1 for char in letters if (char.islower() if case == "lower" else char.isupper()))
    return right / len(letters) * _long_enough(response, min_words)


QUOTE_OPEN, QUOTE_CLOSE = '"“', '"”'


def score_quoted(response: str, min_words: int = 1) -> float:
    """The whole answer wrapped in double quotes (straight or curly): 1. A quote only at the
    start or only at the end: 0.5. Otherwise 0. Times the share of ``min_words`` met."""
    text = response.strip()
    if not words(text):
        return 0.0
    opens, closes = text[0] in QUOTE_OPEN, len(text) > 1 and text[-1] in QUOTE_CLOSE
    return (opens + closes) / 2 * _long_enough(text, min_words)


def score_no_commas(response: str, min_words: int = 1) -> float:
    """No comma (ASCII or full-width): 1, else 1 / (1 + commas). Times the share of
    ``min_words`` met."""
    if not words(response):
        return 0.0
    commas = response.count(",") + response.count("，")
    return 1.0 / (1 + commas) * _long_enough(response, min_words)


RULES: dict[str, Callable[..., float]] = {
    "one_word": score_one_word,
    "include_words": score_include_words,
    "avoid_word": score_avoid_word,
    "json_keys": score_json_keys,
    "length": score_length,
    "arithmetic": score_arithmetic,
    "bullet_list": score_bullet_list,
    "starts_with": score_starts_with,
    "letter_case": score_letter_case,
    "quoted": score_quoted,
    "no_commas": score_no_commas,
}
RULE_DESCRIPTIONS = {
    name: (function.__doc__ or "").strip().splitlines()[0] for name, function in RULES.items()
}


def score(response: str, check: Mapping[str, Any]) -> float:
    """Score ``response`` against ``check`` (``{"rule": name, **params}``), in [0, 1]."""
    params = dict(check)
    rule = params.pop("rule", None)
    if rule not in RULES:
        raise VerifierError(f"unknown rule {rule!r}; known rules: {', '.join(sorted(RULES))}")
    try:
        value = RULES[rule](response, **params)
    except TypeError as error:
        raise VerifierError(f"bad parameters for rule {rule!r}: {error}") from None
    return float(min(1.0, max(0.0, value)))


PASS_TOLERANCE = 1e-9


def passes(response: str, check: Mapping[str, Any]) -> bool:
    """Full compliance: the graded score reaches 1 (within floating-point tolerance)."""
    return score(response, check) >= 1.0 - PASS_TOLERANCE
