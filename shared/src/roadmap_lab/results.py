"""Atomic file writes, and the results convention every project follows.

* The demo writes ``dist/<project>/results.json`` (+ plots): what the showcase reads.
* The benchmark writes ``dist/<project>/benchmark/results.json`` (+ plots), and copies both to the
  committed ``projects/<project>/benchmarks/`` only when asked (``publish_benchmark``).
* Figures carried from the committed benchmark into a demo's headline are marked as references
  (``reference_headline``), never counted as measured by this run.
* Every results file records the command that produced it.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict, cast

from roadmap_lab.machine import describe_machine

if TYPE_CHECKING:
    from matplotlib.figure import Figure  # pants: no-infer-dep (type only)

HEADLINE_KEYS = ("name", "value", "unit", "baseline", "target")
# Where a project's committed benchmark results live, relative to the repo root. Projects ship the
# file in their PEX as a Pants resource, so it is also found under an entry of sys.path.
COMMITTED_RESULTS = "projects/{project}/benchmarks/results.json"
BUILD_ROOT_MARKER = "pants.toml"


class Headline(TypedDict):
    """One figure a project's issue names as a target, e.g. target ``">= 30"``.

    ``baseline_unit`` is the baseline's unit when it differs from the figure's (a ratio "x" against
    HF's tok/s). ``reference`` marks a figure carried from the committed benchmark rather than
    measured by the run that wrote the file (``measured_at`` says when it was).
    """

    name: str
    value: Any
    unit: str
    baseline: Any
    target: str | None
    baseline_unit: NotRequired[str]
    reference: NotRequired[bool]
    measured_at: NotRequired[str | None]


def invocation(module: str, argv: list[str] | None = None) -> str:
    """How a CLI run is recorded in a results file: ``python -m <module> <arguments>``."""
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])


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
    """Writes ``results.json`` and the PNG plots it lists: the demo's into
    ``<dist_dir>/<project>/``, the benchmark's (``kind="benchmark"``) into
    ``<dist_dir>/<project>/benchmark/``. ``command`` is what produced them (see ``invocation``)."""

    def __init__(
        self,
        project: str,
        dist_dir: Path,
        command: str | None = None,
        kind: Literal["demo", "benchmark"] = "demo",
    ) -> None:
        self.project = project
        self.command = command
        self.folder = Path(dist_dir) / project
        if kind == "benchmark":
            self.folder = self.folder / "benchmark"
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
        """Write results.json: the caller's keys, plus project, command, status, measured_at,
        machine, headline and plots where the caller did not set them.

        Raises ValueError when a headline item lacks one of name, value, unit, baseline, target,
        or when no command says what produced the results.
        """
        payload: dict[str, Any] = {
            "project": self.project,
            "command": self.command,
            "status": "ok",
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": results["machine"] if "machine" in results else describe_machine(),
            "headline": [],
            "plots": list(self.plots),
        }
        payload.update(results)
        if not isinstance(payload["command"], str) or not payload["command"].strip():
            raise ValueError("results need the command that produced them (see invocation())")
        _validate_headline(payload["headline"])
        return atomic_write_json(self.folder / "results.json", payload)


def find_repo_root(start: Path | None = None) -> Path:
    """The checkout holding ``start`` (default: the working directory): the nearest folder at or
    above it with a pants.toml. ValueError when there is none."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / BUILD_ROOT_MARKER).is_file():
            return folder
    raise ValueError(f"{here} is not inside a Roadmap Lab checkout (no {BUILD_ROOT_MARKER} above)")


def publish_benchmark(results_file: Path, repo_root: Path | None = None) -> Path:
    """Copy a benchmark's results.json and the plots it lists to the project's committed
    ``projects/<project>/benchmarks/`` folder of the checkout; returns the copied results file.

    Plots are copied first and results.json last, each atomically, so the committed results never
    name a plot that is not there.
    """
    results = json.loads(Path(results_file).read_text(encoding="utf-8"))
    committed = (repo_root or find_repo_root()) / COMMITTED_RESULTS.format(
        project=results["project"]
    )
    if not committed.parent.parent.is_dir():
        raise ValueError(f"no project folder {committed.parent.parent} to publish into")
    for plot in results.get("plots", []):
        relative = PurePosixPath(plot)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"plot path must be relative to the results folder, got {plot!r}")
        source = Path(results_file).parent / relative
        atomic_write_bytes(committed.parent / relative, source.read_bytes())
    atomic_write_bytes(committed, Path(results_file).read_bytes())
    return committed


def committed_results(project: str) -> dict[str, Any] | None:
    """The project's committed benchmark results, or None when they are not shipped.

    Looked up under each entry of sys.path (the file is a Pants resource of the project, so it is
    inside the PEX or the test sandbox), never relative to the working directory.
    """
    relative = COMMITTED_RESULTS.format(project=project)
    for entry in sys.path:
        candidate = Path(entry or ".") / relative
        if entry and candidate.is_file():
            return json.loads(candidate.read_text(encoding="utf-8"))
    return None


def reference_headline(committed: dict[str, Any]) -> list[Headline]:
    """The committed benchmark's headline, each figure marked as a reference with its date, so a
    report shows it beside the demo's own figures without counting it as measured now."""
    return [
        cast(Headline, {**item, "reference": True, "measured_at": committed.get("measured_at")})
        for item in committed.get("headline", [])
    ]

