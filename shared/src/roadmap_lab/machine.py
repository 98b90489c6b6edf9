"""A description of the machine a result was measured on, and of the library versions measured."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
from pathlib import Path
from typing import Any


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


# CPU features that decide which kernels torch, oneDNN and vLLM pick (bf16 and int8 matmuls).
KERNEL_CPU_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
)


def _cpu_flags() -> dict[str, bool] | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return {flag: flag in present for flag in KERNEL_CPU_FLAGS}
    except OSError:
        pass
    return None


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gpu_name() -> str | None:
    # torch is optional: projects without it still describe their machine.
    if importlib.util.find_spec("torch") is None:
        return None
    import torch  # pants: no-infer-dep (optional: used only where installed)

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def describe_machine() -> dict[str, Any]:
    """CPU model, cores, the CPU flags that decide kernel choice, memory (GB), GPU name or None,
    Python version and platform."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": _cpu_flags(),
        "memory_gb": _memory_gb(),
        "gpu": _gpu_name(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def package_versions(*names: str) -> dict[str, str | None]:
    """The installed version of each distribution (None when it is not installed), for the
    ``versions`` of a results file: a figure is only meaningful with what it measured."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions
