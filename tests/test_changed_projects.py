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
PROJECTS = ["projects/data-pipelines", "projects/llm-serving", "projects/ml-cicd"]
# The loop of LOOP_MEMBERS that joins data-pipelines (and model-monitoring, absent here), and one
# that LOOP_MEMBERS does not list: it joins every project.
LOOPS = ["loops/mlops", "loops/unlisted"]
FOLDERS = sorted(LOOPS + PROJECTS)


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
        (["projects/ml-cicd/src/ml_cicd/app.py:lib"], ["loops/unlisted", "projects/ml-cicd"]),
        (
            ["projects/llm-serving:bench", "projects/ml-cicd/README.md"],
            ["loops/unlisted", "projects/llm-serving", "projects/ml-cicd"],
        ),
        # A project a listed loop joins selects that loop; a loop's own change selects it alone.
        (["projects/data-pipelines/src/x.py"], [*LOOPS, "projects/data-pipelines"]),
        (["loops/mlops/src/mlops_loop/cli.py", "loops/removed/BUILD"], ["loops/mlops"]),
        (["loops/README.md"], []),
        (["projects/removed-project/BUILD"], []),
        (["projects", "loops"], FOLDERS),
        (["tests/test_layout.py", "README.md", ".github/workflows/retrain.yml"], []),
        (["shared/src/roadmap_shared/config.py"], FOLDERS),
        (["pants.toml"], FOLDERS),
        (["pants"], FOLDERS),
        (["3rdparty/python/shared.lock"], FOLDERS),
        (["3rdparty/python#torch"], FOLDERS),
        (["build-support/changed_projects.py"], FOLDERS),
        (["docker/base.Dockerfile"], FOLDERS),
        ([".github/workflows/ci.yml"], FOLDERS),
        ([".github/actions/setup-pants/action.yml"], FOLDERS),
        # Targets of the build root and target generators of repo-level folders (what Pants lists
        # as dependents of almost any file): the files they own count on their own lines.
        (["//:root"], []),
        (["//:benchmark_results", "tests:tests", "tests/test_layout.py:tests"], []),
        (
            ["projects/ml-cicd/README.md:../../benchmark_results", "//:project_layout"],
            ["loops/unlisted", "projects/ml-cicd"],
        ),
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
            [*LOOPS, "projects/data-pipelines"],
        ),
        (["//pants.toml:build_root"], FOLDERS),
        (["BUILD"], FOLDERS),
        (["3rdparty/python:shared"], FOLDERS),
        ([".github/actions", ".github"], FOLDERS),
        (["testsuite/x.py"], FOLDERS),
        # What only the repo-level tests read: the actions act runs, the compose specification.
        (
            [
                "//3rdparty/actions/actions/cache/abc.tar.gz:../../../vendored_actions",
                "3rdparty/compose-spec/abc/compose-spec.json",
            ],
            [],
        ),
        (["3rdparty/actionsx/y"], FOLDERS),
        (["", "  ", "loops/mlops:cli"], ["loops/mlops"]),
    ],
)
def test_changed_projects(
    changed_projects: ModuleType, lines: list[str], expected: list[str]
) -> None:
    assert changed_projects.changed_folders(lines, FOLDERS) == expected


def test_folders_are_sorted_and_unique(changed_projects: ModuleType) -> None:
    lines = ["projects/ml-cicd:a", "loops/mlops:b", "projects/ml-cicd:c"]
    expected = ["loops/mlops", "loops/unlisted", "projects/ml-cicd"]
    assert changed_projects.changed_folders(lines, FOLDERS) == expected


def make_repo(root: Path) -> None:
    for folder in FOLDERS:
        (root / folder).mkdir(parents=True)
    (root / "projects" / ".hidden").mkdir()
    (root / "projects" / "notes.md").write_text("")
    (root / "loops" / "notes.md").write_text("")


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
    assert json.loads(result.stdout) == ["loops/unlisted", "projects/llm-serving"]


def test_cli_shared_change_selects_every_existing_folder(tmp_path: Path) -> None:
    make_repo(tmp_path)
    result = run_script(tmp_path, "shared/src/roadmap_shared/cli.py\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == FOLDERS


def test_cli_all_flag(tmp_path: Path) -> None:
    make_repo(tmp_path)
    result = run_script(tmp_path, "", "--all")
    assert json.loads(result.stdout) == FOLDERS


def test_cli_without_projects_prints_an_empty_list(tmp_path: Path) -> None:
    result = run_script(tmp_path, "pants.toml\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
