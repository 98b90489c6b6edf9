"""The loop's benchmark (``python -m mlops_loop benchmark``): ``repeats`` full loops, each on a
fresh stack whose history starts on the next of ``benchmark_start_weeks`` (other data each
time, the same procedure), then the figures of report.py over all of them. The baseline,
measured in the same run, is the accuracy before the drift; the timings are stated in
production time with the clock and the traffic rate they depend on (and the real seconds)."""

from __future__ import annotations

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
    stack_s: list[float] = []
    for repeat in range(repeats):
        chosen = repeat_settings(settings, repeat)
        started = time.monotonic()
        faults = deploy_faults(chosen.start_week, "inverted")
        with loop_stack(chosen, folder / f"repeat-{repeat}", faults) as stack:
            stack_s.append(round(time.monotonic() - started, 1))
            cpu_before = {name: process_tree_cpu_seconds(pid) for name, pid in stack.pids.items()}
            timeline = folder / f"repeat-{repeat}" / "timeline.jsonl"
            outcomes.append(run_loop(stack, timeline, require_closed=False))
            for name, pid in stack.pids.items():
                conditions.add_cpu(name, process_tree_cpu_seconds(pid) - cpu_before[name])
    writer = ResultsWriter(PROJECT, settings.dist_dir, command, kind="benchmark")
    writer.save_figure(timeline_figure(outcomes[0], settings), "loop_timeline")
    results = {
        "headline": headline(outcomes, settings),
        "repeats": [loop_record(o) for o in outcomes],
        "stack_start_s": stack_s,
        "settings": {**settings_record(settings), "repeats": repeats},
        "versions": package_versions("requests", "fastapi", "uvicorn"),
        "conditions": conditions.finish(),
    }
    return writer.write(results), results
