from __future__ import annotations

import json
import os
import platform

from roadmap_lab.machine import describe_machine


def test_describe_machine_reports_this_machine() -> None:
    machine = describe_machine()
    assert set(machine) == {"cpu_model", "cores", "memory_gb", "gpu", "python", "platform"}
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
