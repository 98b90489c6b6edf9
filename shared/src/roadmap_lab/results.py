"""Atomic file writes, the results convention every project follows, and the verdict rule.

* A headline figure with a target carries its interval, and its verdict comes from the interval,
  never from a person: ``met`` when the whole interval is on the target's side, ``missed`` when
  the whole interval is on the other side, ``within noise`` when it straddles the target,
  ``unverified`` when there is no interval (``verdict``). ``headline_figure`` builds an item;
  ``ResultsWriter.write`` computes every verdict and refuses one that differs from the rule.
* A benchmark records its conditions (``BenchmarkConditions``: load average before and after,
  CPU-seconds of each measured process) and publishes only from a quiet machine.

* The demo writes ``dist/<project>/results.json`` (+ plots): what the showcase reads.
* The benchmark writes ``dist/<project>/benchmark/results.json`` (+ plots), and copies both to the
  committed ``<folder>/benchmarks/`` only when asked (``publish_benchmark``; the folder is
  ``projects/<project>``, or ``loops/<name>`` for a loop named ``<name>-loop``).
* Figures carried from the committed benchmark into a demo's headline are marked as references
  (``reference_headline``), never counted as measured by this run.
* Every results file records the command that produced it.
"""

from __future__ import annotations

import io
import json
import operator
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

from roadmap_lab.errors import LabError
from roadmap_lab.machine import describe_machine

if TYPE_CHECKING:
    from matplotlib.figure import Figure  # pants: no-infer-dep (type only)

HEADLINE_KEYS = ("name", "value", "unit", "baseline", "target")
# Where a project's committed benchmark results live, relative to the repo root. Projects ship the
# file in their PEX as a Pants resource, so it is also found under an entry of sys.path.
COMMITTED_RESULTS = "{folder}/benchmarks/results.json"
LOOP_SUFFIX = "-loop"
BUILD_ROOT_MARKER = "pants.toml"


class Interval(Protocol):
    """What the verdict rule reads of an interval (``roadmap_lab.stats.Interval`` has it); a
    protocol, so that results need neither numpy nor scipy."""

    @property
    def estimate(self) -> float: ...
    @property
    def low(self) -> float: ...
    @property
    def high(self) -> float: ...
    @property
    def confidence(self) -> float: ...
    @property
    def method(self) -> str: ...
    @property
    def n(self) -> int: ...


Verdict = Literal["met", "within noise", "missed", "unverified"]
VERDICTS: tuple[Verdict, ...] = ("met", "within noise", "missed", "unverified")


class IntervalFields(TypedDict):
    """A figure's interval as results files store it (its estimate is the figure's value)."""

    low: float
    high: float
    confidence: float
    method: str
    n: int


# One headline figure, as results files store it: ``name``, ``value``, ``unit``, ``baseline``,
# ``target`` (a comparison such as ``">= 30"``, or None), ``interval`` (``IntervalFields`` or None)
# and ``verdict`` (computed by the rule; None without a target), plus optional keys:
# ``baseline_unit`` when the baseline's unit differs from the figure's (a ratio "x" against HF's
# tok/s), ``reference`` for a figure carried from the committed benchmark rather than measured by
# the run that wrote the file (``measured_at`` says when it was), and details of the project's
# (per-repeat values, a note). A plain dict: projects add their own details.
Headline = dict[str, Any]


# --- the verdict rule ---------------------------------------------------------------------------

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_TARGET = re.compile(r"\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*")


@dataclass(frozen=True)
class Target:
    """A one-sided comparison a figure must satisfy: ``>= 2``, ``> 0.5``, ``< 5``."""

    op: str
    threshold: float

    def holds(self, value: float) -> bool:
        return _COMPARISONS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.op} {self.threshold:g}"


def parse_target(text: str, unit: str | None = None) -> Target:
    """The comparison in ``text`` (``">= 2"``; a trailing word only when it repeats ``unit``, as
    in ``">= 30 tok/s"``). ValueError for anything else: words such as "detected" or "reported"
    are no target; say them as a comparison or give the figure no target."""
    match = _TARGET.fullmatch(text) if isinstance(text, str) else None
    if match is not None:
        op, number, suffix = match.groups()
        if not suffix or (isinstance(unit, str) and suffix.casefold() == unit.strip().casefold()):
            return Target(op, float(number))
    raise ValueError(
        f"target {text!r} is not a comparison such as '>= 2', '> 0.5' or '< 5' "
        "(a figure without one has target None)"
    )


def verdict(
    target: str | None, interval: Mapping[str, Any] | None, unit: str | None = None
) -> Verdict | None:
    """The verdict of a figure on ``target`` from its ``interval`` (``low``/``high``): ``met``
    when every value of the interval satisfies the target, ``missed`` when none does, ``within
    noise`` when it straddles the target, ``unverified`` without an interval; None without a
    target."""
    if target is None:
        return None
    parsed = parse_target(target, unit)
    if interval is None:
        return "unverified"
    low, high = float(interval["low"]), float(interval["high"])
    if low > high:
        raise ValueError(f"interval low {low} is above its high {high}")
    # The interval's worst and best ends, seen from the target.
    worst, best = (low, high) if parsed.op in (">=", ">") else (high, low)
    if parsed.holds(worst):
        return "met"
    if not parsed.holds(best):
        return "missed"
    return "within noise"


def _rounded(value: float, digits: int, rounding: str) -> float:
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), rounding=rounding))


def interval_fields(interval: Interval, digits: int = 4) -> IntervalFields:
    """An ``roadmap_lab.stats.Interval`` as a headline stores it: rounded outward to ``digits``
    (low down, high up), so the verdict of the stored interval is never kinder than the
    measured one's (a low bound of 1.99995 must not become 2.0 and meet ``>= 2``)."""
    return {
        "low": _rounded(interval.low, digits, ROUND_FLOOR),
        "high": _rounded(interval.high, digits, ROUND_CEILING),
        "confidence": interval.confidence,
        "method": interval.method,
        "n": interval.n,
    }


def headline_figure(
    name: str,
    value: Any,
    unit: str,
    *,
    baseline: Any = None,
    target: str | None = None,
    interval: Interval | None = None,
    digits: int = 4,
    **details: Any,
) -> Headline:
    """A headline item: ``value`` is the interval's estimate when an interval is given (rounded
    to ``digits``); the verdict is computed by the rule. ``details`` are kept as extra keys
    (``baseline_unit``, per-repeat values, a note)."""
    if interval is not None:
        value = round(interval.estimate, digits)
    item: Headline = {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "target": target,
        "interval": None if interval is None else interval_fields(interval, digits),
        **details,
    }
    item["verdict"] = verdict(target, item["interval"], unit)
    return item


def with_verdicts(headline: list[Headline]) -> list[Headline]:
    """Each item with the verdict the rule gives it. ValueError when an item carries a verdict
    that differs from the rule's (verdicts are computed, never written by hand)."""
    checked = []
    for item in headline:
        computed = verdict(item.get("target"), item.get("interval"), item.get("unit"))
        if "verdict" in item and item["verdict"] != computed:
            raise ValueError(
                f"headline {item.get('name')!r} says {item['verdict']!r}, the rule says "
                f"{computed!r}: verdicts come from the interval, never by hand"
            )
        checked.append({**item, "verdict": computed})
    return checked


# --- benchmark conditions -----------------------------------------------------------------------


class BusyMachineError(LabError):
    """The machine is too loaded for a benchmark to be published."""


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


def ensure_quiet_machine(cores: int | None = None) -> None:
    """Raise BusyMachineError when the 1-minute load average exceeds the core count: a figure
    measured beside other work says more about that work than about ours."""
    cores = cores or os.cpu_count() or 1
    load = load_average()[0]
    if load > cores:
        raise BusyMachineError(
            f"load average {load:.2f} exceeds the {cores} cores: stop other work (builds, tests, "
            "other benchmarks) and wait for it to settle before publishing"
        )


def _proc_stat_seconds(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU-seconds of the process and of its reaped children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # After "(comm)": state ppid ... utime(12) stime(13) cutime(14) cstime(15), 1-based from state.
    return int(fields[1]), sum(int(value) for value in fields[11:15]) / ticks


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU-seconds used so far by process ``pid``, its live descendants and the children they
    reaped (a server and its workers). Read it before and after the measured work."""
    parents: dict[int, int] = {}
    seconds: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat_seconds(int(entry.name))) is not None:
            parents[int(entry.name)], seconds[int(entry.name)] = stat
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return round(sum(seconds.get(member, 0.0) for member in tree), 3)


class BenchmarkConditions:
    """What a benchmark ran beside: the load average when it started and when it ended, the core
    count, and the CPU-seconds of each measured process (``add_cpu``; the benchmark's own process
    is always recorded). Create it before the first measurement, write ``finish()`` into the
    results as ``conditions``."""

    def __init__(self) -> None:
        self.cores = os.cpu_count() or 1
        self.load_before = load_average()
        self._own_start = self._own_cpu()
        self.cpu_seconds: dict[str, float] = {}

    @staticmethod
    def _own_cpu() -> float:
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system

    def add_cpu(self, name: str, seconds: float) -> None:
        """Add ``seconds`` of CPU used by the measured process ``name`` (summed over repeats)."""
        self.cpu_seconds[name] = round(self.cpu_seconds.get(name, 0.0) + seconds, 3)

    def finish(self) -> dict[str, Any]:
        return {
            "cores": self.cores,
            "load_average_before": self.load_before,
            "load_average_after": load_average(),
            "quiet": self.load_before[0] <= self.cores,
            "cpu_seconds": {
                "benchmark process (with reaped children)": round(
                    self._own_cpu() - self._own_start, 3
                ),
                **self.cpu_seconds,
            },
        }


def conditions_problem(results: Mapping[str, Any]) -> str | None:
    """Why ``results`` may not be published (no recorded conditions, or a start on a machine whose
    load average exceeded its cores), or None."""
    conditions = results.get("conditions")
    if not isinstance(conditions, Mapping):
        return "the results record no conditions (BenchmarkConditions)"
    load, cores = conditions["load_average_before"][0], conditions["cores"]
    if load > cores:
        return f"it started at load average {load} on {cores} cores (a busy machine)"
    return None


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
        if item["target"] is not None:
            parse_target(item["target"], item.get("unit"))


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

        Every headline verdict is computed by the rule (``with_verdicts``). Raises ValueError
        when a headline item lacks one of name, value, unit, baseline, target, has a target that
        is not a comparison or a verdict that differs from the rule's, or when no command says
        what produced the results.
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
        payload["headline"] = with_verdicts(payload["headline"])
        return atomic_write_json(self.folder / "results.json", payload)


def find_repo_root(start: Path | None = None) -> Path:
    """The checkout holding ``start`` (default: the working directory): the nearest folder at or
    above it with a pants.toml. ValueError when there is none."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / BUILD_ROOT_MARKER).is_file():
            return folder
    raise ValueError(f"{here} is not inside a Roadmap Lab checkout (no {BUILD_ROOT_MARKER} above)")


def project_folder(project: str) -> str:
    """A project's folder in the checkout: ``projects/<project>``, or ``loops/<name>`` for a
    loop (``<name>-loop``, the name the layout test gives loops/<name>)."""
    if project.endswith(LOOP_SUFFIX):
        return f"loops/{project.removesuffix(LOOP_SUFFIX)}"
    return f"projects/{project}"


def publish_benchmark(results_file: Path, repo_root: Path | None = None) -> Path:
    """Copy a benchmark's results.json and the plots it lists to the project's committed
    ``<folder>/benchmarks/`` of the checkout (``project_folder``); returns the copied results
    file.

    Plots are copied first and results.json last, each atomically, so the committed results never
    name a plot that is not there. BusyMachineError when the results record no conditions or were
    measured on a busy machine.
    """
    results = json.loads(Path(results_file).read_text(encoding="utf-8"))
    problem = conditions_problem(results)
    if problem is not None:
        raise BusyMachineError(f"not publishing {results_file}: {problem}")
    committed = (repo_root or find_repo_root()) / COMMITTED_RESULTS.format(
        folder=project_folder(results["project"])
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
    relative = COMMITTED_RESULTS.format(folder=project_folder(project))
    for entry in sys.path:
        candidate = Path(entry or ".") / relative
        if entry and candidate.is_file():
            return json.loads(candidate.read_text(encoding="utf-8"))
    return None


def reference_headline(committed: dict[str, Any]) -> list[Headline]:
    """The committed benchmark's headline, each figure marked as a reference with its date, so a
    report shows it beside the demo's own figures without counting it as measured now."""
    return [
        {**item, "reference": True, "measured_at": committed.get("measured_at")}
        for item in committed.get("headline", [])
    ]

