"""Atomic file writes, and the folder of ``results.json`` + plots each project writes in dist/."""

from __future__ import annotations

import io
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from roadmap_lab.machine import describe_machine

if TYPE_CHECKING:
    from matplotlib.figure import Figure  # pants: no-infer-dep (type only)

HEADLINE_KEYS = ("name", "value", "unit", "baseline", "target")


class Headline(TypedDict):
    """One figure a project's issue names as a target, e.g. target ``">= 30"``."""

    name: str
    value: Any
    unit: str
    baseline: Any
    target: str


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync and rename.

    Readers see the old file or the new one, never a partial one; the temp file is removed on
    failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; results are meant to be read
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Atomically write ``text`` to ``path``."""
    return atomic_write_bytes(path, text.encode(encoding))


def _json_default(value: Any) -> Any:
    # numpy / torch scalars and arrays, and paths, are common in ML results.
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def atomic_write_json(path: Path, obj: Any) -> Path:
    """Serialise ``obj`` as indented JSON, then write it atomically; nothing is written on error."""
    text = json.dumps(obj, indent=2, default=_json_default) + "\n"
    return atomic_write_text(path, text)


def _validate_headline(headline: Any) -> None:
    if not isinstance(headline, list):
        raise ValueError(f"headline must be a list of dicts, got {type(headline).__name__}")
    for index, item in enumerate(headline):
        if not isinstance(item, dict):
            raise ValueError(f"headline[{index}] must be a dict, got {type(item).__name__}")
        missing = [key for key in HEADLINE_KEYS if key not in item]
        if missing:
            raise ValueError(
                f"headline[{index}] ({item.get('name', '?')}) is missing {', '.join(missing)}; "
                f"each item needs {', '.join(HEADLINE_KEYS)}"
            )


class ResultsWriter:
    """Writes ``<dist_dir>/<project>/results.json`` and the PNG plots it lists."""

    def __init__(self, project: str, dist_dir: Path) -> None:
        self.project = project
        self.folder = Path(dist_dir) / project
        self.plots: list[str] = []

    def save_figure(self, fig: Figure, name: str) -> str:
        """Save a matplotlib figure as ``<name>.png`` and return its path relative to the folder."""
        file_name = name if name.endswith(".png") else f"{name}.png"
        if Path(file_name).name != file_name:
            raise ValueError(f"figure name must be a plain file name, got {name!r}")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        atomic_write_bytes(self.folder / file_name, buffer.getvalue())
        if file_name not in self.plots:
            self.plots.append(file_name)
        return file_name

    def write(self, results: dict[str, Any]) -> Path:
        """Write results.json: the caller's keys, plus project, status, measured_at, machine,
        headline and plots where the caller did not set them.

        Raises ValueError when a headline item lacks one of name, value, unit, baseline, target.
        """
        payload: dict[str, Any] = {
            "project": self.project,
            "status": "ok",
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": results["machine"] if "machine" in results else describe_machine(),
            "headline": [],
            "plots": list(self.plots),
        }
        payload.update(results)
        _validate_headline(payload["headline"])
        return atomic_write_json(self.folder / "results.json", payload)
