"""The gate judges with production's stored eval config: a trimmed golden set, a loosened scorer,
a small drop repeated (the ratchet) and changed scorer code each fail as described. The
candidates answer through the rule-based chat server (pr_testing.ChatServer), so pass rates are
known; the registry is the local MLflow store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pr_testing import ChatServer
from prompt_registry import evalconfig
from prompt_registry.cli import app
from prompt_registry.gate import markdown_report
from prompt_registry.harness import Harness
from prompt_registry.registry import ACCEPTED_SCORER_CODE_TAG, PRODUCTION, PROMOTED_TAG
from typer.testing import CliRunner

PROMPT = "review-sentiment"
# Every positive review of the golden set holds one of these words (no negative one does).
CUES = "love great best excellent delicious amazing fantastic happy superb adore good"


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    with ChatServer().running() as server:
        yield server


@pytest.fixture
def served(settings, chat: ChatServer):
    return settings.model_copy(update={"provider": "openai", "openai_base_url": chat.url})


def write_template(settings, template: str) -> None:
    (settings.prompts_dir / PROMPT / "template.txt").write_text(template + "\n")


def edit_spec(settings, old: str, new: str) -> None:
    spec = settings.prompts_dir / PROMPT / "prompt.yaml"
    assert old in spec.read_text()
    spec.write_text(spec.read_text().replace(old, new))


def drop_examples(settings, expected: str) -> list[str]:
    """Remove the golden examples with this expected label; returns their ids."""
    path = settings.prompts_dir / PROMPT / "golden.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["expected"] != expected))
    return [r["id"] for r in rows if r["expected"] == expected]


def promote_file(harness: Harness, **options: bool):
    version, _ = harness.registry.register(harness.folder(PROMPT))
    return harness.promote(PROMPT, version, **options)[0], version


def test_a_trimmed_golden_set_is_judged_on_productions_set(served) -> None:
    harness = Harness(served)
    first, _ = promote_file(harness)
    assert first.passed and first.candidate.pass_rate == pytest.approx(21 / 32)
    # "great" in the prompt: every answer is positive, so every negative review fails ...
    write_template(served, "Review: {{review}}\nIs this great?")
    removed = drop_examples(served, "negative")  # ... and the change drops those examples.
    [result] = harness.gate([PROMPT])
    assert not result.passed
    assert result.candidate.n == 32 and result.candidate.pass_rate == 0.5
    assert result.new_config is not None and result.new_config.candidate.pass_rate == 1.0
    assert result.new_config.changes.removed == removed and len(removed) == 16
    text = markdown_report([result], served.gate_max_drop)
    assert "### review-sentiment: the eval config changes" in text
    assert f"- removed examples: {', '.join(removed[:12])} … (16 in all)" in text


def test_removing_examples_never_raises_a_pass_rate_by_itself(served) -> None:
    harness = Harness(served)
    promote_file(harness)
    # Same prompt; the examples production fails are dropped from the golden set.
    production = harness.registry.content(PROMPT, alias=PRODUCTION)
    path = served.prompts_dir / PROMPT / "golden.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    report = harness.evaluate(production, production.config)
    failing = [e.id for e in report.examples if not e.passed]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["id"] not in failing))
    [result] = harness.gate([PROMPT])
    assert result.difference is not None and result.difference.estimate == 0
    assert result.baseline is not None
    assert result.candidate.pass_rate == result.baseline.pass_rate == pytest.approx(21 / 32)
    assert result.new_config is not None
    # On the trimmed set both sides rise alike: still no difference.
    assert result.new_config.candidate.pass_rate == result.new_config.production.pass_rate == 1.0


def test_a_loosened_scorer_is_judged_with_productions_scorer(served) -> None:
    harness = Harness(served)
    promote_file(harness)
    # Answers that name both labels; `contains` passes them, the strict label scorer does not.
    write_template(served, "Review: {{review}}\nName both labels.")
    edit_spec(
        served, "    - type: label\n      labels: [positive, negative]", "    - type: contains"
    )
    [result] = harness.gate([PROMPT])
    assert not result.passed and result.candidate.pass_rate == 0.0
    assert result.new_config is not None and result.new_config.candidate.pass_rate == 1.0
    before, after = result.new_config.changes.scorers or ([], [])
    assert before[0]["type"] == "label" and after == [{"type": "contains"}]
    failed = [c.name for c in result.checks if not c.passed]
    assert failed == ["vs production v1", "floor"]


def cues(settings, dropped: str = "", pin: int | None = None) -> None:
    """The template names the positive words (each dropped one costs the examples it cues);
    ``pin`` sets the eval config's baseline version."""
    words = " ".join(w for w in CUES.split() if w not in dropped.split())
    write_template(settings, f"Review: {{{{review}}}}\nPositive words: {words}")
    spec = settings.prompts_dir / PROMPT / "prompt.yaml"
    lines = [line for line in spec.read_text().splitlines() if "baseline_version" not in line]
    lines += [f"  baseline_version: {pin}"] if pin else []
    spec.write_text("\n".join(lines) + "\n")


def failed_checks(gate) -> list[str]:
    return [c.name for c in gate.checks if not c.passed]


def test_no_ratchet_the_first_production_version_holds_and_a_pin_cannot_lower_it(
    served,
) -> None:
    harness = Harness(served)  # allowed drop 0.05: one example of 32 (0.031), not two
    cues(served)
    gate, v1 = promote_file(harness)
    assert gate.passed and gate.candidate.pass_rate == 1.0
    cues(served, "best")
    gate, v2 = promote_file(harness)
    assert gate.passed and gate.candidate.pass_rate == pytest.approx(31 / 32)
    # One more example lost: within the drop of v2, not of v1. A pin in the candidate's own
    # file does not help: the baseline comes from production's stored config.
    cues(served, "best amazing")
    gate, v3 = promote_file(harness)
    assert failed_checks(gate) == [f"vs baseline v{v1} (no ratchet)"]
    cues(served, "best amazing", pin=v2)
    gate, _ = promote_file(harness)
    assert f"vs baseline v{v1} (no ratchet)" in failed_checks(gate)
    assert harness.registry.alias_version(PROMPT, PRODUCTION) == v2
    # Pinning a worse version (v2) to lower the bar for the next change is refused, ...
    cues(served, "best", pin=v2)
    gate, _ = promote_file(harness)
    assert failed_checks(gate) == [f"baseline moved from v{v1} to v{v2} (no ratchet)"]
    assert gate.new_config is not None and gate.new_config.changes.baseline_version == (None, v2)
    # ... and so is pinning a version that was never production.
    cues(served, "best", pin=v3)
    gate, _ = promote_file(harness)
    assert failed_checks(gate) == ["baseline pin"]
    assert harness.registry.alias_version(PROMPT, PRODUCTION) == v2


def test_a_pin_raises_the_baseline_and_later_gates_hold_to_it(served) -> None:
    harness = Harness(served)
    cues(served, "best amazing")
    gate, v1 = promote_file(harness)
    assert gate.passed and gate.candidate.pass_rate == pytest.approx(30 / 32)
    cues(served)
    gate, v2 = promote_file(harness)
    assert gate.passed and gate.candidate.pass_rate == 1.0
    # The same prompt pinning v2 (better than the first production version): accepted.
    cues(served, pin=v2)
    gate, v3 = promote_file(harness)
    assert gate.passed, gate.reason
    assert f"baseline moved from v{v1} to v{v2} (no ratchet)" in [c.name for c in gate.checks]
    # Dropping the pin would move the baseline back down to v1: refused; keeping it passes.
    cues(served, "best")
    gate, _ = promote_file(harness)
    assert failed_checks(gate) == [f"baseline moved from v{v2} to v{v1} (no ratchet)"]
    cues(served, "best", pin=v2)
    gate, v5 = promote_file(harness)
    assert gate.passed, gate.reason
    # Two examples below v2 (the pinned baseline in production's config): refused, though
    # within the drop of production and level with the first production version.
    cues(served, "best amazing", pin=v2)
    gate, _ = promote_file(harness)
    assert failed_checks(gate) == [f"vs baseline v{v2} (no ratchet)"]
    promoted = [int(v.version) for v in harness.registry.versions(PROMPT) if PROMOTED_TAG in v.tags]
    assert promoted == [v1, v2, v3, v5]


def test_an_older_version_promoted_later_does_not_become_the_baseline(served) -> None:
    harness = Harness(served)
    cues(served, "best")
    v1, _ = harness.registry.register(harness.folder(PROMPT))  # 31/32, left on staging
    cues(served)
    gate, v2 = promote_file(harness)  # 32/32: the first production version
    gate, _ = harness.promote(PROMPT, v1)  # within the drop of v2: promoted
    assert gate.passed and harness.registry.first_production(PROMPT) == v2
    # 30/32: within the drop of production (v1), not of the first production version (v2).
    cues(served, "best amazing")
    gate, _ = promote_file(harness)
    assert failed_checks(gate) == [f"vs baseline v{v2} (no ratchet)"]


def test_changed_scorer_code_is_refused_unless_accepted_and_recorded(
    served, chat: ChatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = Harness(served)
    promote_file(harness)
    original = evalconfig.scorer_code_digest()
    # The running scorer code changes (one scorer loosened, say).
    changed = tmp_path / "scorers.py"
    changed.write_text(evalconfig.SCORER_CODE.read_text() + "\n# loosened\n")
    monkeypatch.setattr(evalconfig, "SCORER_CODE", changed)
    running = evalconfig.scorer_code_digest()
    write_template(served, "Review: {{review}}\nWhat does the reviewer think of it?")
    v2, _ = harness.registry.register(harness.folder(PROMPT))
    args = ["promote", PROMPT, "--version", str(v2), "--provider", "openai",
            "--base-url", chat.url, "--run-dir", str(served.run_dir)]  # fmt: skip
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 3, refused.output
    assert "--accept-scorer-code-change" in " ".join(refused.output.split())
    accepted = CliRunner().invoke(app, [*args, "--accept-scorer-code-change"])
    assert accepted.exit_code == 0, accepted.output
    assert harness.registry.alias_version(PROMPT, PRODUCTION) == v2
    tags = harness.registry.versions(PROMPT)[v2 - 1].tags
    assert tags[ACCEPTED_SCORER_CODE_TAG] == f"{original[:12]} -> {running[:12]}"
