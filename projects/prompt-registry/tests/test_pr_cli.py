"""The CLI: one-line errors with exit 2, a refused template registers nothing, the commands on a
local store, and the gate of changed prompts against a base commit (a temp git repository)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pr_testing import ChatServer
from prompt_registry import evalconfig
from prompt_registry.changes import changed_prompts, prompt_at
from prompt_registry.cli import app
from prompt_registry.registry import Registry
from typer.testing import CliRunner

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def common(settings) -> list[str]:
    return ["--prompts-dir", str(settings.prompts_dir), "--run-dir", str(settings.run_dir)]


def test_errors_are_one_line_with_exit_2(settings) -> None:
    result = invoke("show", "nope", *common(settings))
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: no prompt 'nope'")
    assert "Traceback" not in result.output


def test_a_mismatched_template_is_refused_before_anything_is_registered(settings) -> None:
    (settings.prompts_dir / "review-sentiment" / "template.txt").write_text("{{text}}\n")
    result = invoke("register", *common(settings))
    assert result.exit_code == 2
    assert "review-sentiment: template uses undeclared text" in result.output
    registry = Registry(settings.resolved_tracking_uri())
    assert registry.versions("capital-city") == []  # sorted before review-sentiment: not registered


def test_register_list_show_diff_and_staging(settings) -> None:
    assert invoke("register", *common(settings)).exit_code == 0
    again = invoke("register", "capital-city", *common(settings))
    assert "capital-city: v1 (unchanged)" in again.output
    listed = invoke("list", *common(settings))
    assert listed.exit_code == 0 and "staging=v1" in listed.output.replace("\n", "")
    shown = invoke("show", "capital-city", "--alias", "staging", *common(settings))
    assert "registry v1" in shown.output and "What is the capital of {{country}}?" in shown.output
    assert "30 examples (golden.jsonl), scorers contains, floor 0.5" in " ".join(
        shown.output.split()
    )
    stored = invoke("show", "capital-city", "--version", "1", "--eval-config", *common(settings))
    config = json.loads(stored.output)
    assert config["examples"][0] == {"id": "capital-01", "vars": {"country": "France"},
                                     "expected": "Paris"}  # fmt: skip
    (settings.prompts_dir / "capital-city" / "template.txt").write_text("Capital of {{country}}?\n")
    diff = invoke("diff", "capital-city", "--version", "1", *common(settings))
    assert "-What is the capital of {{country}}?" in diff.output
    assert "+Capital of {{country}}?" in diff.output


def test_eval_command_writes_its_results(settings, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result = invoke(
        "eval", "capital-city", "--limit", "5", "--model-dir", settings.model_dir,
        "--output-json", out, *common(settings),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written["summary"]["examples"] == 5 and len(written["examples"]) == 5
    assert written["summary"]["run_id"]
    # The run's artifacts live under the local store's run folder, not in the current directory.
    run = Registry(settings.resolved_tracking_uri()).client.get_run(written["summary"]["run_id"])
    assert run.info.artifact_uri.startswith(settings.local_artifact_root().as_uri())


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(settings) -> Path:
    """The prompts folder as a git repository with one commit."""
    git(settings.prompts_dir, "init", "-q")
    git(settings.prompts_dir, "add", ".")
    git(settings.prompts_dir, "commit", "-q", "-m", "base")
    return settings.prompts_dir


def test_changed_prompts_and_the_files_at_the_base_commit(repo: Path, tmp_path: Path) -> None:
    assert changed_prompts(repo, "HEAD") == []
    (repo / "capital-city" / "template.txt").write_text("Capital of {{country}}?\n")
    (repo / "extract-contact" / "golden.jsonl").write_text(
        (repo / "extract-contact" / "golden.jsonl").read_text().splitlines()[0] + "\n"
    )
    assert changed_prompts(repo, "HEAD") == ["capital-city", "extract-contact"]
    base = prompt_at(repo, "capital-city", "HEAD", tmp_path / "scratch")
    assert base is not None and base.template == "What is the capital of {{country}}?"
    trimmed_at_head = prompt_at(repo, "extract-contact", "HEAD", tmp_path / "scratch")
    assert trimmed_at_head is not None
    assert len(trimmed_at_head.content().config.examples) == 20
    assert prompt_at(repo, "no-such-prompt", "HEAD", tmp_path / "scratch") is None


def test_gate_against_the_base_commit_writes_the_pr_table(
    settings, repo: Path, tmp_path: Path
) -> None:
    (repo / "capital-city" / "template.txt").write_text("Capital of {{country}}?\n")
    markdown, out = tmp_path / "gate.md", tmp_path / "gate.json"
    result = invoke(
        "gate", "--changed-since", "HEAD", "--max-drop", "1.0", "--model-dir", settings.model_dir,
        "--markdown", markdown, "--output-json", out, *common(settings),
    )  # fmt: skip
    # Within the allowed drop, but the random model is below the floor: exit 3, tables written.
    assert result.exit_code == 3, result.output
    gates = json.loads(out.read_text())
    assert [g["prompt"] for g in gates] == ["capital-city"]
    assert gates[0]["baseline"]["label"] == "HEAD" and gates[0]["candidate"]["label"] == "file"
    assert [c["passed"] for c in gates[0]["checks"]] == [True, False]
    assert "| capital-city |" in markdown.read_text()
    # No production version in the local store and the random model below the floor: exit 3.
    failed = invoke("gate", "capital-city", "--model-dir", settings.model_dir, *common(settings))
    assert failed.exit_code == 3, failed.output
    assert "pass rate 0.000 is below the floor 0.50" in " ".join(failed.output.split())
    bad = invoke("gate", "--changed-since", "no-such-ref", *common(settings))
    assert bad.exit_code == 2 and "git diff" in bad.output


def test_the_gate_against_a_base_commit_judges_with_its_golden_set(
    settings, repo: Path, tmp_path: Path
) -> None:
    """A change that drops the examples its worse prompt fails is judged on the base commit's
    golden set: it fails, and the report lists the removed examples."""
    (repo / "review-sentiment" / "template.txt").write_text("Review: {{review}}\nIs this great?\n")
    golden = repo / "review-sentiment" / "golden.jsonl"
    rows = [json.loads(line) for line in golden.read_text().splitlines()]
    golden.write_text("".join(json.dumps(r) + "\n" for r in rows if r["expected"] == "positive"))
    out, markdown = tmp_path / "gate.json", tmp_path / "gate.md"
    with ChatServer().running() as chat:
        result = invoke(
            "gate", "--changed-since", "HEAD", "--provider", "openai", "--base-url", chat.url,
            "--output-json", out, "--markdown", markdown, *common(settings),
        )  # fmt: skip
    assert result.exit_code == 3, result.output
    [gate] = json.loads(out.read_text())
    assert gate["candidate"]["examples"] == 32 and gate["candidate"]["pass_rate"] == 0.5
    assert len(gate["eval_config_change"]["removed"]) == 16
    assert gate["eval_config_change"]["candidate"]["pass_rate"] == 1.0
    assert "- removed examples: review-02, review-04" in markdown.read_text()


def test_a_scorer_code_change_gates_every_prompt_and_needs_acceptance(
    settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package layout (scorers.py beside the prompts folder) in a git repository: scorer
    code changed since the base commit gates every prompt, refused unless accepted."""
    package = tmp_path / "package"
    prompts = package / "prompts"
    for name in ("capital-city", "review-sentiment"):
        shutil.copytree(settings.prompts_dir / name, prompts / name)
        golden = prompts / name / "golden.jsonl"  # four examples are enough here
        golden.write_text("".join(golden.read_text().splitlines(keepends=True)[:4]))
    scorers = package / "scorers.py"
    scorers.write_text(evalconfig.SCORER_CODE.read_text())
    monkeypatch.setattr(evalconfig, "SCORER_CODE", scorers)
    git(package, "init", "-q")
    git(package, "add", ".")
    git(package, "commit", "-q", "-m", "base")
    scorers.write_text(scorers.read_text() + "\n# loosened\n")
    args = ["gate", "--changed-since", "HEAD", "--max-drop", "1.0",
            "--model-dir", settings.model_dir, "--output-json", tmp_path / "gate.json",
            "--prompts-dir", prompts, "--run-dir", settings.run_dir]  # fmt: skip
    refused = invoke(*args)
    assert refused.exit_code == 3, refused.output
    gates = json.loads((tmp_path / "gate.json").read_text())
    assert [g["prompt"] for g in gates] == ["capital-city", "review-sentiment"]
    for gate in gates:
        [code] = [c for c in gate["checks"] if c["name"] == "scorer code"]
        assert not code["passed"] and "--accept-scorer-code-change" in code["detail"]
    invoke(*args, "--accept-scorer-code-change")
    gates = json.loads((tmp_path / "gate.json").read_text())
    assert all(c["passed"] for g in gates for c in g["checks"] if c["name"] == "scorer code")


def test_export_copies_a_prompt_folder_to_edit_and_register(settings, tmp_path: Path) -> None:
    dest = tmp_path / "edited"
    result = invoke("export", "capital-city", dest, "--prompts-dir", settings.prompts_dir)
    assert result.exit_code == 0, result.output
    copied = dest / "capital-city"
    for name in ("prompt.yaml", "template.txt", "golden.jsonl"):
        assert (copied / name).read_bytes() == (
            settings.prompts_dir / "capital-city" / name
        ).read_bytes()
    assert [p.name for p in dest.iterdir()] == ["capital-city"]  # no staging folder left
    again = invoke("export", "capital-city", dest, "--prompts-dir", settings.prompts_dir)
    assert again.exit_code == 2 and "already exists" in again.output
    (copied / "template.txt").write_text("Name the capital of {{country}}.\n")
    registered = invoke("register", "capital-city", "--prompts-dir", dest,
                        "--run-dir", settings.run_dir)  # fmt: skip
    assert "capital-city: v1 (new version)" in registered.output
    unknown = invoke("export", "nope", dest, "--prompts-dir", settings.prompts_dir)
    assert unknown.exit_code == 2 and unknown.output.startswith("error: no prompt 'nope'")
