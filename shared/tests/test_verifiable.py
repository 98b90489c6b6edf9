"""The verifiable rules judge llm-alignment's pairs and win-rate and score prompt-registry's
verifier golden set: hand-written cases for every rule, edge cases included."""

from __future__ import annotations

import pytest
from roadmap_lab import verifiable
from roadmap_lab.verifiable import VerifierError, score


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("Blue", 1.0),
        ("blue.", 1.0),
        ("  **Blue**  ", 1.0),
        ("sky-blue", 1.0),  # a hyphenated word is one word
        ("It's", 1.0),  # so is a contraction
        ("Light blue", 0.5),
        ("The sky is blue", 0.25),
        ("", 0.0),
        ("   ", 0.0),
        ("...", 0.0),
    ],
)
def test_one_word_scores_one_over_the_number_of_words(response: str, expected: float) -> None:
    assert score(response, {"rule": "one_word"}) == pytest.approx(expected)


def test_one_word_with_answers_halves_a_wrong_single_word() -> None:
    check = {"rule": "one_word", "answers": ["Paris"]}
    assert score("paris", check) == 1.0
    assert score("PARIS!", check) == 1.0
    assert score("London", check) == 0.5
    # Two words: the format is already wrong; the answer does not lower it further.
    assert score("Paris, France", check) == 0.5


@pytest.mark.parametrize(
    ("response", "include", "expected"),
    [
        ("The river is quiet.", ["river"], 1.0),
        ("RIVER banks", ["river"], 1.0),
        ("Rivers flow", ["river"], 0.0),  # whole words only
        ("a riverbank", ["river"], 0.0),
        ("The river is quiet", ["river", "quiet"], 1.0),
        ("The river is loud", ["river", "quiet"], 0.5),
        ("Nothing here", ["river", "quiet"], 0.0),
        ("", ["river"], 0.0),
    ],
)
def test_include_words_is_the_fraction_present(
    response: str, include: list[str], expected: float
) -> None:
    assert score(response, {"rule": "include_words", "include": include}) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("A warm star lights the day.", 1.0),
        ("Sunny days are nice.", 1.0),  # "sunny" is not "sun"
        ("The sun is warm.", 0.5),
        ("The Sun, the SUN and the sun.", 0.25),
        ("", 0.0),  # saying nothing does not satisfy the rule
        ("   \n ", 0.0),
    ],
)
def test_avoid_word(response: str, expected: float) -> None:
    assert score(response, {"rule": "avoid_word", "avoid": "sun"}) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ('{"name": "Ann", "age": 3}', 1.0),
        ('```json\n{"name": "Ann", "age": 3}\n```', 1.0),
        ('{"name": "Ann", "age": 3, "extra": true}', 1.0),  # extra keys are allowed
        ('{"name": "Ann"}', 0.7),  # half the keys: 0.4 + 0.6 * 0.5
        ('{"other": 1}', 0.4),  # valid object, no required key
        ('Here it is: {"name": "Ann", "age": 3} hope that helps', 0.5),
        ('Here: {"name": "Ann"}', 0.35),
        ('["name", "age"]', 0.0),  # valid JSON, not an object
        ("{'name': 'Ann', 'age': 3}", 0.0),  # Python, not JSON
        ('{"name": "Ann", "age": }', 0.0),
        ("name: Ann, age: 3", 0.0),
        ("", 0.0),
    ],
)
def test_json_keys(response: str, expected: float) -> None:
    assert score(response, {"rule": "json_keys", "keys": ["name", "age"]}) == pytest.approx(
        expected
    )


def test_json_keys_skips_unparsable_braces_before_the_object() -> None:
    response = 'Use {braces} like this: {"name": "x", "age": 1}'
    assert score(response, {"rule": "json_keys", "keys": ["name", "age"]}) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("Light scatters.", 1.0),
        ("one two three four five", 1.0),  # exactly at the bound
        ("one two three four five six", 5 / 6),
        ("word " * 20, 0.25),
        ("", 0.0),
    ],
)
def test_length_bound(response: str, expected: float) -> None:
    assert score(response, {"rule": "length", "max_words": 5}) == pytest.approx(expected)


def test_length_minimum() -> None:
    check = {"rule": "length", "max_words": 10, "min_words": 4}
    assert score("one two", check) == pytest.approx(0.5)
    assert score("one two three four", check) == 1.0


def test_length_rejects_impossible_bounds() -> None:
    with pytest.raises(VerifierError, match="length bounds"):
        score("x", {"rule": "length", "max_words": 2, "min_words": 3})


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("42", 1.0),
        ("42.", 1.0),
        (" 42 \n", 1.0),
        ("42 is the answer", 0.6),
        ("The answer is 42.", 0.6),  # the first number is the right one
        ("17 + 25 = 42", 0.3),  # the right number, but not first
        ("41", 0.0),
        ("forty-two", 0.0),  # words are not checked as numbers
        ("", 0.0),
    ],
)
def test_arithmetic(response: str, expected: float) -> None:
    assert score(response, {"rule": "arithmetic", "answer": 42}) == pytest.approx(expected)


def test_arithmetic_handles_negative_numbers_and_thousands() -> None:
    assert score("-7", {"rule": "arithmetic", "answer": -7}) == 1.0
    assert score("7", {"rule": "arithmetic", "answer": -7}) == 0.0
    assert score("1,234", {"rule": "arithmetic", "answer": 1234}) == 1.0


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("- apple\n- pear\n- plum", 1.0),
        ("* apple\n* pear\n* plum", 1.0),
        ("1. apple\n2. pear\n3) plum", 1.0),
        ("- apple\n\n- pear\n- plum\n", 1.0),  # blank lines do not count
        ("- apple\n- pear", 2 / 3),
        ("- a\n- b\n- c\n- d\n- e\n- f", 0.5),
        ("Here you go:\n- apple\n- pear\n- plum", 0.75),
        ("apple, pear, plum", 0.0),
        ("-apple\n-pear\n-plum", 0.0),  # a bullet needs a space after the marker
        ("", 0.0),
    ],
)
def test_bullet_list(response: str, expected: float) -> None:
    assert score(response, {"rule": "bullet_list", "items": 3}) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("Yes, the sky is blue.", 1.0),
        ("yes", 1.0),  # any case
        ('**"Yes!"** it is.', 1.0),  # quotes and markup before the word are allowed
        ("Well, yes it is.", 0.5),  # the word, but not first
        ("Yesterday was fine.", 0.0),  # whole words only
        ("No.", 0.0),
        ("", 0.0),
        ("  ...  ", 0.0),
    ],
)
def test_starts_with(response: str, expected: float) -> None:
    assert score(response, {"rule": "starts_with", "word": "yes"}) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("response", "case", "expected"),
    [
        ("the sky is blue.", "lower", 1.0),
        ("it's 42 degrees, café open", "lower", 1.0),  # digits and punctuation do not count
        ("The sky is blue.", "lower", 11 / 12),
        ("THE SKY", "lower", 0.0),
        ("THE SKY IS BLUE!", "upper", 1.0),
        ("THE Sky", "upper", 4 / 6),
        ("", "lower", 0.0),
        ("42, 17.", "upper", 0.0),  # no letters: nothing shows the case
    ],
)
def test_letter_case_is_the_fraction_of_letters_in_that_case(
    response: str, case: str, expected: float
) -> None:
    assert score(response, {"rule": "letter_case", "case": case}) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ('"The sky is blue."', 1.0),
        ('  "Blue"\n', 1.0),
        ("“Curly quotes count.”", 1.0),
        ('"Only opened.', 0.5),
        ('Only closed."', 0.5),
        ('He said "blue" twice.', 0.0),  # quotes inside, not around the answer
        ("No quotes", 0.0),
        ('""', 0.0),  # quotes around nothing
        ("", 0.0),
    ],
)
def test_quoted(response: str, expected: float) -> None:
    assert score(response, {"rule": "quoted"}) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("Rain falls from clouds.", 1.0),
        ("Rain falls, then stops.", 0.5),
        ("Red, green, blue", 1 / 3),
        ("one，two", 0.5),  # a full-width comma is a comma
        ("", 0.0),  # saying nothing does not satisfy the rule
        (",", 0.0),
    ],
)
def test_no_commas(response: str, expected: float) -> None:
    assert score(response, {"rule": "no_commas"}) == pytest.approx(expected)


def test_passes_is_full_compliance_only() -> None:
    assert verifiable.passes("Paris", {"rule": "one_word", "answers": ["paris"]})
    assert not verifiable.passes("Paris, France", {"rule": "one_word"})
    assert not verifiable.passes("", {"rule": "avoid_word", "avoid": "sun"})
    assert verifiable.passes('{"name": "A", "age": 1}', {"rule": "json_keys", "keys": ["name"]})
    assert not verifiable.passes('Here: {"name": "A"}', {"rule": "json_keys", "keys": ["name"]})
    assert verifiable.passes("- a\n- b", {"rule": "bullet_list", "items": 2})
    assert not verifiable.passes("THE Sky", {"rule": "letter_case", "case": "upper"})
    with pytest.raises(VerifierError, match="unknown rule"):
        verifiable.passes("x", {"rule": "rhyme"})


def test_unknown_rule_and_bad_parameters_raise_clear_errors() -> None:
    with pytest.raises(VerifierError, match="unknown rule 'rhyme'"):
        score("x", {"rule": "rhyme"})
    with pytest.raises(VerifierError, match="unknown rule None"):
        score("x", {})
    with pytest.raises(VerifierError, match="bad parameters for rule 'avoid_word'"):
        score("x", {"rule": "avoid_word"})
    with pytest.raises(VerifierError, match="at least one key"):
        score("{}", {"rule": "json_keys", "keys": []})
    with pytest.raises(VerifierError, match="items >= 1"):
        score("- a", {"rule": "bullet_list", "items": 0})
    with pytest.raises(VerifierError, match="case 'lower' or 'upper'"):
        score("a", {"rule": "letter_case", "case": "title"})
    with pytest.raises(VerifierError, match="bad parameters for rule 'starts_with'"):
        score("a", {"rule": "starts_with"})


def test_every_rule_has_a_description() -> None:
    assert set(verifiable.RULE_DESCRIPTIONS) == set(verifiable.RULES)
    assert all(verifiable.RULE_DESCRIPTIONS.values())


@pytest.mark.parametrize(
    ("check", "short", "long_enough"),
    [
        ({"rule": "no_commas"}, "Garden.", "The garden is green and quiet today."),
        ({"rule": "starts_with", "word": "Once"}, "Once.", "Once upon a time a garden grew."),
        ({"rule": "letter_case", "case": "lower"}, "ok", "the garden is green and quiet today"),
        ({"rule": "quoted"}, '"Yes."', '"The garden is green and quiet today."'),
    ],
)
def test_held_out_rules_need_the_answer_the_prompt_asked_for(
    check: dict, short: str, long_enough: str
) -> None:
    # "Describe a garden without commas": one word says too little to pass.
    sized = {**check, "min_words": 6}
    assert not verifiable.passes(short, sized) and verifiable.passes(short, check)
    assert verifiable.passes(long_enough, sized)
    assert score(short, sized) == pytest.approx(score(short, check) * len(short.split()) / 6)
    with pytest.raises(VerifierError, match="min_words"):
        score(long_enough, {**check, "min_words": 0})
