"""Scorers: each turns model outputs into per-example results (pass/fail, a value, why).

* ``exact_match``: normalised exact match (case, punctuation, articles and spaces ignored) of the
  output's first line against any accepted answer.
* ``label``: classification with a fixed set of ``labels``: the answer's label is the one allowed
  label it names (``pick: only``; naming two labels, or none, fails) or the first label word in it
  (``pick: first``); it passes when that label is the expected one.
* ``contains``: an accepted answer occurs in the output (normalised); ``regex``: a pattern
  (``pattern``, default the example's ``pattern``) matches the output.
* ``numeric``: the first number in the output is within ``abs_tol`` / ``rel_tol`` of the answer.
* ``json_schema``: the first JSON object in the output validates against ``schema``; with
  ``match_expected`` its fields must also equal the expected object's (normalised).
* ``embedding``: cosine similarity of all-MiniLM-L6-v2 embeddings (mean-pooled) of the output and
  the closest accepted answer reaches ``threshold``.
* ``llm_judge``: a judge model answers YES/NO ``repeats`` times; the example passes when at least
  ``min_pass`` answers are YES (repeat-and-min-pass for flaky judgements).
* ``verifier``: the example's ``check`` (``{"rule": ..., **params}``) scored by the shared
  verifiable rules (``roadmap_lab.verifiable``, llm-alignment's judge); it passes when the graded
  score reaches ``min_score``.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from roadmap_lab.verifiable import first_json_object

from prompt_registry.errors import PromptFileError
from prompt_registry.evalconfig import ScorerSpec
from prompt_registry.golden import Example

if TYPE_CHECKING:
    from prompt_registry.providers import Provider

ARTICLES = re.compile(r"\b(a|an|the)\b")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
PUNCTUATION = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True)
class ScoreResult:
    passed: bool
    value: float
    detail: str = ""


class Scorer(Protocol):
    name: str

    def score(self, outputs: Sequence[str], examples: Sequence[Example]) -> list[ScoreResult]: ...


def normalise(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the SQuAD normalisation)."""
    text = ARTICLES.sub(" ", text.lower().translate(PUNCTUATION))
    return " ".join(text.split())


def first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _per_example(
    check: Callable[[str, Example], ScoreResult],
) -> Callable[[Sequence[str], Sequence[Example]], list[ScoreResult]]:
    def score(outputs: Sequence[str], examples: Sequence[Example]) -> list[ScoreResult]:
        return [check(output, example) for output, example in zip(outputs, examples, strict=True)]

    return score


class ExactMatch:
    name = "exact_match"

    def score(self, outputs: Sequence[str], examples: Sequence[Example]) -> list[ScoreResult]:
        def check(output: str, example: Example) -> ScoreResult:
            got = normalise(first_line(output))
            passed = any(got == normalise(answer) for answer in example.accepted())
            return ScoreResult(passed, float(passed), got)

        return _per_example(check)(outputs, examples)


class Contains:
    name = "contains"

    def score(self, outputs: Sequence[str], examples: Sequence[Example]) -> list[ScoreResult]:
        def check(output: str, example: Example) -> ScoreResult:
            got = f" {normalise(output)} "
            hit = next(
                (a for a in example.accepted() if normalise(a) and f" {normalise(a)} " in got),
                None,
            )
            return ScoreResult(hit is not None, float(hit is not None), hit or "")

        return _per_example(check)(outputs, examples)


class Label:
    """Strict classification: an answer that names both labels ("positive or negative?") is not
    a positive answer, whatever ``contains`` would say."""

    name = "label"
    PICKS = ("only", "first")

    def __init__(self, labels: list[str], pick: str = "only") -> None:
        self.labels = [normalise(label) for label in labels]
        if len(self.labels) < 2 or any(len(label.split()) != 1 for label in self.labels):
            raise PromptFileError("label scorer: needs two or more one-word labels")
        if pick not in self.PICKS:
            raise PromptFileError(f"label scorer: pick is {' or '.join(self.PICKS)}, not {pick!r}")
        self.pick = pick

    def answer(self, output: str) -> str | None:
        """The label the output gives, or None (no label, or several with ``pick: only``)."""
        named = [word for word in normalise(output).split() if word in self.labels]
        if self.pick == "first":
            return named[0] if named else None
        distinct = set(named)
        return named[0] if len(distinct) == 1 else None

    def score(self, outputs: Sequence[str], examples: Sequence[Example]) -> list[ScoreResult]:
        def check(output: str, example: Example) -> ScoreResult:
            expected = normalise(example.expected)
            if expected not in self.labels:
                raise PromptFileError(f"label scorer: {example.id} expects no allowed label")
            got = self.answer(output)
            passed = got == expected
            return ScoreResult(passed, float(passed), got or "no single label")

        return _per_example(check)(outputs, examples)


class Regex:
    name = "regex"

    def __init__(self, pattern: str | None = None, ignore_case: bool = True) -> None:
        self.pattern = pattern
        self.flags = re.IGNORECASE if ignore_case else 0

    def score(self, outputs: Sequence[str], examples: Sequence[Example]) -> list[ScoreResult]:
        def check(output: str, example: Example) -> ScoreResult:
            pattern = self.pattern or example.extra.get("pattern")
            if not pattern:
                raise PromptFileError(f"regex scorer: no pattern for example {example.id}")
            match = re.search(pattern, output, self.flags)
            return ScoreResult(match is not None, float(match is not None), pattern)

        return _per_example(check)(outputs, examples)


def first_number(text: str) -> float | None:
    match = NUMBER.search(text)
    if match is None:
        return None
    try:
        return float(match.group().replace(",", ""))
    except ValueError:
        return None


class Numeric:
    name = "numeric"

    def __init__(self, abs_tol: float = 0.0, rel_tol: float = 1e-6) -> None:
        self.abs_tol, self.rel_tol = abs_tol, rel_tol

    def score(self, outputs: Sequence[str], examples: Sequence[Example]) -> list[ScoreResult]:
        def check(output: str, example: Example) -> ScoreResult:
            got, want = first_number(output), first_number(example.expected)
            if want is None:
                raise PromptFileError(f"numeric scorer: expected of {example.id} is no number")
            if got is None:
                return ScoreResult(False, 0.0, "no number in the output")
            passed = math.isclose(got, want, rel_tol=self.rel_tol, abs_tol=self.abs_tol)
            return ScoreResult(passed, float(passed), f"{got:g} vs {want:g}")

        return _per_example(check)(outputs, examples)


def _normalised_value(value: Any) -> Any:
    return normalise(value) if isinstance(value, str) else value


class JsonSchema:
    name = "json_schema"

    def __init__(self, schema: dict[str, Any], match_expected: bool = False) -> None:
        from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
        from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            raise PromptFileError(f"json_schema scorer: invalid schema ({error.message})") from None
        self.validator = Draft202012Validator(schema)
        self.match_expected = match_expected

    def score(self, outputs: Sequence[str], examples: Sequence[Example]) -> list[ScoreResult]:
        def check(output: str, example: Example) -> ScoreResult:
            value = first_json_object(output)
            if value is None:
                return ScoreResult(False, 0.0, "no JSON object")
            errors = sorted(self.validator.iter_errors(value), key=lambda e: list(e.path))
            if errors:
                return ScoreResult(False, 0.0, f"schema: {errors[0].message}")
            if self.match_expected:
                expected = json.loads(example.expected)
                wrong = [
                    key
                    for key, want in expected.items()
                    if _normalised_value(value.get(key)) != _normalised_value(want)
                ]
                if wrong:
                    return ScoreResult(False, 0.5, f"fields differ: {', '.join(wrong)}")
            return ScoreResult(True, 1.0, "valid")

        return _per_example(check)(outputs, examples)


class Embedder:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling, L2-normalised), loaded once."""

    def __init__(self, model_dir: Path | None = None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if model_dir is None:
            from roadmap_lab.models import minilm_dir

            model_dir = minilm_dir()
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()

    def encode(self, texts: Sequence[str]) -> Any:
        torch = self.torch
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=128, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


_EMBEDDERS: dict[str, Embedder] = {}


def shared_embedder(model_dir: Path | None = None) -> Embedder:
    key = str(model_dir)
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = Embedder(model_dir)
    return _EMBEDDERS[key]


class EmbeddingSimilarity:
    name = "embedding"

    def __init__(self, threshold: float = 0.75, embedder: Embedder | None = None) -> None:
        self.threshold = threshold
        self._embedder = embedder

    def score(self, outputs: Sequence[str], examples: Sequence[Example]) -> list[ScoreResult]:
        embedder = self._embedder or shared_embedder()
        answers = [example.accepted() for example in examples]
        flat = [answer for group in answers for answer in group]
        out_vectors = embedder.encode([o.strip() or " " for o in outputs])
        answer_vectors = embedder.encode(flat)
        results, offset = [], 0
        for row, group in enumerate(answers):
            similarities = answer_vectors[offset : offset + len(group)] @ out_vectors[row]
            offset += len(group)
            best = float(similarities.max())
            results.append(ScoreResult(best >= self.threshold, round(best, 4), f"cos {best:.3f}"))
        return results


class Verifier:
    """Instruction following that a program checks: one rule code for llm-alignment's judge and
    this registry's gate."""

    name = "verifier"

    def __init__(self, min_score: float = 1.0) -> None:
        if not 0 < min_score <= 1:
            raise PromptFileError(f"verifier scorer: min_score must be in (0, 1], not {min_score}")
        self.min_score = min_score

    def score(self, outputs: Sequence[str], examples: Sequence[Example]) -> list[ScoreResult]:
        from roadmap_lab import verifiable

        def check(output: str, example: Example) -> ScoreResult:
            rule = example.extra.get("check")
            if not isinstance(rule, dict):
                raise PromptFileError(f"verifier scorer: example {example.id} has no check")
            value = verifiable.score(output, rule)
            return ScoreResult(value >= self.min_score, round(value, 4), str(rule.get("rule")))

        return _per_example(check)(outputs, examples)


JUDGE_TEMPLATE = (
    "You are grading an answer. {rubric}\n"
    "Question: {question}\nReference answer: {reference}\nAnswer to grade: {answer}\n"
    "Is the answer to grade correct? Reply with YES or NO only."
)


class LlmJudge:
    """Asks a judge model ``repeats`` times (each repeat its own sampling seed) and passes an
    example when at least ``min_pass`` replies start with YES."""

    name = "llm_judge"

    def __init__(
        self,
        judge: Provider,
        rubric: str = "",
        repeats: int = 3,
        min_pass: int = 2,
        temperature: float = 0.7,
        question_variable: str | None = None,
    ) -> None:
        if not 1 <= min_pass <= repeats:
            raise PromptFileError(f"llm_judge: need 1 <= min_pass ({min_pass}) <= repeats")
        self.judge, self.rubric = judge, rubric
        self.repeats, self.min_pass, self.temperature = repeats, min_pass, temperature
        self.question_variable = question_variable

    def score(self, outputs: Sequence[str], examples: Sequence[Example]) -> list[ScoreResult]:
        from prompt_registry.providers import GenerationRequest

        requests = []
        for output, example in zip(outputs, examples, strict=True):
            question = (
                example.vars.get(self.question_variable, "")
                if self.question_variable
                else json.dumps(example.vars)
            )
            text = JUDGE_TEMPLATE.format(
                rubric=self.rubric, question=question, reference=example.expected, answer=output
            )
            requests += [
                GenerationRequest(text, max_new_tokens=3, temperature=self.temperature, seed=r)
                for r in range(self.repeats)
            ]
        replies = [generation.text for generation in self.judge.generate(requests)]
        results = []
        for index in range(len(examples)):
            votes = replies[index * self.repeats : (index + 1) * self.repeats]
            yes = sum(normalise(v).startswith("yes") for v in votes)
            results.append(
                ScoreResult(yes >= self.min_pass, yes / self.repeats, f"{yes}/{self.repeats} YES")
            )
        return results


def build_scorer(spec: ScorerSpec, judge: Provider | None = None) -> Scorer:
    """The scorer a prompt's eval names, with its parameters; a bad name is a clear error."""
    params = {k: v for k, v in (spec.model_extra or {}).items()}
    factories: dict[str, Callable[..., Scorer]] = {
        "exact_match": ExactMatch,
        "contains": Contains,
        "label": Label,
        "regex": Regex,
        "numeric": Numeric,
        "json_schema": JsonSchema,
        "embedding": EmbeddingSimilarity,
        "verifier": Verifier,
    }
    if spec.type == "llm_judge":
        if judge is None:
            raise PromptFileError("llm_judge scorer needs a judge provider (--judge openai|local)")
        return LlmJudge(judge, **params)
    if spec.type not in factories:
        known = ", ".join([*factories, "llm_judge"])
        raise PromptFileError(f"unknown scorer {spec.type!r} (known: {known})")
    try:
        return factories[spec.type](**params)
    except TypeError as error:
        raise PromptFileError(f"scorer {spec.type}: bad parameters ({error})") from None
