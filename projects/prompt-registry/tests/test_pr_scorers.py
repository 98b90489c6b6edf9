"""Each scorer on hand-written cases."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from prompt_registry.errors import PromptFileError
from prompt_registry.evalconfig import ScorerSpec
from prompt_registry.golden import Example
from prompt_registry.providers import Generation, GenerationRequest
from prompt_registry.scorers import (
    Contains,
    EmbeddingSimilarity,
    ExactMatch,
    JsonSchema,
    Label,
    LlmJudge,
    Numeric,
    Regex,
    build_scorer,
    first_json_object,
    normalise,
)


def ex(expected: str, *answers: str, **extra: str) -> Example:
    return Example("x", {}, expected, tuple(answers), dict(extra))


def passes(scorer, outputs: list[str], examples: list[Example]) -> list[bool]:
    return [r.passed for r in scorer.score(outputs, examples)]


def test_normalise_ignores_case_punctuation_articles_and_spaces() -> None:
    assert normalise("  The  Eiffel-Tower! ") == "eiffeltower"
    assert normalise("An apple, a day") == "apple day"


def test_exact_match_uses_the_first_line_and_any_accepted_answer() -> None:
    examples = [ex("Paris"), ex("positive"), ex("New Delhi", "Delhi"), ex("Rome")]
    outputs = ["paris.\nIt is in France.", "Positive!", "Delhi", "The capital is Rome"]
    assert passes(ExactMatch(), outputs, examples) == [True, True, True, False]


def test_contains_needs_the_whole_answer_as_words() -> None:
    examples = [ex("Rome"), ex("negative"), ex("Lima"), ex("Oslo")]
    outputs = ["The capital of Italy is Rome.", "The review is NEGATIVE", "Limassol", ""]
    assert passes(Contains(), outputs, examples) == [True, True, False, False]


def test_label_takes_the_one_label_an_answer_names() -> None:
    scorer = Label(["positive", "negative"])
    examples = [ex("positive"), ex("negative"), ex("positive"), ex("positive"), ex("negative")]
    outputs = [
        "The review is Positive, but",
        "negative.",
        "positive or negative",  # names both: no answer, although `contains` passes it
        "It is not clear",
        "The reviewer is positive about it",
    ]
    assert passes(scorer, outputs, examples) == [True, True, False, False, False]
    assert passes(Contains(), outputs, examples)[2]
    assert [r.detail for r in scorer.score(outputs[2:4], examples[2:4])] == ["no single label"] * 2
    # The same label twice is still one label.
    assert passes(scorer, ["positive, very positive"], [ex("positive")]) == [True]


def test_label_first_takes_the_first_label_word() -> None:
    scorer = Label(["positive", "negative"], pick="first")
    outputs = ["negative, not positive", "positive or negative", "no idea"]
    assert passes(scorer, outputs, [ex("negative"), ex("negative"), ex("negative")]) == [
        True,
        False,
        False,
    ]


def test_label_refuses_bad_configurations() -> None:
    with pytest.raises(PromptFileError, match="two or more one-word labels"):
        Label(["positive"])
    with pytest.raises(PromptFileError, match="two or more one-word labels"):
        Label(["very good", "bad"])
    with pytest.raises(PromptFileError, match="pick is only or first"):
        Label(["yes", "no"], pick="last")
    with pytest.raises(PromptFileError, match="expects no allowed label"):
        Label(["positive", "negative"]).score(["positive"], [ex("neutral")])


def test_regex_from_the_scorer_or_the_example() -> None:
    assert passes(
        Regex(r"^\d{4}-\d{2}-\d{2}$"), ["2024-01-31", "31/01/2024"], [ex(""), ex("")]
    ) == [
        True,
        False,
    ]
    assert passes(Regex(), ["ABC-12"], [ex("", pattern=r"[a-z]+-\d+")]) == [True]
    with pytest.raises(PromptFileError, match="no pattern"):
        Regex().score(["x"], [ex("")])


def test_numeric_tolerance() -> None:
    examples = [ex("42"), ex("3.14"), ex("1,000"), ex("10")]
    outputs = ["The answer is 42.", "about 3.1", "1000 exactly", "ten"]
    assert passes(Numeric(), outputs, examples) == [True, False, True, False]
    assert passes(Numeric(abs_tol=0.05), outputs[:2], examples[:2]) == [True, True]


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "city": {"type": "string"}},
    "required": ["name", "city"],
}


def test_json_schema_validity_and_expected_fields() -> None:
    expected = ex('{"name": "Anna Smith", "city": "Paris"}')
    outputs = [
        'Sure: ```json\n{"name": "anna smith", "city": "Paris"}\n```',
        '{"name": "Anna Smith"}',
        '{"name": "Anna Smith", "city": "Lyon"}',
        "no json here {",
    ]
    validity = passes(JsonSchema(SCHEMA), outputs, [expected] * 4)
    assert validity == [True, False, True, False]
    fields = JsonSchema(SCHEMA, match_expected=True).score(outputs, [expected] * 4)
    assert [r.passed for r in fields] == [True, False, False, False]
    assert "city" in fields[2].detail
    assert first_json_object('x {"a": {"b": 1}} y') == {"a": {"b": 1}}
    with pytest.raises(PromptFileError, match="invalid schema"):
        JsonSchema({"type": "no-such-type"})


class ScriptedJudge:
    """A judge whose replies are scripted per call, to test repeat-and-min-pass."""

    name = "scripted"

    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.calls = 0
        self.requests: list[GenerationRequest] = []

    def identity(self) -> str:
        return self.name

    def generate(self, requests: Sequence[GenerationRequest], finished=None) -> list[Generation]:
        self.requests += requests
        out = self.replies[self.calls : self.calls + len(requests)]
        self.calls += len(requests)
        return [Generation(text) for text in out]


def test_llm_judge_repeats_and_passes_on_min_votes() -> None:
    # Example 1: YES, no, YES -> 2/3 passes; example 2: no, YES, no -> 1/3 fails.
    judge = ScriptedJudge(["YES", "no", "Yes.", "NO", "yes", "no"])
    scorer = LlmJudge(judge, rubric="Be strict.", repeats=3, min_pass=2)
    results = scorer.score(["Paris", "Lyon"], [ex("Paris"), ex("Paris")])
    assert [r.passed for r in results] == [True, False]
    assert [r.value for r in results] == pytest.approx([2 / 3, 1 / 3])
    assert [r.seed for r in judge.requests[:3]] == [0, 1, 2]  # each repeat samples anew
    assert "Reference answer: Paris" in judge.requests[0].prompt
    with pytest.raises(PromptFileError, match="min_pass"):
        LlmJudge(judge, repeats=2, min_pass=3)


def test_build_scorer_from_specs() -> None:
    spec = ScorerSpec.model_validate({"type": "numeric", "abs_tol": 0.5})
    assert isinstance(build_scorer(spec), Numeric)
    label = ScorerSpec.model_validate({"type": "label", "labels": ["yes", "no"]})
    assert isinstance(build_scorer(label), Label)
    with pytest.raises(PromptFileError, match="unknown scorer 'bleu'"):
        build_scorer(ScorerSpec(type="bleu"))
    with pytest.raises(PromptFileError, match="bad parameters"):
        build_scorer(ScorerSpec.model_validate({"type": "contains", "x": 1}))
    with pytest.raises(PromptFileError, match="needs a judge"):
        build_scorer(ScorerSpec(type="llm_judge"))


@pytest.mark.slow
def test_embedding_similarity_with_minilm() -> None:
    scorer = EmbeddingSimilarity(threshold=0.7)
    examples = [ex("The capital of France is Paris"), ex("The capital of France is Paris")]
    results = scorer.score(
        ["Paris is the capital city of France.", "I like green apples."], examples
    )
    assert [r.passed for r in results] == [True, False]
    assert results[0].value > 0.8 > 0.3 > results[1].value
