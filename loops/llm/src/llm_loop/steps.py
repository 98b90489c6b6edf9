"""The projects' command lines, run from their PEXes (the loop never imports them): each step's
output goes to its own log file in the run folder, a failure is one error naming the step, its
exit status, its last error line and the log."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from roadmap_lab.services import log_tail, pex_child_env

from llm_loop.errors import LlmLoopError

logger = logging.getLogger(__name__)
PACKAGE_HINT = (
    "build it with `./pants package projects/llm-alignment:cli projects/llm-serving:cli "
    "projects/prompt-registry:cli`"
)


def pex_argv(path: Path, setting: str) -> list[str]:
    """The command that runs the PEX at ``path`` with this interpreter (same Python version);
    an error naming the setting that points elsewhere when it is missing."""
    if not path.is_file():
        raise LlmLoopError(f"{path} not found: {PACKAGE_HINT} (or set {setting})")
    return [sys.executable, str(path.resolve())]


def last_error_line(log: Path) -> str:
    """The line of a step's log that says what went wrong: its last ``error:`` line (the
    projects' CLIs print one), else its last non-empty line."""
    lines = [line.strip() for line in log_tail(log, 60).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(no output)"])[-1]


class Steps:
    """Runs the projects' CLIs, each call logged to ``<folder>/<n>-<name>.log``."""

    def __init__(self, folder: Path, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.env = env if env is not None else pex_child_env()
        self.count = 0

    def run(
        self,
        name: str,
        argv: Sequence[str],
        timeout_s: float,
        ok: tuple[int, ...] = (0,),
        env: dict[str, str] | None = None,
    ) -> tuple[int, Path]:
        """Run one step; its exit status (one of ``ok``, else an error) and its log."""
        self.count += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / f"{self.count:02d}-{re.sub(r'[^A-Za-z0-9]+', '-', name)}.log"
        logger.info("step: %s", name)
        started = time.monotonic()
        with open(log, "wb") as out:
            try:
                status = subprocess.run(
                    list(argv), stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s,
                    env={**self.env, **(env or {})}, check=False,
                ).returncode  # fmt: skip
            except subprocess.TimeoutExpired:
                raise LlmLoopError(
                    f"{name} did not finish within {timeout_s:g} s; see {log}"
                ) from None
        if status not in ok:
            raise LlmLoopError(f"{name} failed (exit {status}): {last_error_line(log)}; see {log}")
        logger.info("step: %s done in %.0f s", name, time.monotonic() - started)
        return status, log
