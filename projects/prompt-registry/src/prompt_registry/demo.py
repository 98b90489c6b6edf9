"""The demo: prompts registered in a fresh local MLflow store (each first production version
gated on its golden set against its floor), then two new versions of
``review-sentiment`` through the gated promotion: an improvement (promoted) and a regression
(caught; production stays put).

The first production version is the prompt as first written (``FIRST_TEMPLATE``: it asks for one
word, and SmolLM2-135M then answers "positive" to almost everything); the improvement is the
shipped file; the regression rewords its question ("happy or unhappy?"). Results, the gate's
markdown table and plots go to ``<dist>/prompt-registry/``.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from roadmap_lab.results import (
    Headline,
    ResultsWriter,
    atomic_write_text,
    committed_results,
    headline_figure,
    reference_headline,
)

from prompt_registry import PROJECT
from prompt_registry.gate import GateResult, markdown_report
from prompt_registry.harness import Harness
from prompt_registry.plots import pass_rates_figure
from prompt_registry.prompts import TEMPLATE_FILE, load_all, load_prompt
from prompt_registry.registry import PRODUCTION, load_for_app
from prompt_registry.settings import ProjectSettings

logger = logging.getLogger(__name__)

DEMO_PROMPT = "review-sentiment"
FIRST_TEMPLATE = (
    "Classify the sentiment of this product review as positive or negative.\n"
    "Review: {{review}}\n"
    "Answer with one word: positive or negative."
)
REGRESSION_TEMPLATE = "Review: {{review}}\nIs the reviewer happy or unhappy?"


def _write_template(prompts_dir: Path, template: str) -> None:
    (prompts_dir / DEMO_PROMPT / TEMPLATE_FILE).write_text(template + "\n", encoding="utf-8")


def run_demo(settings: ProjectSettings, command: str, fresh: bool = True) -> Path:
    """Run the demo; returns the results.json path."""
    started = time.monotonic()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        timings[name] = round(time.monotonic() - since, 1)
        return time.monotonic()

    if fresh and settings.run_dir.exists():
        shutil.rmtree(settings.run_dir)
    prompts_dir = settings.run_dir / "prompts"
    shutil.copytree(settings.prompts_dir, prompts_dir)
    improved_template = load_prompt(prompts_dir, DEMO_PROMPT).template
    settings = settings.model_copy(update={"prompts_dir": prompts_dir})
    harness = Harness(settings)
    registry = harness.registry
    mark = time.monotonic()

    # 1. The first version of every prompt; the demo prompt as first written.
    _write_template(prompts_dir, FIRST_TEMPLATE)
    registered = {f.name: registry.register(f, "first version")[0] for f in load_all(prompts_dir)}
    first_gate, _ = harness.promote(DEMO_PROMPT, registered[DEMO_PROMPT])
    mark = lap("register_and_first_promotion", mark)
    # Every other prompt's first production version: its golden set against its floor.
    task_gates = [
        harness.promote(name, version)[0]
        for name, version in registered.items()
        if name != DEMO_PROMPT
    ]
    mark = lap("other_prompts_first_promotion", mark)

    # 2. The improvement: registered (twice: the second is a no-op), then the gated promotion.
    _write_template(prompts_dir, improved_template)
    folder = load_prompt(prompts_dir, DEMO_PROMPT)
    improved_version, _ = registry.register(folder, "improvement: ask what the reviewer thinks")
    again, created_again = registry.register(folder)
    improvement_gate, replaced = harness.promote(DEMO_PROMPT, improved_version)
    mark = lap("improvement", mark)

    # 3. The regression: registered, then caught by the gate; production stays.
    _write_template(prompts_dir, REGRESSION_TEMPLATE)
    regression_version, _ = registry.register(
        load_prompt(prompts_dir, DEMO_PROMPT), "reworded question"
    )
    regression_gate, _ = harness.promote(DEMO_PROMPT, regression_version)
    mark = lap("regression", mark)
    _write_template(prompts_dir, improved_template)

    production = load_for_app(DEMO_PROMPT, prompts_dir, registry.tracking_uri)
    fallback = load_for_app(DEMO_PROMPT, prompts_dir, None)
    lap("load_by_alias", mark)

    gates = [improvement_gate, regression_gate]
    report = markdown_report(gates, settings.gate_max_drop)
    writer = ResultsWriter(PROJECT, settings.dist_dir, command)
    atomic_write_text(writer.folder / "gate.md", report)
    rows = [
        {**first_gate.candidate.summary(), "colour": "tab:gray"},
        *(
            {**g.candidate.summary(), "colour": "tab:green" if g.passed else "tab:red"}
            for g in gates
        ),
    ]
    writer.save_figure(
        pass_rates_figure(rows, f"{DEMO_PROMPT}: pass rate by version (SmolLM2-135M)"),
        "pass_rates",
    )
    writer.save_figure(
        pass_rates_figure(
            [
                {**g.candidate.summary(), "label": g.prompt, "colour": "tab:blue"}
                for g in [*task_gates, improvement_gate]
            ],
            "Pass rate of each prompt's production version (SmolLM2-135M)",
        ),
        "task_pass_rates",
    )
    total = round(time.monotonic() - started, 1)
    timings["total"] = total
    committed = committed_results(PROJECT)

    def gate_headline(label: str, gate: GateResult, target: str) -> Headline:
        assert gate.baseline is not None and gate.difference is not None
        return headline_figure(
            f"{label}: pass-rate difference vs production (paired); gate "
            f"{'passed' if gate.passed else 'failed'}",
            None,
            "",
            baseline=round(gate.baseline.pass_rate, 4),
            target=target,
            interval=gate.difference,
        )

    results: dict[str, Any] = {
        "headline": [
            # The improvement must pass the gate; the regression must drop past it (caught).
            gate_headline(
                f"Improvement ({DEMO_PROMPT} v{improved_version})",
                improvement_gate,
                f">= -{settings.gate_max_drop}",
            ),
            gate_headline(
                f"Regression ({DEMO_PROMPT} v{regression_version})",
                regression_gate,
                f"< -{settings.gate_max_drop}",
            ),
            headline_figure(
                "Gate decisions (improvement, regression; expected: passed, caught)",
                ", ".join("passed" if g.passed else "caught" for g in gates),
                "",
            ),
            headline_figure("Demo wall time (budget 180 s)", total, "s"),
            *(reference_headline(committed) if committed else []),
        ],
        "registered": registered,
        "unchanged_register_is_noop": {"version": again, "created": created_again},
        "first_promotion": first_gate.as_dict(),
        "prompts": {
            g.prompt: {
                "pass_rate": round(g.candidate.pass_rate, 4),
                "interval": g.candidate.pass_interval.as_dict(),
                "examples": g.candidate.n,
                "promoted": g.passed,
                "reason": g.reason,
            }
            for g in [*task_gates, improvement_gate]
        },
        "gates": [g.as_dict() for g in gates],
        "production": {
            "alias_version": registry.alias_version(DEMO_PROMPT, PRODUCTION),
            "replaced": replaced,
            "loaded_by_alias": production.source,
            "file_fallback": fallback.source,
        },
        "gate_markdown": "gate.md",
        "registry": registry.tracking_uri,
        "provider": harness.provider.identity,
        "timings_s": timings,
    }
    return writer.write(results)
