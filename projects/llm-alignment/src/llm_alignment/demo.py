"""The demo: build a small set of verifiable pairs from SmolLM2-135M-Instruct, train a DPO LoRA
adapter on it, and measure its win-rate against the base model on held-out prompts (the headline:
rules no pair was built from; beside it, held-out templates of training rules); writes
dist/llm-alignment/results.json, plots, the samples page and the vLLM-ready adapter."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from roadmap_lab.results import (
    Headline,
    ResultsWriter,
    committed_results,
    headline_figure,
    reference_headline,
)
from roadmap_lab.stats import Interval

from llm_alignment import PROJECT, plots
from llm_alignment.data import load_dataset
from llm_alignment.dpo import DPOOptions, train_dpo
from llm_alignment.evaluate import (
    evaluate_policy,
    figure_text,
    first_per_template,
    render_html,
    summary_details,
)
from llm_alignment.export import export_for_vllm
from llm_alignment.pairs import PairOptions, build_pairs
from llm_alignment.settings import ProjectSettings, base_model_dir

logger = logging.getLogger(__name__)
WIN_RATE_TARGET = 0.65
# What the demo claims, stated before it runs; its headline judges it with the interval.
CLAIM = (
    "DPO on pairs from 7 training rules beats the base on 4 rules it never trained on: "
    "win-rate > 0.5 on one held-out prompt per template (16 templates, pass/fail judge, "
    "95% cluster bootstrap over templates); a clear win (>= 0.65) is expected to be within "
    "noise at this size"
)


class DemoSizes(BaseModel):
    """How much the demo does; the benchmark uses bigger sizes."""

    per_template: int = Field(default=2, ge=1)
    samples: int = Field(default=4, ge=2)
    max_new_tokens: int = Field(default=40, ge=4)
    epochs: float = Field(default=2.0, gt=0)
    batch_size: int = Field(default=4, ge=1)
    # Held-out prompts judged per template (each template is one cluster of the interval).
    eval_per_template: int = Field(default=1, ge=1)
    kl_samples: int = Field(default=2, ge=1, description="sampled answers per prompt for KL")
    # Judged answers get more room than sampled ones: one cut short fails "quoted".
    eval_max_new_tokens: int = Field(default=64, ge=4)


def win_rate_headline(
    label: str, figure: dict[str, Any], summary: dict[str, Any] | None = None
) -> list[Headline]:
    """A held-out-rules win-rate against the base with its interval, on two targets: better
    than the base (> 0.5) and a clear win (>= 0.65), with ``summary``'s details (a group
    summary; default: the figure's own). A figure with fewer than ``MIN_CLUSTERS`` templates
    (``verified`` false) carries no interval, so its verdict is unverified."""
    interval = None
    if figure["verified"]:
        interval = Interval(
            figure["win_rate"], figure["ci_low"], figure["ci_high"], 0.95, figure["method"],
            figure["n_clusters"],
        )  # fmt: skip
    name = f"{label} win-rate vs base (the 4 held-out rule families, pass/fail judge, ties half)"
    details = {
        "prompts": figure["n"],
        "distinct_prompts": figure.get("distinct_prompts", figure["n"]),
        "per_seed": {s: figure_text(f) for s, f in figure.get("per_seed", {}).items()},
        "templates": figure["n_clusters"],
        "length_controlled": figure_text(figure["length_controlled"]),
        **summary_details(summary or figure),
    }
    return [
        headline_figure(
            f"{name}: better than base", round(figure["win_rate"], 3), "fraction", baseline=0.5,
            target="> 0.5", interval=interval, digits=3, **details,
        ),
        headline_figure(
            f"{name}: clear win", round(figure["win_rate"], 3), "fraction", baseline=0.5,
            target=f">= {WIN_RATE_TARGET}", interval=interval, digits=3, **details,
        ),
    ]  # fmt: skip


def run_demo(settings: ProjectSettings, sizes: DemoSizes, command: str) -> Path:
    started = time.monotonic()
    logger.info("Claim: %s", CLAIM)
    model_dir = base_model_dir(settings.model_dir)
    run_dir = settings.run_dir / "demo"
    data_dir = run_dir / "data"
    pair_options = PairOptions(
        per_template=sizes.per_template,
        samples=sizes.samples,
        max_new_tokens=sizes.max_new_tokens,
        seed=settings.seed,
    )
    card = build_pairs(model_dir, data_dir, pair_options, model_name=model_dir.name)
    train, heldout_pairs, heldout_prompts, _ = load_dataset(data_dir)
    options = DPOOptions(
        output_dir=run_dir / "dpo",
        num_train_epochs=sizes.epochs,
        per_device_train_batch_size=sizes.batch_size,
        seed=settings.seed,
    )
    dpo = train_dpo(
        options,
        train,
        model_dir,
        tracking_uri=settings.resolved_tracking_uri(),
        experiment=settings.experiment,
        artifacts_dir=settings.local_artifact_root(),
    )
    report = evaluate_policy(
        model_dir,
        Path(dpo["adapter_dir"]),
        first_per_template(heldout_prompts, sizes.eval_per_template),
        max_new_tokens=sizes.eval_max_new_tokens,
        kl_samples=sizes.kl_samples,
        seed=settings.seed,
    )
    writer = ResultsWriter(PROJECT, settings.dist_dir, command=command)
    render_html(report, "DPO policy vs base (demo)", writer.folder / "samples.html")
    vllm = export_for_vllm(Path(dpo["adapter_dir"]), writer.folder / "vllm-adapter", model_dir.name)
    writer.save_figure(
        plots.reward_curves(dpo["history"], "DPO implicit rewards (demo)"), "dpo_rewards"
    )
    writer.save_figure(plots.win_rates({"DPO": report}, WIN_RATE_TARGET), "win_rate")
    last = [h for h in dpo["history"] if "rewards/accuracies" in h][-1]
    headline = win_rate_headline("DPO (demo)", report["groups"][report["headline_group"]]) + [
        headline_figure(
            "DPO reward accuracy on training pairs (last step)",
            round(last["rewards/accuracies"], 3),
            "fraction",
            baseline=0.5,
        )
    ]
    committed = committed_results(PROJECT)
    results = {
        "claim": CLAIM,
        "headline": headline,
        "reference_headline": reference_headline(committed) if committed else [],
        "data_card": card,
        "dpo": {k: v for k, v in dpo.items() if k != "history"} | {"history": dpo["history"]},
        "evaluation": {k: v for k, v in report.items() if k != "samples"},
        "vllm_adapter": vllm,
        "pages": ["samples.html"],
        "tracking_uri": settings.resolved_tracking_uri(),
        "seconds": round(time.monotonic() - started, 1),
    }
    return writer.write(results)
