"""Prompts as files: loading, the variables check, rendering and the content digest."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from prompt_registry.errors import PromptFileError
from prompt_registry.evalconfig import EvalConfig, ScorerSpec, config_changes
from prompt_registry.golden import Example, read_jsonl
from prompt_registry.prompts import (
    ModelParams,
    load_all,
    load_prompt,
    load_prompt_folder,
    template_variables,
)


def test_the_shipped_prompts_load_with_their_golden_sets(prompts_dir: Path) -> None:
    folders = load_all(prompts_dir)
    assert {f.name for f in folders} == {
        "alignment-heldout-rules",
        "alignment-rules",
        "capital-city",
        "extract-contact",
        "freshqa-answer",
        "review-sentiment",
    }
    for folder in folders:
        if folder.spec.eval.golden.endswith(".jsonl"):
            examples = read_jsonl(folder.path / folder.spec.eval.golden)
            assert len(examples) >= 20
            assert set(examples[0].vars) == set(folder.spec.variables)


def test_template_variables_in_order_of_use() -> None:
    assert template_variables("{{b}} and {{ a }} then {{b}}") == ["b", "a"]


def test_an_undeclared_variable_is_refused(prompts_dir: Path) -> None:
    template = prompts_dir / "capital-city" / "template.txt"
    template.write_text("Capital of {{country}} in {{language}}?\n")
    with pytest.raises(PromptFileError, match="undeclared language"):
        load_prompt(prompts_dir, "capital-city")


def test_a_declared_variable_the_template_never_uses_is_refused(prompts_dir: Path) -> None:
    template = prompts_dir / "capital-city" / "template.txt"
    template.write_text("Name a capital city.\n")
    with pytest.raises(PromptFileError, match="declared country but the template never uses"):
        load_prompt(prompts_dir, "capital-city")


def test_bad_spec_files_get_one_clear_error(prompts_dir: Path) -> None:
    spec = prompts_dir / "capital-city" / "prompt.yaml"
    spec.write_text(spec.read_text().replace("max_new_tokens: 16", "max_new_tokens: 0"))
    with pytest.raises(PromptFileError, match="model.max_new_tokens"):
        load_prompt_folder(prompts_dir / "capital-city")
    spec.write_text("name: [unclosed\n")
    with pytest.raises(PromptFileError, match="not valid YAML"):
        load_prompt_folder(prompts_dir / "capital-city")
    with pytest.raises(PromptFileError, match="no prompt 'nope'"):
        load_prompt(prompts_dir, "nope")


def test_the_name_must_match_the_folder(prompts_dir: Path) -> None:
    moved = prompts_dir / "capital"
    (prompts_dir / "capital-city").rename(moved)
    with pytest.raises(PromptFileError, match="must equal the folder name"):
        load_prompt_folder(moved)


def test_render_fills_every_variable_and_refuses_a_missing_one(prompts_dir: Path) -> None:
    content = load_prompt(prompts_dir, "capital-city").content()
    assert content.render({"country": "Peru"}) == "What is the capital of Peru?"
    with pytest.raises(PromptFileError, match="no value for country"):
        content.render({})


def test_the_digest_follows_template_parameters_and_eval_config_not_metadata(
    prompts_dir: Path,
) -> None:
    content = load_prompt(prompts_dir, "capital-city").content()
    same = load_prompt(prompts_dir, "capital-city").content()
    assert content.digest == same.digest
    assert replace(content, metadata={"owner": "x"}).digest == content.digest
    assert replace(content, template=content.template + " ").digest != content.digest
    assert replace(content, params=ModelParams(max_new_tokens=17)).digest != content.digest
    config = content.config
    assert config is not None and len(config.examples) == 30
    trimmed = replace(config, examples=config.examples[1:])
    assert replace(content, eval_config=trimmed).digest != content.digest
    looser = replace(config, scorers=(ScorerSpec(type="exact_match"),))
    assert replace(content, eval_config=looser).digest != content.digest
    other_code = replace(config, scorer_code="0" * 64)
    assert replace(content, eval_config=other_code).digest != content.digest
    assert other_code.digest == config.digest  # the scorer code has its own place


def test_the_eval_config_round_trips_and_its_changes_are_listed(prompts_dir: Path) -> None:
    config = load_prompt(prompts_dir, "review-sentiment").content().config
    assert config is not None and EvalConfig.from_json(config.to_json()) == config
    examples = list(config.examples)
    edited = replace(examples[2], expected="negative")
    added = Example("review-99", {"review": "ok"}, "positive")
    new = replace(config, examples=(examples[0], edited, *examples[3:], added), min_pass_rate=0.3)
    changes = config_changes(config, new)
    assert changes is not None
    assert changes.added == ["review-99"]
    assert changes.removed == ["review-02"]
    assert changes.changed == ["review-03"]
    assert changes.min_pass_rate == (0.5, 0.3) and changes.scorers is None
    assert config_changes(config, config) is None
