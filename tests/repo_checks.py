"""Helpers of the repo-level tests: find the repo and the lint tools, and the checks themselves.

The tests run from a checkout or inside a Pants sandbox (a copy of the declared files), so the
repo is found from the current working directory, never from this module's location.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

BUILD_ROOT_MARKER = "pants.toml"
# Folders that hold no sources of ours (Pants' outputs, caches); hidden ones are skipped too,
# except these.
SKIPPED_DIRS = frozenset({"dist", "runs", "node_modules", "__pycache__"})
KEPT_HIDDEN_DIRS = frozenset({".github", ".ci"})
SHELL_SHEBANG = re.compile(rb"#!\s*/\S*/(?:env\s+)?(?:ba)?sh\b")
# Files Pants adds to a test sandbox; they are not ours.
SANDBOX_FILES = re.compile(r"^__run\.sh$|^pytest_runner\.pex_.*\.sh$")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def repo_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: cwd) that holds pants.toml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / BUILD_ROOT_MARKER).is_file():
            return folder
    raise AssertionError(
        f"no {BUILD_ROOT_MARKER} in {here} or above: run the tests from the repo "
        f"(under Pants, the tests need a dependency on a files() target owning {BUILD_ROOT_MARKER})"
    )


def subprocess_env(**overrides: str) -> dict[str, str]:
    """The environment for tools we start; Pants sandboxes may pass no PATH at all."""
    env = dict(os.environ)
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(overrides)
    return env


def _tool_candidates(name: str) -> Iterator[Path]:
    found = shutil.which(name, path=os.environ.get("PATH", DEFAULT_PATH))
    if found:
        yield Path(found)
    # A venv (also a Pants venv-mode PEX): console scripts and wheel data scripts sit beside the
    # interpreter, which need not be on PATH.
    yield Path(sys.executable).parent / name
    yield Path(sys.prefix) / "bin" / name
    for entry in sys.path:
        if not entry:
            continue
        base = Path(entry)
        yield base / ".prefix" / "bin" / name  # a zipapp PEX's installed wheel chroot
        yield base / "bin" / name  # `pip install --target` layout
        yield base.parent.parent.parent / "bin" / name  # <prefix>/lib/pythonX.Y/site-packages


def find_tool(name: str, package: str) -> Path:
    """The path of the executable `name`, which the PyPI package `package` ships."""
    for candidate in _tool_candidates(name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError(
        f"{name} not found on PATH, beside {sys.executable} or in any sys.path entry: "
        f"install the PyPI package {package} into the test environment"
    )


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    output: str


def run_tool(
    args: Sequence[str | Path], cwd: Path, env: dict[str, str] | None = None
) -> ToolResult:
    completed = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env or subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )
    return ToolResult(completed.returncode, completed.stdout)


BUILD_SCRIPT = Path("docker") / "build-image.sh"


def run_build_script(
    repo: Path, *args: str, timeout: int = 60
) -> subprocess.CompletedProcess[str]:
    """Run docker/build-image.sh with ``args``; its build log is on stderr, a command's output on
    stdout."""
    script = repo / BUILD_SCRIPT
    assert script.is_file(), f"{BUILD_SCRIPT} is missing (under Pants: declare it as a dependency)"
    env = subprocess_env()
    if "HOME" not in env and "ROADMAP_LAB_IMAGE_CACHE" not in env:
        # Pants may pass no HOME; keep the cached base image where the script keeps it by default.
        env["HOME"] = pwd.getpwuid(os.getuid()).pw_dir
    return subprocess.run(
        ["bash", str(script), *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def walk_repo_files(root: Path) -> Iterator[Path]:
    """Every file under root, minus build outputs and hidden folders (except .github and .ci)."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in SKIPPED_DIRS and (not d.startswith(".") or d in KEPT_HIDDEN_DIRS)
        )
        for file in sorted(files):
            if not SANDBOX_FILES.search(file):
                yield Path(folder) / file


def is_shell_script(path: Path) -> bool:
    """A *.sh file, or a file without a suffix whose shebang names sh or bash."""
    if path.suffix == ".sh":
        return True
    if path.suffix or not path.is_file():
        return False
    with path.open("rb") as file:
        return SHELL_SHEBANG.match(file.readline()) is not None


# --- project layout -------------------------------------------------------------------------------

PROJECT_REQUIRED_FILES = ("BUILD", "Dockerfile", "README.md")
# A loop joins the projects' services and images: it ships no image of its own.
LOOP_REQUIRED_FILES = ("BUILD", "README.md")


def subfolders(root: Path, parent: str) -> list[Path]:
    folder = root / parent
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def project_folders(root: Path) -> list[Path]:
    return subfolders(root, "projects")


def loop_folders(root: Path) -> list[Path]:
    """loops/<name>: the folders that join projects into one system (issues' "loops")."""
    return subfolders(root, "loops")


def project_layout_problems(root: Path) -> list[str]:
    """What each projects/<name>/ folder lacks (BUILD, Dockerfile, README.md, tests/test_*.py,
    its image test) and each loops/<name>/ folder (BUILD, README.md, tests/test_*.py)."""
    problems = []
    for folder in project_folders(root):
        problems += _folder_problems(root, folder, PROJECT_REQUIRED_FILES)
        image_test = image_test_path(root, folder.name)
        if (folder / "Dockerfile").is_file() and not image_test.is_file():
            problems.append(
                f"{folder.relative_to(root)}: missing its image test "
                f"{image_test.relative_to(root)}"
            )
    for folder in loop_folders(root):
        problems += _folder_problems(root, folder, LOOP_REQUIRED_FILES)
    return problems


def _folder_problems(root: Path, folder: Path, required_files: tuple[str, ...]) -> list[str]:
    rel = folder.relative_to(root)
    problems = [f"{rel}: missing {n}" for n in required_files if not (folder / n).is_file()]
    tests = folder / "tests"
    if not tests.is_dir():
        problems.append(f"{rel}: missing tests/ folder")
    elif not any(p.is_file() for p in tests.rglob("test_*.py")):
        problems.append(f"{rel}: tests/ has no test_*.py")
    return problems


def image_test_path(root: Path, project: str) -> Path:
    """The repo-level test that builds and checks a project's image (tests/project_images.py)."""
    return root / "tests" / f"test_image_{project.replace('-', '_')}.py"


# --- Dockerfiles ----------------------------------------------------------------------------------

ROOT_USERS = frozenset({"root", "0"})
BASE_IMAGE_ARG = "BASE_IMAGE"


def is_dockerfile(path: Path) -> bool:
    return path.name == "Dockerfile" or path.name.endswith(".Dockerfile")


def repo_dockerfiles(root: Path) -> list[Path]:
    return [p for p in walk_repo_files(root) if is_dockerfile(p)]


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        pending += line
        keyword, _, args = pending.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    if pending.strip():
        keyword, _, args = pending.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def _from_image(args: str) -> str:
    words = [w for w in args.split() if not w.startswith("--")]
    return words[0] if words else ""


def dockerfile_problems(text: str) -> list[str]:
    """Our conventions: `ARG BASE_IMAGE` used by a FROM, the final stage's last USER not root."""
    instructions = dockerfile_instructions(text)
    problems = []
    first_from = next((i for i, (kw, _) in enumerate(instructions) if kw == "FROM"), None)
    if first_from is None:
        return ["no FROM instruction"]
    global_args = {
        args.split("=", 1)[0].strip() for kw, args in instructions[:first_from] if kw == "ARG"
    }
    if BASE_IMAGE_ARG not in global_args:
        problems.append(f"no `ARG {BASE_IMAGE_ARG}` before the first FROM")
    base_refs = {f"${BASE_IMAGE_ARG}", f"${{{BASE_IMAGE_ARG}}}"}
    if not any(_from_image(args) in base_refs for kw, args in instructions if kw == "FROM"):
        problems.append(f"no FROM uses ${{{BASE_IMAGE_ARG}}}")
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    users = [args for kw, args in instructions[last_from:] if kw == "USER"]
    if not users:
        problems.append("the final stage sets no USER (it would run as root)")
    else:
        user = users[-1].split(":", 1)[0].strip()
        if user.lower() in ROOT_USERS:
            problems.append(f"the final stage's last USER is root ({users[-1]})")
        elif "$" in user:
            problems.append(f"the final stage's last USER is not literal ({users[-1]})")
    return problems
