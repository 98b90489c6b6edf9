"""The loop's demo (``python -m mlops_loop demo``): the whole stack on 127.0.0.1, the first
champion bootstrapped through data-pipelines' DAG, labelled traffic, a drift that hurts accuracy
from week two of the history on, and the loop closing by itself; writes
``dist/mlops-loop/results.json``, the timeline (JSON lines) and its plot."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from roadmap_lab.results import ResultsWriter, committed_results, reference_headline

from mlops_loop import PROJECT
from mlops_loop.loop_run import run_loop
from mlops_loop.report import headline, loop_record, timeline_figure
from mlops_loop.settings import LoopSettings
from mlops_loop.stack import deploy_faults, loop_stack


def run_demo(settings: LoopSettings, command: str) -> Path:
    """One loop on a fresh stack in ``<run dir>/demo`` (wiped first); the results file."""
    folder = settings.run_dir.resolve() / "demo"
    shutil.rmtree(folder, ignore_errors=True)
    started = time.monotonic()
    with loop_stack(settings, folder, deploy_faults(settings.start_week, "inverted")) as stack:
        stack_s = time.monotonic() - started
        outcome = run_loop(stack, folder / "timeline.jsonl")
    writer = ResultsWriter(PROJECT, settings.dist_dir, command)
    writer.save_figure(timeline_figure(outcome, settings), "loop_timeline")
    figures: list[Any] = headline([outcome], settings)
    committed = committed_results(PROJECT)
    if committed:
        figures += [dict(item) for item in reference_headline(committed)]
    return writer.write({
        "headline": figures,
        "wall_s": round(time.monotonic() - started, 1),
        "stack_start_s": round(stack_s, 1),
        "loop": loop_record(outcome),
        "settings": settings_record(settings),
    })  # fmt: skip


def settings_record(settings: LoopSettings) -> dict[str, object]:
    return {
        "clock": settings.clock,
        "rows_per_second_production": settings.rows_per_second,
        "start_week": settings.start_week,
        "before_minutes_production": settings.before_minutes,
        "after_minutes_production": settings.after_minutes,
        "forward_minutes_production": settings.forward_minutes,
        "benchmark_start_weeks": list(settings.benchmark_start_weeks),
        "cooldown_s_production": settings.cooldown_s,
        "window_slices": 1,
    }
