"""build-support/system-packages.txt (one list of Debian packages) and its installer."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from repo_checks import loop_folders, project_folders, subprocess_env

LIST = Path("build-support") / "system-packages.txt"
INSTALLER = Path("build-support") / "install-system-packages.sh"
# The folders besides projects/<name> whose tests or demos need packages.
TOP_LEVEL_USERS = frozenset({"shared", "showcase", "tests"})


@dataclass(frozen=True)
class Entry:
    line: int
    package: str
    users: tuple[str, ...]
    check: str


def parse_list(text: str) -> list[Entry]:
    """The entries of a "package | needed by | check" list; comments and blank lines skipped."""
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        fields = [field.strip() for field in raw.split("|", 2)]
        assert len(fields) == 3 and all(fields), (
            f"line {number}: want 'package | needed by | check', got {raw!r}"
        )
        package, users, check = fields
        entries.append(Entry(number, package, tuple(u.strip() for u in users.split(",")), check))
    return entries


def test_the_list_parses_without_duplicates(repo: Path) -> None:
    entries = parse_list((repo / LIST).read_text())
    assert entries, f"{LIST} lists no package"
    packages = [entry.package for entry in entries]
    assert sorted({p for p in packages if packages.count(p) > 1}) == []


def test_every_needed_by_name_is_a_folder(repo: Path) -> None:
    projects = {folder.name for folder in project_folders(repo)}
    assert projects, "no projects/<name> folder found (under Pants: declare //:project_layout)"
    loops = {folder.relative_to(repo).as_posix() for folder in loop_folders(repo)}
    unknown = [
        f"{LIST}:{entry.line}: {entry.package}: {name}"
        for entry in parse_list((repo / LIST).read_text())
        for name in entry.users
        if name not in TOP_LEVEL_USERS | projects | loops
    ]
    assert unknown == [], f"names other than {sorted(TOP_LEVEL_USERS)}, a project or a loop"


@dataclass(frozen=True)
class Run:
    returncode: int
    stderr: str
    apt_calls: str


Installer = Callable[..., Run]


@pytest.fixture
def installer(repo: Path, tmp_path: Path) -> Installer:
    """Runs the installer on a fixture list (None: no list), with apt-get and sudo stand-ins that
    log their calls instead of installing."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "apt-calls.log"
    for tool in ("apt-get", "sudo"):
        stand_in = fake_bin / tool
        stand_in.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{calls}"\n')
        stand_in.chmod(0o755)
    packages_list = tmp_path / "system-packages.txt"

    def run(list_text: str | None, *args: str) -> Run:
        if list_text is not None:
            packages_list.write_text(list_text)
        env = subprocess_env(SYSTEM_PACKAGES_LIST=str(packages_list))
        env["PATH"] = f"{fake_bin}:{env['PATH']}"
        completed = subprocess.run(
            ["bash", str(repo / INSTALLER), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Run(
            completed.returncode,
            completed.stderr,
            calls.read_text() if calls.exists() else "",
        )

    return run


FIXTURE_LIST = """\
# package        | needed by          | check
present-tool     | tests, llm-serving | true
absent-tool      | tests              | false
absent-elsewhere | showcase           | command -v no-such-command-here
"""


def test_check_reports_a_missing_package_and_installs_nothing(installer: Installer) -> None:
    result = installer(FIXTURE_LIST, "--check")
    assert result.returncode == 1, result.stderr
    assert "missing: absent-tool absent-elsewhere" in result.stderr
    assert result.apt_calls == ""


def test_check_covers_only_the_named_folders(installer: Installer) -> None:
    result = installer(FIXTURE_LIST, "--check", "tests")
    assert result.returncode == 1, result.stderr
    assert "missing: absent-tool" in result.stderr
    assert "absent-elsewhere" not in result.stderr
    assert result.apt_calls == ""


def test_check_passes_when_the_named_folders_have_what_they_need(installer: Installer) -> None:
    result = installer(FIXTURE_LIST, "--check", "llm-serving")
    assert (result.returncode, result.stderr, result.apt_calls) == (0, "", "")


def test_folders_name_a_project_by_its_path_and_a_loop_by_its_folder(
    installer: Installer,
) -> None:
    listing = FIXTURE_LIST + "loop-tool        | loops/mlops        | false\n"
    project = installer(listing, "--check", "projects/llm-serving")
    assert (project.returncode, project.stderr) == (0, "")
    loop = installer(listing, "--check", "loops/mlops")
    assert loop.returncode == 1 and "missing: loop-tool" in loop.stderr
    unknown = installer(listing, "--check", "loops/no-such-loop")
    assert unknown.returncode == 2 and "unknown NAME loops/no-such-loop" in unknown.stderr


def test_a_missing_list_is_a_clear_error(installer: Installer) -> None:
    result = installer(None, "--check")
    assert result.returncode == 2
    assert "no package list at" in result.stderr


def test_an_unknown_name_is_a_clear_error(installer: Installer) -> None:
    result = installer(FIXTURE_LIST, "--check", "llm-servng")  # a typo would install nothing
    assert result.returncode == 2
    assert "unknown NAME llm-servng" in result.stderr
    assert result.apt_calls == ""
