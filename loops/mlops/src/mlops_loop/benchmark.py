"""The loop's benchmark (``python -m mlops_loop benchmark``): ``repeats`` full loops, each on a
fresh stack whose history starts on the next of ``benchmark_start_weeks`` (other data each
time, the same procedure), then the figures of report.py over all of them. The baseline,
measured in the same run, is the accuracy before the drift; the timings are stated in
production time with the clock and the traffic rate they depend on (and the real seconds)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from roadmap_lab.machine import package_versions
from roadmap_lab.results import BenchmarkConditions, ResultsWriter, process_tree_cpu_seconds

from mlops_loop import PROJECT
from mlops_loop.demo import settings_record
from mlops_loop.loop_run import LoopOutcome, run_loop
from mlops_loop.report import headline, loop_record, timeline_figure
from mlops_loop.settings import LoopSettings
from mlops_loop.stack import deploy_faults, loop_stack

logger = logging.getLogger(__name__)


def repeat_settings(settings: LoopSettings, repeat: int) -> LoopSettings:
    """Repeat ``repeat`` starts on the next of ``benchmark_start_weeks`` (cycled)."""
    weeks = settings.benchmark_start_weeks
    return settings.model_copy(update={"start_week": weeks[repeat % len(weeks)]})


def run_benchmark(
    settings: LoopSettings, command: str, repeats: int
) -> tuple[Path, dict[str, Any]]:
    folder = settings.run_dir.resolve() / "benchmark"
    shutil.rmtree(folder, ignore_errors=True)
    conditions = BenchmarkConditions()
    outcomes: list[LoopOutcome] = []
    failures: list[dict[str, Any]] = []
    stack_s: list[float] = []
    for repeat in range(repeats):
        chosen = repeat_settings(settings, repeat)
        try:
            outcomes.append(one_repeat(chosen, folder / f"repeat-{repeat}", conditions, stack_s))
        except Exception as error:  # a repeat that broke is a loop that did not close
            logger.exception("repeat %d (start week %s) failed", repeat, chosen.start_week)
            failures.append({"repeat": repeat, "start_week": chosen.start_week,
                             "error": f"{type(error).__name__}: {error}"})  # fmt: skip
    writer = ResultsWriter(PROJECT, settings.dist_dir, command, kind="benchmark")
    if outcomes:
        writer.save_figure(timeline_figure(outcomes[0], settings), "loop_timeline")
    results = {
        "headline": headline(outcomes, settings, failed=len(failures)),
        "repeats": [loop_record(o) for o in outcomes],
        "failed_repeats": failures,
        "stack_start_s": stack_s,
        "settings": {**settings_record(settings), "repeats": repeats},
        "versions": package_versions("requests", "fastapi", "uvicorn"),
        "conditions": conditions.finish(),
    }
    return writer.write(results), results


def one_repeat(
    settings: LoopSettings, folder: Path, conditions: BenchmarkConditions, stack_s: list[float]
) -> LoopOutcome:
    """One loop on a fresh stack; its start time goes to ``stack_s``, each part's CPU to
    ``conditions``."""
    started = time.monotonic()
    with loop_stack(settings, folder, deploy_faults(settings.start_week, "inverted")) as stack:
        stack_s.append(round(time.monotonic() - started, 1))
        cpu_before = {name: process_tree_cpu_seconds(pid) for name, pid in stack.pids.items()}
        outcome = run_loop(stack, folder / "timeline.jsonl", require_closed=False)
        for name, pid in stack.pids.items():
            conditions.add_cpu(name, process_tree_cpu_seconds(pid) - cpu_before[name])
    return outcome
