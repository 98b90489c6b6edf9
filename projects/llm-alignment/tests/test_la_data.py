"""Preference loaders (HH-RLHF and TRL conversational) on fixture files written here, malformed
rows included; prompt templates and the three-way split (training templates, held-out templates of
training rules, held-out rules); pairs and their tie-break; the data set folder and its card."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from llm_alignment.data import (
    load_conversational,
    load_dataset,
    load_hh_rlhf,
    load_preferences,
    parse_hh_dialogue,
    save_dataset,
)
from llm_alignment.errors import PreferenceDataError
from llm_alignment.pairs import PairOptions, best_worst_pair, build_pairs
from llm_alignment.prompts import (
    HELDOUT_RULE,
    HELDOUT_RULES,
    HELDOUT_TEMPLATE,
    RULE_NAMES,
    TEMPLATES,
    TRAIN,
    TRAINING_RULES,
    heldout_templates,
    make_prompts,
    prompt_groups,
    split_by_template,
    split_templates,
)

HH_ROW = {
    "chosen": "\n\nHuman: What is a good name for a cat?\n\nAssistant: How about Miso?"
    "\n\nHuman: Another one?\n\nAssistant: Pepper is nice.",
    "rejected": "\n\nHuman: What is a good name for a cat?\n\nAssistant: How about Miso?"
    "\n\nHuman: Another one?\n\nAssistant: I don't know.",
}


def write_lines(path: Path, rows: list[Any]) -> Path:
    text = "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_hh_row_becomes_chat_messages_up_to_the_last_assistant_turn(tmp_path: Path) -> None:
    rows = load_hh_rlhf(write_lines(tmp_path / "hh.jsonl", [HH_ROW]))
    assert rows == [
        {
            "prompt": [
                {"role": "user", "content": "What is a good name for a cat?"},
                {"role": "assistant", "content": "How about Miso?"},
                {"role": "user", "content": "Another one?"},
            ],
            "chosen": [{"role": "assistant", "content": "Pepper is nice."}],
            "rejected": [{"role": "assistant", "content": "I don't know."}],
        }
    ]


def test_hh_reads_gzip_and_skips_blank_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "hh.jsonl.gz", [HH_ROW, "", HH_ROW])
    assert len(load_hh_rlhf(path)) == 2
    assert load_preferences(path)[0]["chosen"][0]["content"] == "Pepper is nice."


def test_hh_keeps_multiline_turns() -> None:
    messages = parse_hh_dialogue("\n\nHuman: line one\nline two\n\nAssistant: ok")
    assert messages == [
        {"role": "user", "content": "line one\nline two"},
        {"role": "assistant", "content": "ok"},
    ]


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ('["a list"]', "line 2: expected a JSON object"),
        ({"chosen": HH_ROW["chosen"]}, "line 2: 'rejected' must be a string"),
        ({"chosen": 3, "rejected": "x"}, "line 2: 'chosen' must be a string"),
        (
            {"chosen": "\n\nHuman: hi", "rejected": "\n\nHuman: hi"},
            "line 2: 'chosen' has no '\\\\n\\\\nAssistant:' turn",
        ),
        (
            {
                "chosen": "\n\nHuman: hi\n\nAssistant: a",
                "rejected": "\n\nHuman: bye\n\nAssistant: b",
            },
            "line 2: 'rejected' does not continue the same prompt",
        ),
        (
            {
                "chosen": "preamble\n\nHuman: hi\n\nAssistant: a",
                "rejected": "preamble\n\nHuman: hi\n\nAssistant: b",
            },
            "line 2: text before the first 'Human:' turn",
        ),
    ],
)
def test_hh_malformed_rows_name_the_line(tmp_path: Path, bad_row: Any, message: str) -> None:
    path = write_lines(tmp_path / "hh.jsonl", [HH_ROW, bad_row, HH_ROW])
    with pytest.raises(PreferenceDataError, match=message) as raised:
        load_hh_rlhf(path)
    assert str(raised.value).startswith(f"{path} line 2: ")


def test_missing_empty_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(PreferenceDataError, match="no such file"):
        load_hh_rlhf(tmp_path / "absent.jsonl")
    with pytest.raises(PreferenceDataError, match="no rows"):
        load_conversational(write_lines(tmp_path / "empty.jsonl", [""]))
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(b"not gzip at all")
    with pytest.raises(PreferenceDataError, match="cannot read"):
        load_hh_rlhf(corrupt)


CONVERSATIONAL = {
    "prompt": [{"role": "user", "content": "Name a colour."}],
    "chosen": [{"role": "assistant", "content": "Blue"}],
    "rejected": [{"role": "assistant", "content": "I like many things."}],
}


def test_conversational_rows_load_and_strings_become_messages(tmp_path: Path) -> None:
    plain = {"prompt": "Name a colour.", "chosen": "Blue", "rejected": "Hmm", "rule": "one_word"}
    rows = load_conversational(write_lines(tmp_path / "c.jsonl", [CONVERSATIONAL, plain]))
    assert rows[0] == CONVERSATIONAL
    assert rows[1]["prompt"] == [{"role": "user", "content": "Name a colour."}]
    assert rows[1]["rejected"] == [{"role": "assistant", "content": "Hmm"}]
    assert rows[1]["rule"] == "one_word"  # extra keys are kept
    assert load_preferences(tmp_path / "c.jsonl") == rows  # auto-detected


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ({"prompt": "x", "chosen": "y"}, "line 3: missing rejected"),
        ({**CONVERSATIONAL, "chosen": []}, "line 3: 'chosen' must be a string or a non-empty list"),
        (
            {**CONVERSATIONAL, "prompt": [{"role": "robot", "content": "x"}]},
            "line 3: 'prompt'\\[0\\] has role 'robot'",
        ),
        (
            {**CONVERSATIONAL, "prompt": [{"role": "user", "content": 5}]},
            "line 3: 'prompt'\\[0\\] content must be a string",
        ),
        ({**CONVERSATIONAL, "prompt": ["hello"]}, "line 3: 'prompt'\\[0\\] must be an object"),
        (
            {**CONVERSATIONAL, "prompt": [{"role": "assistant", "content": "x"}]},
            "line 3: 'prompt' must not end with an assistant message",
        ),
        (
            {**CONVERSATIONAL, "rejected": [{"role": "user", "content": "x"}]},
            "line 3: 'rejected' must start with an assistant message",
        ),
    ],
)
def test_conversational_malformed_rows_name_the_line(
    tmp_path: Path, bad_row: Any, message: str
) -> None:
    path = write_lines(tmp_path / "c.jsonl", [CONVERSATIONAL, CONVERSATIONAL, bad_row])
    with pytest.raises(PreferenceDataError, match=message):
        load_conversational(path)


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PreferenceDataError, match="unknown format 'csv'"):
        load_preferences(write_lines(tmp_path / "c.jsonl", [CONVERSATIONAL]), "csv")


def test_prompts_are_deterministic_distinct_and_cover_every_rule() -> None:
    first, again = make_prompts(3, seed=7), make_prompts(3, seed=7)
    assert first == again
    assert len({item.prompt for item in first}) == len(first)
    assert {item.rule for item in first} == set(RULE_NAMES)
    assert make_prompts(3, seed=8) != first


def test_split_holds_out_rules_and_two_templates_of_each_training_rule() -> None:
    groups = split_templates(0)
    assert groups == split_templates(0)  # a pure function of the seed
    assert any(split_templates(seed) != groups for seed in range(1, 5))
    rule_of = {t.template_id: t.rule for t in TEMPLATES}
    assert len(HELDOUT_RULES) >= 3 and set(TRAINING_RULES).isdisjoint(HELDOUT_RULES)
    assert {rule_of[t] for t in groups[HELDOUT_RULE]} == set(HELDOUT_RULES)
    assert {rule_of[t] for t in groups[TRAIN]} == set(TRAINING_RULES)
    for rule in TRAINING_RULES:
        assert [rule_of[t] for t in groups[HELDOUT_TEMPLATE]].count(rule) == 2
        assert [rule_of[t] for t in groups[TRAIN]].count(rule) >= 3
    # Every reported figure needs at least 10 template clusters.
    assert len(groups[HELDOUT_TEMPLATE]) >= 10 and len(groups[HELDOUT_RULE]) >= 10
    assert sorted(sum(groups.values(), [])) == sorted(rule_of)
    assert heldout_templates(0) == set(groups[HELDOUT_TEMPLATE]) | set(groups[HELDOUT_RULE])


def test_held_out_prompts_are_disjoint_from_training_prompts() -> None:
    for seed in range(3):
        groups = prompt_groups(3, seed)
        train, heldout = split_by_template(make_prompts(3, seed), seed)
        assert train == groups[TRAIN]
        assert heldout == [
            item
            for item in make_prompts(3, seed)
            if item in groups[HELDOUT_TEMPLATE] + groups[HELDOUT_RULE]
        ]
        train_texts = {item.prompt for item in train}
        assert train_texts.isdisjoint(item.prompt for item in heldout)
        assert all(item.rule in TRAINING_RULES for item in train)


def test_best_worst_pair_needs_a_real_gap() -> None:
    item = make_prompts(1, seed=0)[0]
    assert item.rule == "one_word"
    answer = item.check["answers"][0]
    pair = best_worst_pair(item, [answer, "It is a long answer", answer + " colour"], min_gap=0.25)
    assert pair is not None
    assert pair["chosen"][0]["content"] == answer
    assert pair["rejected"][0]["content"] == "It is a long answer"
    assert pair["score_chosen"] == 1.0 and pair["score_rejected"] == 0.2
    assert best_worst_pair(item, [answer, answer.upper()], min_gap=0.25) is None
    assert best_worst_pair(item, ["two words", "three words here"], min_gap=0.25) is None


def test_ties_are_broken_at_random_not_by_length() -> None:
    """Two equally good and two equally bad answers of different lengths: over many prompts and
    seeds the longer one is picked about half the time, and a seed repeats its pick."""
    one_word = [item for item in make_prompts(6, seed=0) if item.rule == "one_word"]
    longer_chosen, longer_rejected = [], []
    for seed in range(20):
        for item in one_word:
            answer = item.check["answers"][0]
            # Both best score 1 (markup is not a word), both worst 0.5 (two words).
            answers = [answer, f"**{answer}**", "a b", "several-hyphenated-words here"]
            pair = best_worst_pair(item, answers, min_gap=0.25, seed=seed)
            assert pair is not None and pair == best_worst_pair(item, answers, 0.25, seed)
            assert (pair["score_chosen"], pair["score_rejected"]) == (1.0, 0.5)
            longer_chosen.append(pair["chosen"][0]["content"] == answers[1])
            longer_rejected.append(pair["rejected"][0]["content"] == answers[3])
    for picks in (longer_chosen, longer_rejected):
        assert 0.3 < sum(picks) / len(picks) < 0.7


@pytest.mark.slow
def test_built_pairs_never_come_from_held_out_rules_or_templates(
    tmp_path: Path, tiny_llama_dir: Path
) -> None:
    options = PairOptions(per_template=2, samples=2, max_new_tokens=6, min_gap=0.01, seed=3)
    card = build_pairs(tiny_llama_dir, tmp_path / "data", options)
    train, heldout, prompts, _ = load_dataset(tmp_path / "data")
    groups = split_templates(3)
    assert card["template_groups"] == groups
    assert train, "the tiny model's samples should give some pairs"
    for row in train:
        assert row["template_id"] in groups[TRAIN] and row["rule"] in TRAINING_RULES
    for row in heldout:
        assert row["template_id"] in groups[HELDOUT_TEMPLATE]
    assert {row["group"] for row in prompts} == {HELDOUT_TEMPLATE, HELDOUT_RULE}
    for row in prompts:
        assert row["template_id"] in groups[row["group"]]
    train_prompts = {row["prompt"][-1]["content"] for row in train}
    assert train_prompts.isdisjoint(row["prompt"] for row in prompts)
    assert card["splits"][HELDOUT_RULE] == {"pairs": 0, "prompts": 2 * len(groups[HELDOUT_RULE])}


def test_dataset_folder_round_trips_with_its_card(tmp_path: Path) -> None:
    card = {
        "name": "pairs",
        "seed": 3,
        "splits": {"train": {"pairs": 1, "prompts": 2}, "heldout": {"pairs": 0, "prompts": 1}},
        "pairs_per_rule": {"one_word": {"train": 1}},
        "rules": {"one_word": "One word."},
        "heldout_templates": ["one_word/colour"],
        "generation": {"samples": 4},
    }
    prompt_rows = [{"prompt": "p", "rule": "one_word", "check": {"rule": "one_word"}}]
    save_dataset(tmp_path / "data", [CONVERSATIONAL], [], prompt_rows, card)
    train, heldout, prompts, loaded_card = load_dataset(tmp_path / "data")
    assert train == [CONVERSATIONAL] and heldout == [] and prompts == prompt_rows
    assert loaded_card == card
    markdown = (tmp_path / "data" / "README.md").read_text()
    assert "| one_word | 1 | 0 |" in markdown and "Seed: 3" in markdown
    with pytest.raises(PreferenceDataError, match="not a built data set"):
        load_dataset(tmp_path)
