"""notebooks/drift_simulation.ipynb runs top to bottom with the project's library (nbclient and
a real ipykernel), and reaches the conclusions it states."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from roadmap_lab.services import python_child_env

pytestmark = pytest.mark.slow
NOTEBOOK = "projects/model-monitoring/notebooks/drift_simulation.ipynb"


def find_notebook() -> Path:
    for entry in [*sys.path, str(Path(__file__).resolve().parents[3])]:
        candidate = Path(entry or ".") / NOTEBOOK
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(NOTEBOOK)


def test_drift_simulation_notebook_executes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A kernel spec for this interpreter, and our sys.path for the kernel (a Pants sandbox or
    # PEX sets up sys.path without PYTHONPATH).
    kernel_dir = tmp_path / "jupyter" / "kernels" / "python3"
    kernel_dir.mkdir(parents=True)
    kernel_dir.joinpath("kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python",
    }))  # fmt: skip
    for name, value in python_child_env(
        JUPYTER_PATH=str(tmp_path / "jupyter"), JUPYTER_DATA_DIR=str(tmp_path / "jupyter"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), MPLBACKEND="Agg",
    ).items():  # fmt: skip
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(find_notebook(), as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={
        "metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "control (1.0) flagged: False" in text
    first = float(text.split("first factor flagged by PSI: ")[1].split(";")[0])
    assert 1.0 < first <= 1.6
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2
