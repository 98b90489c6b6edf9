"""Run each registered project's demo, check its results and collect them for the report."""

from __future__ import annotations

import codecs
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from roadmap_lab.services import stop_process_group

from roadmap_showcase.registry import Project

LOG_TAIL_LINES = 40
TERMINATE_GRACE_S = 5.0
REQUIRED_RESULT_KEYS = ("project", "headline")


# --- How Pants demos are built and found. Adjust here if the Pants setup changes. -------------


def pants_package_plan(
    pants: str, addresses: list[str], root: Path
) -> tuple[list[str], dict[str, Path]]:
    """The one `pants package` call that builds every demo, and where each built PEX lands.

    Pants 2.17 writes `projects/foo:cli` to `dist/projects.foo/cli.pex` under the build root.
    `--no-pantsd` because the showcase itself may run under `./pants run` (nested pantsd hangs).
    """
    argv = [*shlex.split(pants), "--no-pantsd", "--concurrent", "package", *addresses]
    pex_paths = {}
    for address in addresses:
        folder, _, target = address.partition(":")
        pex_paths[address] = root / "dist" / folder.replace("/", ".") / f"{target}.pex"
    return argv, pex_paths


# ----------------------------------------------------------------------------------------------


@dataclass
class ProjectOutcome:
    project: Project
    status: str  # "ok" or "failed"
    reason: str | None = None
    duration_s: float = 0.0
    results: dict | None = None
    plots: list[str] = field(default_factory=list)  # relative to the showcase folder
    pages: list[str] = field(default_factory=list)  # HTML pages the card links, same
    results_copy: str | None = None  # relative to the showcase folder
    log: str | None = None  # relative to the showcase folder
    log_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary(self) -> dict:
        return {
            "name": self.project.name,
            "title": self.project.title,
            "status": self.status,
            "reason": self.reason,
            "duration_s": round(self.duration_s, 2),
            "headline": (self.results or {}).get("headline", []),
            "log": self.log,
        }


@dataclass
class BuildOutcome:
    addresses: list[str]
    ok: bool
    duration_s: float
    log: str


@dataclass
class ShowcaseRun:
    started_at: datetime
    finished_at: datetime
    outcomes: list[ProjectOutcome]
    build: BuildOutcome | None

    @property
    def failed(self) -> list[ProjectOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.ok]


class ResultsError(Exception):
    """The demo's results file is missing or does not follow the schema."""


@dataclass
class _Exit:
    returncode: int | None  # None when it could not start or timed out
    timed_out: bool = False
    start_error: str | None = None


class Showcase:
    def __init__(
        self,
        root: Path,
        dist: Path,
        pants: str = "./pants",
        console: Console | None = None,
        build_timeout_s: float = 3600.0,
    ) -> None:
        self.root = root.resolve()
        self.dist = dist if dist.is_absolute() else (Path.cwd() / dist)
        self.showcase_dir = self.dist / "showcase"
        self.logs_dir = self.showcase_dir / "logs"
        self.pants = pants
        self.console = console or Console(stderr=True)
        self.build_timeout_s = build_timeout_s

    def run(self, projects: list[Project]) -> ShowcaseRun:
        started_at = datetime.now(UTC)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        with self.console.status("starting", spinner="dots") as status:
            self._status = status
            build, build_failures, pex_paths = self._build_demos(projects)
            outcomes = []
            for index, project in enumerate(projects, start=1):
                label = f"[{index}/{len(projects)}] {project.name}"
                needed = (project.demo, project.prepare, *project.packages)
                broken = [a for a in needed if a in build_failures]
                if project.command is None and broken:
                    reason, log = build_failures[broken[0]]
                    outcome = ProjectOutcome(
                        project,
                        "failed",
                        reason=reason,
                        log=log,
                        log_tail=_tail(self.showcase_dir / log),
                    )
                else:
                    argv = (
                        list(project.command)
                        if project.command
                        else [str(pex_paths[project.demo]), *project.args]
                    )
                    prepare_argv = (
                        [str(pex_paths[project.prepare]), *project.prepare_args]
                        if project.prepare
                        else None
                    )
                    outcome = self._run_project(project, argv, label, prepare_argv)
                outcomes.append(outcome)
                self._print_outcome(label, outcome)
        return ShowcaseRun(started_at, datetime.now(UTC), outcomes, build)

    # -- building ----------------------------------------------------------------------------

    def _build_demos(self, projects: list[Project]):
        addresses = list(
            dict.fromkeys(
                address
                for p in projects
                if p.command is None
                for address in (p.prepare, p.demo, *p.packages)
                if address
            )
        )
        if not addresses:
            return None, {}, {}
        argv, pex_paths = pants_package_plan(self.pants, addresses, self.root)
        log = "logs/_pants-package.log"
        started = time.monotonic()
        exit_ = self._run_logged(
            argv,
            self.build_timeout_s,
            self.showcase_dir / log,
            f"building {len(addresses)} demo(s) with Pants",
        )
        failures: dict[str, tuple[str, str]] = {}
        if (
            exit_.returncode != 0
            and not exit_.timed_out
            and exit_.start_error is None
            and len(addresses) > 1
        ):
            # One broken project should not sink the others: build each alone to see which failed.
            for address in addresses:
                single_argv, _ = pants_package_plan(self.pants, [address], self.root)
                single_log = (
                    f"logs/_pants-package.{address.replace('/', '.').replace(':', '.')}.log"
                )
                single_exit = self._run_logged(
                    single_argv,
                    self.build_timeout_s,
                    self.showcase_dir / single_log,
                    f"building {address} alone",
                )
                if single_exit.returncode != 0:
                    failures[address] = (
                        _describe_failure("pants package", single_exit, self.build_timeout_s),
                        single_log,
                    )
        elif exit_.returncode != 0:
            reason = _describe_failure("pants package", exit_, self.build_timeout_s)
            failures = {address: (reason, log) for address in addresses}
        for address, pex in pex_paths.items():
            if address not in failures and not pex.is_file():
                failures[address] = (
                    f"pants package built no PEX at {_display(pex, self.root)}",
                    log,
                )
        build = BuildOutcome(
            addresses, ok=not failures, duration_s=time.monotonic() - started, log=log
        )
        mark = "[green]✓[/]" if build.ok else "[red]✗[/]"
        self.console.print(
            f"{mark} Pants build of {len(addresses)} demo(s) ({build.duration_s:.1f} s)"
        )
        return build, failures, pex_paths

    # -- running one project -------------------------------------------------------------------

    def _run_project(
        self, project: Project, argv: list[str], label: str, prepare_argv: list[str] | None = None
    ) -> ProjectOutcome:
        project_dir = self.showcase_dir / project.name
        shutil.rmtree(project_dir, ignore_errors=True)
        log = f"logs/{project.name}.log"
        log_path = self.showcase_dir / log
        if not self.console.is_terminal:
            self.console.print(
                f"→ {escape(label)} (output: {escape(str(log_path))})", soft_wrap=True
            )
        wall_start = time.time()
        started = time.monotonic()
        if prepare_argv is not None:
            prepare_log = f"logs/{project.name}.prepare.log"
            exit_ = self._run_logged(
                prepare_argv, project.timeout_s, self.showcase_dir / prepare_log, f"{label} prepare"
            )
            if exit_.returncode != 0:
                outcome = ProjectOutcome(
                    project,
                    "failed",
                    reason=_describe_failure("prepare step", exit_, project.timeout_s),
                    duration_s=time.monotonic() - started,
                    log=prepare_log,
                    log_tail=_tail(self.showcase_dir / prepare_log),
                )
                return outcome
        exit_ = self._run_logged(argv, project.timeout_s, log_path, label)
        duration = time.monotonic() - started
        outcome = ProjectOutcome(project, "failed", duration_s=duration, log=log)

        if exit_.returncode != 0:
            outcome.reason = _describe_failure("demo", exit_, project.timeout_s)
        else:
            results_path = (
                project.results if project.results.is_absolute() else self.root / project.results
            )
            try:
                outcome.results = read_results(
                    results_path,
                    project.name,
                    not_before=wall_start,
                    shown_as=_display(results_path, self.root),
                )
                outcome.plots = self._copy_listed(
                    outcome.results, "plots", results_path.parent, project_dir, project.name
                )
                outcome.pages = self._copy_listed(
                    outcome.results, "pages", results_path.parent, project_dir, project.name
                )
                project_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy2(results_path, project_dir / "results.json")
                outcome.results_copy = f"{project.name}/results.json"
                outcome.status = "ok"
            except ResultsError as error:
                outcome.reason = str(error)
        if not outcome.ok:
            outcome.log_tail = _tail(log_path)
        return outcome

    def _copy_listed(
        self, results: dict, key: str, results_dir: Path, project_dir: Path, name: str
    ) -> list[str]:
        """Copy the files results list under ``key`` (plots, pages) beside the report."""
        copied = []
        what = key.removesuffix("s")
        for listed in results.get(key, []):
            relative = PurePosixPath(listed)
            if relative.is_absolute() or ".." in relative.parts:
                raise ResultsError(
                    f"{what} path must be relative to the results folder, got {listed!r}"
                )
            source = results_dir / relative
            if not source.is_file():
                raise ResultsError(
                    f"{what} listed in results is missing: {_display(source, self.root)}"
                )
            target = project_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            copied.append(f"{name}/{relative}")
        return copied

    def _run_logged(self, argv: list[str], timeout_s: float, log_path: Path, label: str) -> _Exit:
        """Run argv in the repo root, writing its output to log_path and showing it live."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log_path.open("w", encoding="utf-8") as log:
            log.write(f"$ {shlex.join(argv)}\n")
            log.flush()
            try:
                process = subprocess.Popen(
                    argv,
                    cwd=self.root,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                log.write(f"cannot start: {error}\n")
                return _Exit(
                    None, start_error=f"cannot start {argv[0]!r}: {error.strerror or error}"
                )
            pump = _OutputPump(process.stdout, log)
            started = time.monotonic()
            timed_out = False
            while True:
                try:
                    process.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    pass
                elapsed = time.monotonic() - started
                self._show(label, elapsed, pump.last_line)
                if elapsed > timeout_s:
                    timed_out = True
                    _kill_group(process)
                    break
            pump.join(timeout=2.0)
            if pump.is_alive():  # a child left behind still holds the output pipe
                _kill_group(process)
                pump.join(timeout=2.0)
            pump.stop()
            if timed_out:
                log.write(f"\n[showcase] killed after the {timeout_s:g} s timeout\n")
            return _Exit(None if timed_out else process.returncode, timed_out=timed_out)

    # -- display -------------------------------------------------------------------------------

    def _show(self, label: str, elapsed: float, last_line: str) -> None:
        line = last_line.strip()[:100]
        self._status.update(f"[bold]{escape(label)}[/]  {elapsed:6.1f} s  [dim]{escape(line)}[/]")

    def _print_outcome(self, label: str, outcome: ProjectOutcome) -> None:
        if outcome.ok:
            self.console.print(f"[green]✓[/] {escape(label)} ({outcome.duration_s:.1f} s)")
        else:
            self.console.print(
                f"[red]✗[/] {escape(label)} ({outcome.duration_s:.1f} s): "
                f"{escape(outcome.reason or '')}",
                soft_wrap=True,
            )


class _OutputPump(threading.Thread):
    """Copies a process's output to its log file and remembers the last line for the live view."""

    def __init__(self, stream, log: TextIO) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.log = log
        self.last_line = ""
        self._partial = ""
        self._lock = threading.Lock()
        self._stopped = False
        self.start()

    def run(self) -> None:
        # Chunks, not lines: progress bars redraw with "\r" and would otherwise show nothing live.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        fd = self.stream.fileno()
        while chunk := os.read(fd, 65536):
            text = decoder.decode(chunk)
            with self._lock:
                if self._stopped:
                    return
                self.log.write(text)
                self.log.flush()
            parts = re.split(r"[\r\n]", self._partial + text)
            self._partial = parts[-1][-1000:]  # a line still being written
            visible = [part.strip() for part in parts if part.strip()]
            if visible:
                self.last_line = visible[-1]

    def stop(self) -> None:
        with self._lock:
            self._stopped = True


def _kill_group(process: subprocess.Popen) -> None:
    """Stop the demo and everything it started (it runs in its own process group): SIGTERM, then
    SIGKILL to the group after the grace, children included."""
    stop_process_group(process, TERMINATE_GRACE_S)


def _describe_failure(what: str, exit_: _Exit, timeout_s: float) -> str:
    if exit_.start_error:
        return exit_.start_error
    if exit_.timed_out:
        return f"{what} timed out after {timeout_s:g} s"
    code = exit_.returncode
    if code is not None and code < 0:
        try:
            return f"{what} was killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"{what} exited with code {code}"


def read_results(
    path: Path, name: str, not_before: float | None = None, shown_as: str | None = None
) -> dict:
    """Load and check a project's results file; ResultsError says what is wrong in one line."""
    shown = shown_as or str(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ResultsError(f"results file not written: {shown}") from None
    if not_before is not None and stat.st_mtime < not_before - 1.0:
        raise ResultsError(f"results file is stale (not written by this run): {shown}")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(f"results file is not valid JSON ({error}): {shown}") from None
    if not isinstance(results, dict):
        raise ResultsError(f"results file must hold a JSON object: {shown}")
    missing = [key for key in REQUIRED_RESULT_KEYS if key not in results]
    if missing:
        raise ResultsError(f"results file lacks required key(s) {', '.join(missing)}: {shown}")
    if results["project"] != name:
        raise ResultsError(
            f"results file is for project {results['project']!r}, expected {name!r}: {shown}"
        )
    if results.get("status", "ok") != "ok":
        raise ResultsError(f"demo reported status {results['status']!r}")
    headline = results["headline"]
    if not isinstance(headline, list):
        raise ResultsError(
            "'headline' must be a list of {name, value, unit, baseline, target} objects"
        )
    for index, entry in enumerate(headline, start=1):
        if not isinstance(entry, dict) or "name" not in entry or "value" not in entry:
            raise ResultsError(
                f"headline entry {index} must be an object with at least 'name' and 'value'"
            )
    for key in ("plots", "pages"):
        listed = results.get(key, [])
        if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
            raise ResultsError(f"'{key}' must be a list of paths relative to the results file")
    machine = results.get("machine")
    if machine is not None and not isinstance(machine, dict):
        raise ResultsError("'machine' must be an object")
    return results


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with path.open(encoding="utf-8", errors="replace", newline="\n") as handle:
            # A line redrawn with "\r" (a progress bar) shows its final state, as on a terminal.
            return [line.rstrip("\r\n").rsplit("\r", 1)[-1] for line in deque(handle, maxlen=lines)]
    except OSError:
        return []


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
