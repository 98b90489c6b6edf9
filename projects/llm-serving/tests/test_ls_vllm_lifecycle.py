"""A server's life through the CLI, as a user runs it: `serve` until SIGTERM (a graceful stop),
Ctrl-C while vLLM still starts, and a model vLLM cannot load (a fast failure with the log)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import openai
import pytest
from llm_serving.errors import ServerError
from llm_serving.server import VllmServer
from ls_vllm_testing import small_engine_env, small_engine_settings
from roadmap_lab.services import (
    ManagedProcess,
    free_port,
    http_probe,
    python_child_env,
    signal_process_group,
)

pytestmark = pytest.mark.slow
SERVER_MODULE = "vllm.entrypoints.openai.api_server"


def _serve(tmp_path: Path, port: int, stop_signal: int, ready: str | None) -> ManagedProcess:
    env = python_child_env(
        **small_engine_env(tmp_path / "run"),
        LLM_SERVING_LOG_LEVEL="INFO",
        COLUMNS="200",  # log lines unwrapped in the log file
    )
    return ManagedProcess(
        [sys.executable, "-m", "llm_serving", "serve", "--port", str(port)],
        name="llm_serving serve",
        log_path=tmp_path / "serve.log",
        ready=ready,
        env=env,
        startup_timeout_s=300,
        stop_grace_s=60,
        stop_signal=stop_signal,
    )


def _vllm_server_of(cli_pid: int, timeout_s: float = 60) -> int:
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


def _group_alive(pid: int) -> bool:
    return signal_process_group(pid, 0)  # signal 0: only checks that the group exists


def test_serve_answers_until_sigterm_then_stops_vllm_gracefully(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cli = _serve(tmp_path, port, signal.SIGTERM, ready=f"{url}/health")
    with cli:
        server = _vllm_server_of(cli.pid)
        try:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            assert [model.id for model in client.models.list().data] == ["smollm2"]
            assert f"Serving smollm2 at {url}/v1" in cli.log_tail()
            assert cli.stop() == 0
        finally:
            signal_process_group(server, signal.SIGKILL)  # only if the CLI left it behind
    assert not http_probe(f"{url}/health")()
    assert not _group_alive(server)
    assert "vLLM stopped (exit code 0)" in cli.log_tail()  # SIGTERM: vLLM drained and exited


def test_ctrl_c_during_startup_stops_vllm(tmp_path):
    port = free_port()
    cli = _serve(tmp_path, port, signal.SIGINT, ready=None)
    with cli:
        server = _vllm_server_of(cli.pid)
        try:
            time.sleep(2)  # into vLLM's startup, well before it is ready
            assert not http_probe(f"http://127.0.0.1:{port}/health")()
            # SIGINT to the CLI's process group, as a terminal's Ctrl-C (vLLM has its own). The
            # CLI's own exit code: it stopped vLLM within the grace period, without a SIGKILL.
            assert cli.stop() == 128 + signal.SIGINT
        finally:
            signal_process_group(server, signal.SIGKILL)  # only if the CLI left it behind
    assert not _group_alive(server)
    assert "stopping vLLM before it was ready" in cli.log_tail()


def test_a_broken_model_fails_fast_with_the_log_tail(tmp_path):
    model = tmp_path / "broken"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "no-such-architecture"}')
    server = VllmServer(small_engine_settings(tmp_path / "run"), model)
    # "exited with code": the child's exit is noticed (not the startup timeout's error).
    with pytest.raises(ServerError, match="exited with code") as error, server:
        pass
    assert "no-such-architecture" in str(error.value)  # the log tail names the cause
