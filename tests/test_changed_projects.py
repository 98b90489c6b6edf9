from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from repo_checks import repo_root, subprocess_env

SCRIPT = Path("build-support") / "changed_projects.py"
PROJECTS = ["data-pipelines", "llm-serving", "ml-cicd"]


def script_path() -> Path:
    path = repo_root() / SCRIPT
    assert path.is_file(), f"{SCRIPT} is missing (under Pants: declare it as a dependency)"
    return path


@pytest.fixture(scope="module")
def changed_projects() -> ModuleType:
    spec = importlib.util.spec_from_file_location("changed_projects", script_path())
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("line", "path"),
    [
        ("projects/ml-cicd/src/ml_cicd/app.py", "projects/ml-cicd/src/ml_cicd/app.py"),
        ("projects/ml-cicd/src/ml_cicd/app.py:lib", "projects/ml-cicd/src/ml_cicd/app.py"),
        ("projects/ml-cicd:cli", "projects/ml-cicd"),
        ("3rdparty/python#torch", "3rdparty/python"),
        ("//:root", ""),
        ("  pants.toml \n", "pants.toml"),
    ],
)
def test_path_of_addresses_and_files(changed_projects: ModuleType, line: str, path: str) -> None:
    assert changed_projects.path_of(line) == path


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], []),
        (["projects/ml-cicd/src/ml_cicd/app.py:lib"], ["ml-cicd"]),
        (["projects/llm-serving:bench", "projects/ml-cicd/README.md"], ["llm-serving", "ml-cicd"]),
        (["projects/removed-project/BUILD"], []),
        (["tests/test_layout.py", "README.md", ".github/workflows/retrain.yml"], []),
        (["shared/src/roadmap_shared/config.py"], PROJECTS),
        (["pants.toml"], PROJECTS),
        (["pants"], PROJECTS),
        (["3rdparty/python/shared.lock"], PROJECTS),
        (["3rdparty/python#torch"], PROJECTS),
        (["build-support/changed_projects.py"], PROJECTS),
        (["docker/base.Dockerfile"], PROJECTS),
        ([".github/workflows/ci.yml"], PROJECTS),
        ([".github/actions/setup-pants/action.yml"], PROJECTS),
        # Targets of the build root and target generators of repo-level folders (what Pants lists
        # as dependents of almost any file): the files they own count on their own lines.
        (["//:root"], []),
        (["//:benchmark_results", "tests:tests", "tests/test_layout.py:tests"], []),
        (["projects/ml-cicd/README.md:../../benchmark_results", "//:project_layout"], ["ml-cicd"]),
        # What Pants 2.17 listed for a README-only change (a scratch commit in a clone).
        (
            [
                "//projects/data-pipelines/README.md:../../benchmark_results",
                "//projects/data-pipelines/README.md:../../project_layout",
                "tests:tests",
                "tests/test_layout.py",
                "tests/test_results_files.py",
                "projects/data-pipelines/README.md",
            ],
            ["data-pipelines"],
        ),
        (["//pants.toml:build_root"], PROJECTS),
        (["BUILD"], PROJECTS),
        (["3rdparty/python:shared"], PROJECTS),
        ([".github/actions", ".github"], PROJECTS),
        (["testsuite/x.py"], PROJECTS),
        # What only the repo-level tests read: the actions act runs, the compose specification.
        (
            [
                "//3rdparty/actions/actions/cache/abc.tar.gz:../../../vendored_actions",
                "3rdparty/compose-spec/abc/compose-spec.json",
            ],
            [],
        ),
        (["3rdparty/actionsx/y"], PROJECTS),
        (["", "  ", "projects/ml-cicd:cli"], ["ml-cicd"]),
    ],
)
def test_changed_projects(
    changed_projects: ModuleType, lines: list[str], expected: list[str]
) -> None:
    assert changed_projects.changed_projects(lines, PROJECTS) == expected


def test_all_projects_are_sorted_and_unique(changed_projects: ModuleType) -> None:
    lines = ["projects/ml-cicd:a", "projects/data-pipelines:b", "projects/ml-cicd:c"]
    assert changed_projects.changed_projects(lines, PROJECTS) == ["data-pipelines", "ml-cicd"]


def make_repo(root: Path) -> None:
    for name in PROJECTS:
        (root / "projects" / name).mkdir(parents=True)
    (root / "projects" / ".hidden").mkdir()
    (root / "projects" / "notes.md").write_text("")


def run_script(root: Path, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script_path()), "--root", str(root), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=False,
        timeout=60,
    )


def test_cli_reads_stdin_and_prints_json(tmp_path: Path) -> None:
    make_repo(tmp_path)
    stdin = "projects/llm-serving/src/llm_serving/bench.py\ntests/test_layout.py\n"
    result = run_script(tmp_path, stdin)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["llm-serving"]


def test_cli_shared_change_selects_every_existing_project(tmp_path: Path) -> None:
    make_repo(tmp_path)
    result = run_script(tmp_path, "shared/src/roadmap_shared/cli.py\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == PROJECTS


def test_cli_all_flag(tmp_path: Path) -> None:
    make_repo(tmp_path)
    result = run_script(tmp_path, "", "--all")
    assert json.loads(result.stdout) == PROJECTS


def test_cli_without_projects_prints_an_empty_list(tmp_path: Path) -> None:
    result = run_script(tmp_path, "pants.toml\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
