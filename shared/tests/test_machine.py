from __future__ import annotations

import json
import os
import platform

from roadmap_lab.machine import KERNEL_CPU_FLAGS, describe_machine, package_versions


def test_describe_machine_reports_this_machine() -> None:
    machine = describe_machine()
    assert set(machine) == {
        "cpu_model",
        "cores",
        "cpu_flags",
        "memory_gb",
        "gpu",
        "python",
        "platform",
    }
    assert machine["cores"] == os.cpu_count()
    assert machine["python"] == platform.python_version()
    assert isinstance(machine["memory_gb"], float) and machine["memory_gb"] > 0
    assert machine["cpu_model"]
    assert machine["gpu"] is None or isinstance(machine["gpu"], str)
    json.dumps(machine)  # goes into results.json as is


def test_describe_machine_without_torch(monkeypatch) -> None:
    import importlib.util
    import sys

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch" else real_find_spec(name, *a),
    )
    monkeypatch.setitem(sys.modules, "torch", None)  # any `import torch` now raises ImportError
    assert describe_machine()["gpu"] is None


def test_cpu_flags_match_proc_cpuinfo() -> None:
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    flags_line = next(line for line in cpuinfo if line.startswith("flags"))
    present = set(flags_line.split(":", 1)[1].split())
    flags = describe_machine()["cpu_flags"]
    assert list(flags) == list(KERNEL_CPU_FLAGS)
    assert flags == {flag: flag in present for flag in KERNEL_CPU_FLAGS}


def test_package_versions_names_missing_packages() -> None:
    import pydantic

    versions = package_versions("pydantic", "no-such-distribution-here")
    assert versions == {"pydantic": pydantic.VERSION, "no-such-distribution-here": None}
