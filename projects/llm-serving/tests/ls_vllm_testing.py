"""Helpers of the tests that start real vLLM engines and servers."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from llm_serving.settings import ProjectSettings
from roadmap_lab.services import ManagedProcess, python_child_env, signal_process_group

# Fast-starting engines (compilation is not what these tests test): eager, short context, small
# KV cache, few sequences.
SMALL_ENGINE: dict[str, Any] = {
    "enforce_eager": True,
    "max_model_len": 512,
    "max_num_seqs": 4,
    "kv_cache_gib": 1,
}
SERVER_MODULE = "vllm.entrypoints.openai.api_server"


def small_engine_settings(run_dir: Path, **overrides: Any) -> ProjectSettings:
    fields: dict[str, Any] = {**SMALL_ENGINE, "port": 0, "run_dir": run_dir, "log_level": "WARNING"}
    return ProjectSettings(**{**fields, **overrides})


def small_engine_env(run_dir: Path) -> dict[str, str]:
    """The same settings as ``LLM_SERVING_*`` variables, for a CLI started as a process."""
    values = {**SMALL_ENGINE, "run_dir": run_dir}
    return {f"LLM_SERVING_{name.upper()}": str(value).lower() for name, value in values.items()}


def serve_cli(
    run_dir: Path, port: int, stop_signal: int, ready: str | None, *argv: str, **env: str
) -> ManagedProcess:
    """``python -m llm_serving serve`` as a user runs it, on a small engine; ``env``: more
    ``LLM_SERVING_*`` settings."""
    child_env = python_child_env(
        **small_engine_env(run_dir / "run"),
        LLM_SERVING_LOG_LEVEL="INFO",
        COLUMNS="200",  # log lines unwrapped in the log file
        **env,
    )
    return ManagedProcess(
        [sys.executable, "-m", "llm_serving", "serve", "--port", str(port), *argv],
        name="llm_serving serve",
        log_path=run_dir / "serve.log",
        ready=ready,
        env=child_env,
        startup_timeout_s=600,  # a loaded CI runner: vLLM's start took minutes there
        stop_grace_s=60,
        stop_signal=stop_signal,
    )


def vllm_server_of(cli_pid: int, timeout_s: float = 60) -> int:
    """The pid of the vLLM server process the CLI started."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, ValueError, IndexError):
                continue
            if parent == cli_pid and SERVER_MODULE in command:
                return int(entry.name)
        time.sleep(0.2)
    raise AssertionError(f"the CLI (pid {cli_pid}) started no vLLM server")


def logged(process: ManagedProcess, text: str, timeout_s: float = 30) -> bool:
    """Whether ``text`` shows in the process's log within ``timeout_s`` (a line printed just
    after the server became ready may come a moment after a probe saw it ready)."""
    deadline = time.monotonic() + timeout_s
    while text not in process.log_tail() and time.monotonic() < deadline:
        time.sleep(0.2)
    return text in process.log_tail()


def group_alive(pid: int) -> bool:
    return signal_process_group(pid, 0)  # signal 0: only checks that the group exists
