"""The project's committed configuration files (monitoring/, datasets/): Pants resources found on
sys.path as ``projects/model-monitoring/...`` in PEXes and test sandboxes, or beside src/ in a
checkout."""

from __future__ import annotations

import sys
from pathlib import Path

from model_monitoring.errors import ModelMonitoringError

PROJECT_DIR = "projects/model-monitoring"


def project_file(relative: str) -> Path:
    """The committed file ``relative`` (to the project folder), as an absolute path (servers
    started elsewhere read it too)."""
    candidates = [Path(entry) / PROJECT_DIR for entry in sys.path if entry]
    candidates.append(Path(__file__).resolve().parents[2])
    for folder in candidates:
        if (folder / relative).is_file():
            return (folder / relative).resolve()
    raise ModelMonitoringError(f"project file {relative} not found (looked for {PROJECT_DIR})")
