"""A description of the machine a result was measured on."""

from __future__ import annotations

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
    """CPU model, cores, memory (GB), GPU name or None, Python version and platform."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "gpu": _gpu_name(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
