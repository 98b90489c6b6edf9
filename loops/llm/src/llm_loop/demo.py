"""The loop's demo (``python -m llm_loop demo``): the MLflow server, the adapter (reused from
llm-alignment's demo, or trained with ``--train``), vLLM serving base + adapter, prompt-registry
evaluating both on the held-out rules and gating the adapter; writes
``dist/llm-loop/results.json``, the side-by-side page and a plot."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from roadmap_lab.results import Headline, ResultsWriter, atomic_write_text

from llm_loop import PROJECT
from llm_loop.adapter import Adapter
from llm_loop.evaluation import GateOutcome, evaluate_control, gate_adapter
from llm_loop.report import (
    answers_page,
    control_figures,
    eval_provider,
    flips,
    headline,
    pair_answers,
    pass_rate_figure,
    per_rule,
)
from llm_loop.settings import LoopSettings
from llm_loop.stack import loop_stack

logger = logging.getLogger(__name__)
PAGE = "answers.html"
CLAIM = (
    "Served by vLLM beside its base, the DPO adapter passes more of prompt-registry's "
    "held-out-rule instructions (rule families llm-alignment never trains on) than the base: "
    "paired gain over the same prompts, 95% Newcombe interval for paired proportions, lower "
    "bound > 0. Prompt-registry's "
    "gate moves the prompt's production version to the adapter only if it passes; otherwise "
    "production stays on the base"
)


def run_demo(settings: LoopSettings, command: str) -> Path:
    """One loop in ``<run dir>/demo`` (wiped first); the results file."""
    folder = settings.run_dir.resolve() / "demo"
    shutil.rmtree(folder, ignore_errors=True)
    started = time.monotonic()
    with loop_stack(settings, folder) as stack:
        outcome = gate_adapter(
            settings, stack.steps, folder / "prompt-registry", stack.tracking_uri, stack.base_url,
            stack.adapter.trained_rules,
        )  # fmt: skip
        control_eval = (
            evaluate_control(settings, stack.steps, folder / "prompt-registry",
                             stack.tracking_uri, stack.base_url)
            if stack.control
            else None
        )  # fmt: skip
    writer = ResultsWriter(PROJECT, settings.dist_dir, command)
    figures, record = loop_record(writer, stack.adapter, outcome, control_eval)
    return writer.write({
        "claim": CLAIM, "headline": figures, **record,
        "wall_s": round(time.monotonic() - started, 1), "settings": settings_record(settings),
    })  # fmt: skip


def loop_record(
    writer: ResultsWriter, adapter: Adapter, outcome: GateOutcome, control_eval: Path | None = None
) -> tuple[list[Headline], dict[str, Any]]:
    """The headline and the rest of a loop's results (with the zero LoRA's figures when it was
    evaluated); writes its page and plot into the writer's folder."""
    pairs = pair_answers(outcome.base_eval, outcome.adapter_eval, outcome.golden)
    figures = headline(pairs, outcome.decision, outcome.reason)
    if control_eval is not None:
        figures += control_figures(
            pair_answers(outcome.base_eval, control_eval, outcome.golden),
            pair_answers(control_eval, outcome.adapter_eval, outcome.golden),
        )
    page = answers_page(pairs, figures, outcome.decision, outcome.reason)
    atomic_write_text(writer.folder / PAGE, page)
    writer.save_figure(pass_rate_figure(pairs, f"{outcome.prompt}: passes per rule"), "pass_rates")
    record = {
        "pages": [PAGE],
        "adapter": adapter.record(),
        "held_out_rules_check": (
            "the adapter's data card names none of the evaluated rules"
            if adapter.trained_rules is not None
            else "unverified: the adapter trained on a --data file, which has no data card"
        ),
        "gate": outcome.record(),
        "providers": {
            "base": eval_provider(outcome.base_eval),
            "adapter": eval_provider(outcome.adapter_eval),
        },
        "per_rule": per_rule(pairs),
        "flips": flips(pairs),
    }
    return figures, record


def settings_record(settings: LoopSettings) -> dict[str, Any]:
    return {
        "prompt": settings.prompt,
        "train": settings.train,
        "base_model_name": settings.base_model_name,
        "adapter_name": settings.adapter_name,
        "enforce_eager": settings.enforce_eager,
        "gate_min_gain": settings.gate_min_gain,
        "adapter_floor": settings.adapter_floor,
        "train_sizes": {
            "per_template": settings.train_per_template,
            "samples": settings.train_samples,
            "max_new_tokens": settings.train_max_new_tokens,
            "epochs": settings.train_epochs,
            "max_steps": settings.train_max_steps,
        },
    }
