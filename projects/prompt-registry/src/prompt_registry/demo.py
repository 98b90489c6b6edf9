"""The demo: prompts registered in a fresh local MLflow store (each first production version
gated on its golden set against its floor), then three new versions of ``review-sentiment``
through the gated promotion: an improvement (promoted), a regression (caught; production stays
put) and the same regression with the examples it fails removed from its golden set (caught:
the gate judges with production's golden set).

``review-sentiment`` is scored by the strict ``label`` scorer (the one label an answer names
must be the expected one). The first production version is the prompt as first written
(``FIRST_TEMPLATE``: it asks for one word, and SmolLM2-135M then answers "positive" to almost
everything); the improvement is the shipped file; the regression rewords the question so that
the model's answers get worse by that scorer (``REGRESSION_TEMPLATE``). Results, the gate's
markdown report and plots go to ``<dist>/prompt-registry/``.
"""

from __future__ import annotations

import json
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
from prompt_registry.golden import read_jsonl
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
# SmolLM2 then names one label in every answer, but calls negative reviews positive.
REGRESSION_TEMPLATE = "Review: {{review}}\nIs this review positive or negative?"
# The held-out rules' set belongs to the LLM loop (loops/llm gates the adapter on it): 32 answers
# of up to 96 tokens would take this demo past its time budget.
NOT_IN_DEMO = frozenset({"alignment-heldout-rules"})


def _write_template(prompts_dir: Path, template: str) -> None:
    (prompts_dir / DEMO_PROMPT / TEMPLATE_FILE).write_text(template + "\n", encoding="utf-8")


def _trim_golden(prompts_dir: Path, drop: set[str]) -> str:
    """Remove examples from the demo prompt's golden set; returns the file as it was."""
    path = prompts_dir / DEMO_PROMPT / "golden.jsonl"
    before = path.read_text(encoding="utf-8")
    kept = [json.dumps(e.to_dict()) for e in read_jsonl(path) if e.id not in drop]
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return before


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
    registered = {
        f.name: registry.register(f, "first version")[0]
        for f in load_all(prompts_dir)
        if f.name not in NOT_IN_DEMO
    }
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

    # 4. The same regression with the examples it broke removed from its golden set: the gate
    # still judges with production's set (and the trimmed set only adds a check).
    broken = {f["id"] for f in regression_gate.flipped if f["change"] == "broken"}
    golden_before = _trim_golden(prompts_dir, broken)
    trimmed_version, _ = registry.register(
        load_prompt(prompts_dir, DEMO_PROMPT), "reworded question, failing examples removed"
    )
    trimmed_gate, _ = harness.promote(DEMO_PROMPT, trimmed_version)
    mark = lap("trimmed_regression", mark)
    (prompts_dir / DEMO_PROMPT / "golden.jsonl").write_text(golden_before, encoding="utf-8")
    _write_template(prompts_dir, improved_template)

    production = load_for_app(DEMO_PROMPT, prompts_dir, registry.tracking_uri)
    fallback = load_for_app(DEMO_PROMPT, prompts_dir, None)
    lap("load_by_alias", mark)

    gates = [improvement_gate, regression_gate, trimmed_gate]
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
            gate_headline(
                f"Regression with its failing examples removed ({DEMO_PROMPT} "
                f"v{trimmed_version}), on production's golden set",
                trimmed_gate,
                f"< -{settings.gate_max_drop}",
            ),
            headline_figure(
                "Gate decisions (improvement, regression, trimmed regression; expected: passed, "
                "caught, caught)",
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
        "trimmed_regression": {
            "removed_examples": sorted(broken),
            "pass_rate_on_production_set": round(trimmed_gate.candidate.pass_rate, 4),
            "pass_rate_on_its_own_set": (
                round(trimmed_gate.new_config.candidate.pass_rate, 4)
                if trimmed_gate.new_config
                else None
            ),
        },
        "production": {
            "alias_version": registry.alias_version(DEMO_PROMPT, PRODUCTION),
            "replaced": replaced,
            "loaded_by_alias": production.source,
            "file_fallback": fallback.source,
        },
        "gate_markdown": "gate.md",
        "registry": registry.tracking_uri,
        "provider": harness.provider.name,
        "timings_s": timings,
    }
    return writer.write(results)
