"""The benchmark: a bigger run than the demo.

1. Verifiable pairs from SmolLM2-135M-Instruct (more prompts per template).
2. DPO (LoRA) on the train pairs; win-rate against the base (pass/fail judge) on held-out rules
   and on held-out templates of training rules, 95% cluster bootstrap intervals over templates,
   length-controlled beside; the reward model's preference beside it.
3. Reward model (LoRA) on the same pairs: pairwise accuracy on the held-out pairs.
4. GRPO (LoRA) rewarded by the verifier: its win-rate the same way.
5. DPO steps/s and peak memory with and without precomputed reference log-probs, same pairs,
   same steps, measured in this run (the ratio is the figure; absolute speed drifts).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from rich.table import Table
from roadmap_lab.results import BenchmarkConditions, ResultsWriter, headline_figure

from llm_alignment import PROJECT, plots
from llm_alignment.data import load_dataset
from llm_alignment.demo import WIN_RATE_TARGET, win_rate_headline
from llm_alignment.dpo import DPOOptions, train_dpo
from llm_alignment.evaluate import GROUP_NAMES, evaluate_policy, figure_text, render_html
from llm_alignment.pairs import PairOptions, build_pairs
from llm_alignment.reward import RewardOptions, RewardScorer, pairwise_accuracy, train_reward_model
from llm_alignment.rl import GRPOOptions, train_grpo
from llm_alignment.settings import ProjectSettings, base_model_dir


class BenchmarkSizes(BaseModel):
    per_template: int = Field(default=6, ge=1)
    samples: int = Field(default=4, ge=2)
    max_new_tokens: int = Field(default=40, ge=4)
    dpo_epochs: float = Field(default=3.0, gt=0)
    speed_steps: int = Field(default=8, ge=2)
    grpo_steps: int = Field(default=12, ge=1)
    batch_size: int = Field(default=4, ge=1)
    kl_samples: int = Field(default=4, ge=1)
    # Reuse the pairs an earlier run built in the same run folder (their card says how).
    reuse_data: bool = False


def measure_dpo_speed(
    rows: list[dict[str, Any]],
    model_dir: Path,
    run_dir: Path,
    steps: int,
    batch_size: int,
    **tracking: Any,
) -> dict[str, dict[str, Any]]:
    """The same DPO steps on the same pairs, with and without precomputed reference log-probs."""
    subset = rows[: steps * batch_size]
    measured = {}
    for precompute in (False, True):
        options = DPOOptions(
            output_dir=run_dir / f"speed-precompute-{precompute}",
            max_steps=steps,
            per_device_train_batch_size=batch_size,
            precompute_ref_log_probs=precompute,
            register_name=None,
        )
        summary = train_dpo(options, subset, model_dir, **tracking)
        measured["precomputed" if precompute else "on_the_fly"] = {
            key: summary[key]
            for key in (
                "steps",
                "steps_per_second",
                "steps_per_second_wall",
                "train_seconds",
                "wall_seconds",
                "peak_memory_mb",
                "memory_device",
            )
        }
    return measured


def run_benchmark(
    settings: ProjectSettings, sizes: BenchmarkSizes, command: str
) -> tuple[Path, Table]:
    conditions = BenchmarkConditions()
    started = time.monotonic()
    model_dir = base_model_dir(settings.model_dir)
    run_dir = settings.run_dir / "benchmark"
    tracking: dict[str, Any] = {
        "tracking_uri": settings.resolved_tracking_uri(),
        "experiment": f"{settings.experiment}-benchmark",
        "artifacts_dir": settings.local_artifact_root(),
    }
    data_dir = run_dir / "data"
    if not (sizes.reuse_data and (data_dir / "card.json").is_file()):
        build_pairs(
            model_dir,
            data_dir,
            PairOptions(
                per_template=sizes.per_template,
                samples=sizes.samples,
                max_new_tokens=sizes.max_new_tokens,
                seed=settings.seed,
            ),
            model_name=model_dir.name,
        )
    train, heldout_pairs, prompts, card = load_dataset(data_dir)

    dpo = train_dpo(
        DPOOptions(
            output_dir=run_dir / "dpo",
            num_train_epochs=sizes.dpo_epochs,
            per_device_train_batch_size=sizes.batch_size,
            seed=settings.seed,
        ),
        train,
        model_dir,
        **tracking,
    )
    reward = train_reward_model(
        RewardOptions(output_dir=run_dir / "reward", num_train_epochs=sizes.dpo_epochs),
        train,
        model_dir,
    )
    reward_accuracy = pairwise_accuracy(
        RewardScorer(model_dir, Path(reward["adapter_dir"])), heldout_pairs
    )
    dpo_report = evaluate_policy(
        model_dir,
        Path(dpo["adapter_dir"]),
        prompts,
        max_new_tokens=sizes.max_new_tokens,
        kl_samples=sizes.kl_samples,
        seed=settings.seed,
        reward_model_dir=Path(reward["adapter_dir"]),
    )
    train_prompts = [
        {"prompt": row["prompt"][-1]["content"], "check": row["check"]} for row in train
    ]
    grpo = train_grpo(
        GRPOOptions(
            output_dir=run_dir / "grpo",
            max_steps=sizes.grpo_steps,
            max_completion_length=sizes.max_new_tokens,
            seed=settings.seed,
        ),
        train_prompts,
        model_dir,
        **tracking,
    )
    grpo_report = evaluate_policy(
        model_dir,
        Path(grpo["adapter_dir"]),
        prompts,
        max_new_tokens=sizes.max_new_tokens,
        kl_samples=sizes.kl_samples,
        seed=settings.seed,
        base_responses=[sample["base"] for sample in dpo_report["samples"]],
    )
    speed = measure_dpo_speed(
        train, model_dir, run_dir, sizes.speed_steps, sizes.batch_size, **tracking
    )
    on_the_fly, precomputed = speed["on_the_fly"], speed["precomputed"]
    speed_ratio = precomputed["steps_per_second"] / on_the_fly["steps_per_second"]
    wall_ratio = precomputed["steps_per_second_wall"] / on_the_fly["steps_per_second_wall"]
    memory_ratio = precomputed["peak_memory_mb"] / max(on_the_fly["peak_memory_mb"], 1e-9)

    writer = ResultsWriter(PROJECT, settings.dist_dir, command=command, kind="benchmark")
    render_html(dpo_report, "DPO policy vs base (benchmark)", writer.folder / "samples_dpo.html")
    render_html(grpo_report, "GRPO policy vs base (benchmark)", writer.folder / "samples_grpo.html")
    writer.save_figure(
        plots.reward_curves(dpo["history"], "DPO implicit rewards (benchmark)"), "dpo_rewards"
    )
    writer.save_figure(plots.mean_reward_curve(grpo["history"]), "grpo_reward")
    writer.save_figure(
        plots.win_rates({"DPO": dpo_report, "GRPO": grpo_report}, WIN_RATE_TARGET), "win_rate"
    )
    headline = (
        win_rate_headline("DPO", dpo_report)
        + win_rate_headline("GRPO", grpo_report)
        + [
            headline_figure(
                "Reward model pairwise accuracy (held-out pairs)",
                round(reward_accuracy["accuracy"], 3),
                "fraction",
                baseline=0.5,
            ),
            headline_figure(
                "DPO train steps/s with precomputed ref log-probs (ratio)",
                round(speed_ratio, 3),
                "x",
                baseline=1.0,
            ),
            headline_figure(
                "DPO peak memory with precomputed ref log-probs (ratio)",
                round(memory_ratio, 3),
                "x",
                baseline=1.0,
            ),
        ]
    )
    strip = {"samples"}
    results = {
        "headline": headline,
        "sizes": sizes.model_dump(),
        "data_card": card,
        "dpo": {k: v for k, v in dpo.items() if k != "history"} | {"history": dpo["history"]},
        "dpo_evaluation": {k: v for k, v in dpo_report.items() if k not in strip},
        "reward_model": {k: v for k, v in reward.items() if k != "history"}
        | {"heldout": reward_accuracy},
        "grpo": {k: v for k, v in grpo.items() if k != "history"} | {"history": grpo["history"]},
        "grpo_evaluation": {k: v for k, v in grpo_report.items() if k not in strip},
        "dpo_speed": speed
        | {
            "steps_per_second_ratio": speed_ratio,
            "wall_ratio": wall_ratio,
            "peak_memory_ratio": memory_ratio,
        },
        "pages": ["samples_dpo.html", "samples_grpo.html"],
        "seconds": round(time.monotonic() - started, 1),
        "conditions": conditions.finish(),
    }
    path = writer.write(results)

    table = Table("figure", "value [95% cluster CI] (templates, prompts)")
    for name, report in (("DPO", dpo_report), ("GRPO", grpo_report)):
        for group, summary in report["groups"].items():
            table.add_row(f"{name} win-rate, {GROUP_NAMES[group]}", figure_text(summary))
            table.add_row("  length-controlled", figure_text(summary["length_controlled"]))
        kl = report["kl_to_base"]
        table.add_row(f"{name} KL to base (nats/answer)", f"{kl['kl']:.3f} (SE {kl['se']})")
    for group, figure in dpo_report.get("reward_model", {}).items():
        table.add_row(f"DPO win-rate by reward model, {GROUP_NAMES[group]}", figure_text(figure))
    table.add_row(
        "RM pairwise accuracy",
        f"{reward_accuracy['accuracy']:.3f} [{reward_accuracy['ci_low']:.3f}, "
        f"{reward_accuracy['ci_high']:.3f}] n={reward_accuracy['n']}",
    )
    for label, figures in speed.items():
        table.add_row(
            f"DPO steps/s ({label})",
            f"{figures['steps_per_second']:.3f} (wall incl. setup "
            f"{figures['steps_per_second_wall']:.3f}/s, peak +{figures['peak_memory_mb']:.0f} MB "
            f"{figures['memory_device']})",
        )
    table.add_row(
        "precomputed / on-the-fly steps/s", f"{speed_ratio:.3f}x (memory {memory_ratio:.3f}x)"
    )
    return path, table
