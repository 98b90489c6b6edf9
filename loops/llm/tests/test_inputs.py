"""What the loop reads before anything starts, and how a step fails: the reused adapter from
llm-alignment's results file (and the rules its data card says it trained on, refused when the
held-out set evaluates one), missing PEXes and results as one error line (exit 2), the adapter's
copy of the prompt, the registered version, a failing step's message."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from llm_loop.adapter import reused_adapter
from llm_loop.cli import app
from llm_loop.errors import LlmLoopError
from llm_loop.evaluation import adapter_copy, check_never_trained, registered_version
from llm_loop.steps import Steps
from typer.testing import CliRunner

runner = CliRunner()


def fake_pexes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALIGNMENT", "SERVING", "PROMPT_REGISTRY"):
        pex = tmp_path / f"{name.lower()}.pex"
        pex.write_text("")
        monkeypatch.setenv(f"LLM_LOOP_{name}_PEX", str(pex))


# What llm-alignment's data card says about the rules (its keys; other keys left out).
CARD = {
    "training_rules": ["one_word", "avoid_word"],
    "heldout_rules": ["starts_with", "quoted"],
    "pairs_per_rule": {"one_word": {"train": 3, "heldout": 1}, "length": {"train": 2}},
}


def test_the_reused_adapter_is_the_version_llm_alignment_registered(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps({
        "tracking_uri": "sqlite:////somewhere/mlflow.db",
        "dpo": {"registered_model": "llm-alignment-dpo", "model_version": "4", "history": []},
        "data_card": CARD,
    }))  # fmt: skip
    adapter = reused_adapter(results)
    assert adapter.uri == "models:/llm-alignment-dpo/4"
    assert adapter.tracking_uri == "sqlite:////somewhere/mlflow.db" and adapter.origin == "reused"
    # The training rules and every rule with a training pair.
    assert adapter.trained_rules == ("avoid_word", "length", "one_word")
    results.write_text(json.dumps({"tracking_uri": "x", "dpo": {"adapter_dir": "a"}}))
    with pytest.raises(LlmLoopError, match="does not name a registered adapter"):
        reused_adapter(results)


def test_a_reused_adapter_without_a_data_card_is_refused(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps({
        "tracking_uri": "x", "dpo": {"registered_model": "m", "model_version": "1"},
    }))  # fmt: skip
    with pytest.raises(LlmLoopError, match="training rules are unknown"):
        reused_adapter(results)


def test_an_adapter_trained_on_an_evaluated_rule_is_refused(tmp_path: Path) -> None:
    golden = tmp_path / "golden.jsonl"
    rows = [{"id": "a", "vars": {}, "check": {"rule": "quoted"}},
            {"id": "b", "vars": {}, "check": {"rule": "starts_with"}}]  # fmt: skip
    golden.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    check_never_trained(golden, ("one_word", "avoid_word"))  # disjoint: accepted
    check_never_trained(golden, None)  # no card (a --data file): recorded as unverified
    with pytest.raises(LlmLoopError, match="the adapter trained on quoted, which golden.jsonl"):
        check_never_trained(golden, ("one_word", "quoted"))


def test_a_missing_results_file_says_what_to_run_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_pexes(tmp_path, monkeypatch)
    missing = tmp_path / "none" / "results.json"
    monkeypatch.setenv("LLM_LOOP_ALIGNMENT_RESULTS", str(missing))
    result = runner.invoke(app, ["demo", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    line = " ".join(result.output.split())
    assert f"error: no adapter to reuse: {missing} not found" in line
    assert "run llm-alignment's demo first" in line and "--train" in line
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # nothing started


def test_a_missing_pex_names_the_build_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_pexes(tmp_path, monkeypatch)
    monkeypatch.setenv("LLM_LOOP_SERVING_PEX", str(tmp_path / "nope.pex"))
    result = runner.invoke(app, ["benchmark", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    line = " ".join(result.output.split())
    assert "nope.pex not found: build it with `./pants package" in line
    assert "LLM_LOOP_SERVING_PEX" in line


def test_the_adapter_copy_names_the_adapter_and_keeps_the_rest(tmp_path: Path) -> None:
    spec = {"name": "p", "variables": ["instruction"],
            "model": {"max_new_tokens": 96, "temperature": 0.0},
            "eval": {"golden": "golden.jsonl", "scorers": [{"type": "verifier"}],
                     "min_pass_rate": 0.1}}  # fmt: skip
    (tmp_path / "prompt.yaml").write_text(yaml.safe_dump(spec))
    assert adapter_copy(tmp_path, "dpo", None) == tmp_path / "golden.jsonl"
    copied = yaml.safe_load((tmp_path / "prompt.yaml").read_text())
    assert copied == {**spec, "model": {"max_new_tokens": 96, "temperature": 0.0, "name": "dpo"}}
    adapter_copy(tmp_path, "dpo", 1.0)
    assert yaml.safe_load((tmp_path / "prompt.yaml").read_text())["eval"]["min_pass_rate"] == 1.0


def test_the_registered_version_is_read_from_the_register_output(tmp_path: Path) -> None:
    log = tmp_path / "register.log"
    log.write_text("alignment-heldout-rules: v2 (new version); staging -> v2\n")
    assert registered_version(log) == 2
    log.write_text("nothing here\n")
    with pytest.raises(LlmLoopError, match="reported no version"):
        registered_version(log)


def test_a_failing_step_names_itself_its_status_and_its_error_line(tmp_path: Path) -> None:
    steps = Steps(tmp_path)
    code = "import sys; print('working'); print('error: the registry refused'); sys.exit(2)"
    with pytest.raises(LlmLoopError) as raised:
        steps.run("prompt-registry gate", [sys.executable, "-c", code], timeout_s=60)
    message = str(raised.value)
    assert message.startswith("prompt-registry gate failed (exit 2): error: the registry refused")
    assert message.endswith(f"see {tmp_path / '01-prompt-registry-gate.log'}")
    status, log = steps.run("refused gate", [sys.executable, "-c", "raise SystemExit(3)"],
                            timeout_s=60, ok=(0, 3))  # fmt: skip
    assert status == 3 and log.name == "02-refused-gate.log"
