"""Prompt versions that name their model: the shipped verifiable golden sets of the alignment rules
(the training families and the held-out ones, scored with the shared rule code), the model in
the version's digest, the registry and the cache, and base against adapter through eval, gate
and promotion on a real OpenAI-compatible HTTP server on 127.0.0.1 that serves an adapter by
name beside the base."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from pr_testing import ChatServer
from prompt_registry.cli import app
from prompt_registry.errors import PromptFileError, ProviderError
from prompt_registry.golden import Example, read_jsonl
from prompt_registry.harness import Harness
from prompt_registry.prompts import load_prompt
from prompt_registry.providers import LocalProvider
from prompt_registry.registry import PRODUCTION, registry_for
from prompt_registry.scorers import Verifier
from roadmap_lab import verifiable
from typer.testing import CliRunner

PROMPT = "alignment-rules"
HELDOUT_PROMPT = "alignment-heldout-rules"
# What the base writes whatever it is asked: short prose that follows no format.
BASE_PROSE = "Here is my answer."
# The rule families `alignment-rules` was written for: llm-alignment's training rules.
GOLDEN_RULES = (
    "one_word",
    "include_words",
    "avoid_word",
    "json_keys",
    "length",
    "arithmetic",
    "bullet_list",
)
# The families llm-alignment holds out from training (its HELDOUT_RULES, issue 23): the only ones
# `alignment-heldout-rules` may hold.
HELDOUT_RULES = ("starts_with", "letter_case", "quoted", "no_commas")


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def name_model(prompts_dir: Path, model: str, prompt: str = PROMPT) -> None:
    """The prompt file runs on ``model`` (nothing else changes)."""
    spec_file = prompts_dir / prompt / "prompt.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["model"]["name"] = model
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))


def golden(prompts_dir: Path, prompt: str = PROMPT) -> list[Example]:
    return read_jsonl(prompts_dir / prompt / "golden.jsonl")


def compliant_answers(prompts_dir: Path, prompt: str = PROMPT) -> Callable[[str], str]:
    """An adapter that follows every instruction of the set: the hand-written reference."""
    references = {e.vars["instruction"]: e.expected for e in golden(prompts_dir, prompt)}
    return lambda prompt: references[prompt.strip()]


def test_the_golden_set_covers_every_rule_and_its_references_comply(prompts_dir: Path) -> None:
    examples = golden(prompts_dir)
    rules = [e.extra["check"]["rule"] for e in examples]
    assert len(examples) >= 24
    assert set(GOLDEN_RULES) <= set(verifiable.RULES)
    assert {rule: rules.count(rule) >= 3 for rule in set(rules) | set(GOLDEN_RULES)} == (
        dict.fromkeys(GOLDEN_RULES, True)
    )
    results = Verifier().score([e.expected for e in examples], examples)
    assert all(r.passed and r.value == 1.0 for r in results)
    # An empty answer follows no rule; the base's prose follows only some.
    assert not any(r.passed for r in Verifier().score([""] * len(examples), examples))
    prose = Verifier().score([BASE_PROSE] * len(examples), examples)
    assert 0 < sum(r.passed for r in prose) < len(examples) / 2


def test_the_verifier_scorer_grades_and_refuses_examples_without_a_check() -> None:
    one_word = Example("a", {}, "Yellow", extra={"check": {"rule": "one_word"}})
    [strict] = Verifier().score(["Light yellow"], [one_word])
    [lenient] = Verifier(min_score=0.5).score(["Light yellow"], [one_word])
    assert (strict.passed, strict.value, lenient.passed) == (False, 0.5, True)
    with pytest.raises(PromptFileError, match="example b has no check"):
        Verifier().score(["x"], [Example("b", {}, "x")])
    with pytest.raises(PromptFileError, match="min_score"):
        Verifier(min_score=0)
    with pytest.raises(verifiable.VerifierError, match="unknown rule 'rhyme'"):
        Verifier().score(["x"], [Example("c", {}, "x", extra={"check": {"rule": "rhyme"}})])


def test_the_model_is_part_of_the_version(settings) -> None:
    unnamed = load_prompt(settings.prompts_dir, PROMPT).content()
    assert "name" not in unnamed.params.recorded()  # versions naming no model keep their digest
    name_model(settings.prompts_dir, "dpo")
    named = load_prompt(settings.prompts_dir, PROMPT).content()
    assert named.params.name == "dpo" and named.digest != unnamed.digest
    registry = registry_for(settings)
    version, created = registry.register(load_prompt(settings.prompts_dir, PROMPT))
    assert created and registry.content(PROMPT, version=version).params.name == "dpo"
    with pytest.raises(ProviderError, match="runs on model 'dpo'.*--provider openai"):
        Harness(settings, provider=LocalProvider(settings.model_dir), track=False).evaluate(
            named, named.config
        )


def openai_flags(settings, server: ChatServer) -> list[object]:
    return ["--run-dir", settings.run_dir, "--provider", "openai", "--base-url", server.url]


def production_model(settings) -> tuple[int | None, str | None]:
    registry = registry_for(settings)
    version = registry.alias_version(PROMPT, PRODUCTION)
    return version, registry.content(PROMPT, version=version).params.name


def register_base_then_adapter(settings, server: ChatServer) -> None:
    """v1 on the base (production, over the floor), v2 the same prompt on ``dpo``."""
    files = ["--prompts-dir", settings.prompts_dir]
    assert invoke("register", PROMPT, *files, "--run-dir", settings.run_dir).exit_code == 0
    promoted = invoke("promote", PROMPT, "--version", 1, *openai_flags(settings, server))
    assert promoted.exit_code == 0, promoted.output
    name_model(settings.prompts_dir, "dpo")
    assert invoke("register", PROMPT, *files, "--run-dir", settings.run_dir).exit_code == 0


def test_eval_gate_and_promotion_move_production_to_an_adapter_that_wins(
    settings, tmp_path: Path
) -> None:
    adapter = compliant_answers(settings.prompts_dir)
    server = ChatServer(adapters={"dpo": adapter})
    with server.running():
        register_base_then_adapter(settings, server)
        flags = openai_flags(settings, server)
        evals = {}
        for version in (1, 2):
            out = tmp_path / f"eval-v{version}.json"
            result = invoke("eval", PROMPT, "--version", version, *flags, "--output-json", out)
            assert result.exit_code == 0, result.output
            evals[version] = json.loads(out.read_text())["summary"]
        # Each version's answers come from its own model, cached apart (v1's were cached by
        # its promotion, v2's were generated here).
        assert evals[1]["provider"].endswith(":smollm2") and evals[2]["provider"].endswith(":dpo")
        examples = len(golden(settings.prompts_dir))
        assert evals[1]["model_calls"] == 0 and evals[2]["model_calls"] == examples
        assert evals[2]["pass_rate"] == 1.0 and 0 < evals[1]["pass_rate"] < 0.5

        gate_json = tmp_path / "gate.json"
        gate = invoke("gate", PROMPT, "--prompts-dir", settings.prompts_dir, *flags,
                      "--output-json", gate_json)  # fmt: skip
        assert gate.exit_code == 0, gate.output
        [checked] = json.loads(gate_json.read_text())
        assert checked["passed"] and checked["difference"]["low"] > 0

        promoted = invoke("promote", PROMPT, "--version", 2, *flags)
        assert promoted.exit_code == 0, promoted.output
        assert f"{PRODUCTION} -> v2" in promoted.output
    assert production_model(settings) == (2, "dpo")
    assert {r["model"] for r in server.chat_requests()} == {"smollm2", "dpo"}


def test_a_refused_gate_leaves_production_on_the_base_model(settings) -> None:
    server = ChatServer(adapters={"dpo": lambda prompt: ""})  # an adapter that says nothing
    with server.running():
        register_base_then_adapter(settings, server)
        refused = invoke("promote", PROMPT, "--version", 2, *openai_flags(settings, server))
    assert refused.exit_code == 3, refused.output
    assert "exceeds the allowed" in refused.output
    assert production_model(settings) == (1, None)


def test_the_heldout_set_holds_exactly_the_heldout_families(prompts_dir: Path) -> None:
    examples = golden(prompts_dir, HELDOUT_PROMPT)
    rules = [e.extra["check"]["rule"] for e in examples]
    assert {rule: rules.count(rule) for rule in rules} == dict.fromkeys(HELDOUT_RULES, 8)
    trained = {e.extra["check"]["rule"] for e in golden(prompts_dir)}
    assert trained == set(GOLDEN_RULES) and not trained & set(rules)
    cases = [
        e.extra["check"]["case"] for e in examples if e.extra["check"]["rule"] == "letter_case"
    ]
    assert sorted(cases) == ["lower"] * 4 + ["upper"] * 4
    # Every instruction asks for more than a word, and says so in its check.
    assert all(e.extra["check"]["min_words"] >= 3 for e in examples)
    assert len({e.vars["instruction"] for e in examples}) == len({e.id for e in examples}) == 32


def one_word(example: Example) -> str:
    """The reference's first word, in the reference's format (its case, its quotes)."""
    check, first = example.extra["check"], verifiable.words(example.expected)[0]
    return f'"{first}"' if check["rule"] == "quoted" else first


def format_broken(example: Example) -> str:
    """The reference with its rule broken once: another first word, one letter in the wrong
    case, the closing quote dropped, or a comma added."""
    text, rule = example.expected, example.extra["check"]["rule"]
    if rule == "starts_with":
        return "Well. " + text
    if rule == "letter_case":
        return text[0].swapcase() + text[1:]
    if rule == "quoted":
        return text[:-1]
    return text.replace(" ", ", ", 1)


def test_heldout_references_comply_and_near_misses_fail(prompts_dir: Path) -> None:
    examples = golden(prompts_dir, HELDOUT_PROMPT)
    assert all(r.passed for r in Verifier().score([e.expected for e in examples], examples))
    for broken in (one_word, format_broken):
        answers = [broken(e) for e in examples]
        results = Verifier().score(answers, examples)
        passed = [(e.id, a) for e, a, r in zip(examples, answers, results, strict=True) if r.passed]
        assert passed == [], broken.__name__


def test_the_heldout_set_registers_and_separates_base_from_adapter(
    settings, tmp_path: Path
) -> None:
    prompts = ["--prompts-dir", settings.prompts_dir, "--run-dir", settings.run_dir]
    registered = invoke("register", HELDOUT_PROMPT, *prompts)
    assert registered.exit_code == 0, registered.output
    stored = registry_for(settings).content(HELDOUT_PROMPT, version=1)
    assert (stored.params.max_new_tokens, stored.params.temperature) == (96, 0.0)
    assert stored.eval_config is not None and len(stored.eval_config.examples) == 32
    server = ChatServer(adapters={"dpo": compliant_answers(settings.prompts_dir, HELDOUT_PROMPT)})
    name_model(settings.prompts_dir, "dpo", HELDOUT_PROMPT)
    with server.running():
        summaries = {}
        for model, source in (("base", ["--version", 1]), ("dpo", [])):
            out = tmp_path / f"{model}.json"
            result = invoke("eval", HELDOUT_PROMPT, *source, *prompts[:2],
                            *openai_flags(settings, server), "--output-json", out)  # fmt: skip
            assert result.exit_code == 0, result.output
            summaries[model] = json.loads(out.read_text())["summary"]
    # The test server's base answers in a word or two: the min_words guard fails every one.
    assert (summaries["base"]["pass_rate"], summaries["dpo"]["pass_rate"]) == (0.0, 1.0)
    assert {(r["model"], r["max_tokens"], r["temperature"]) for r in server.chat_requests()} == {
        ("smollm2", 96, 0.0),
        ("dpo", 96, 0.0),
    }
