"""The prompt templates against the shared verifiable rules (roadmap_lab.verifiable, whose own
hand-written cases live in shared/tests): every rule has templates, every generated check is
scorable, and each can be fully met."""

from __future__ import annotations

from llm_alignment.prompts import TEMPLATES, make_prompts
from roadmap_lab import verifiable
from roadmap_lab.verifiable import score


def test_every_rule_has_a_template_and_every_template_a_known_rule() -> None:
    assert {template.rule for template in TEMPLATES} == set(verifiable.RULES)


def test_every_generated_check_scores_in_range() -> None:
    for item in make_prompts(3, seed=1):
        for response in ("", "yes", '{"a": 1}', "- a\n- b", "12", '"Yes, IT is"'):
            assert 0.0 <= score(response, item.check) <= 1.0


def test_a_perfect_answer_exists_for_generated_prompts() -> None:
    """The checks the templates generate can be fully met (else pairs could never be clean)."""
    padding = " and the rest of a full answer of enough words here"
    perfect = {
        "one_word": lambda c: c["answers"][0],
        "include_words": lambda c: " ".join(c["include"]),
        "avoid_word": lambda c: "Something else entirely.",
        "json_keys": lambda c: "{" + ", ".join(f'"{k}": 1' for k in c["keys"]) + "}",
        "length": lambda c: "Short answer.",
        "arithmetic": lambda c: str(c["answer"]),
        "bullet_list": lambda c: "\n".join(f"- item {i}" for i in range(c["items"])),
        "starts_with": lambda c: f"{c['word']} it is{padding}.",
        "letter_case": lambda c: f"fine words{padding}"
        if c["case"] == "lower"
        else f"FINE WORDS{padding.upper()}",
        "quoted": lambda c: f'"A quoted answer{padding}."',
        "no_commas": lambda c: f"No commas here{padding}.",
    }
    for item in make_prompts(2, seed=0):
        assert score(perfect[item.rule](item.check), item.check) == 1.0, item.prompt
