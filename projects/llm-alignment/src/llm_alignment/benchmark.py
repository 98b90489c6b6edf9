"""The full-size benchmark, in resumable stages (``stages.py``): hours on 2 cores, so each stage
writes its record when it finishes and ``--resume`` continues where a sitting stopped.

Per seed (data, training and evaluation all follow the seed):
1. ``data-seed<s>``: verifiable pairs from SmolLM2-135M-Instruct, built only from the training
   rules' training templates (the data set is kept beside the record).
2. ``dpo-seed<s>``: DPO (LoRA, precomputed reference log-probs) for ``dpo_epochs`` over those pairs,
   then the win-rate against the base (pass/fail judge) on the held-out prompts: rules no pair was
   built from (the headline) and held-out templates of training rules, with KL to the base by
   Monte Carlo.
Once, on seed 0's pairs:
3. ``reward``: the reward model's pairwise accuracy on held-out pairs. It learns the verifier's
   preferences, so it is reported as a model, never used as a judge of the DPO policy.
4. ``grpo``: GRPO rewarded by the verifier on the training prompts, its reward and KL per step,
   and its win-rate the same way.
5. ``speed``: DPO steps/s with the reference log-probs precomputed (the pass counted) against
   computed on the fly, the same pairs, ``dpo_epochs`` epochs each, alternating arms over repeats.
The report judges the stored answers again, pools the seeds (templates, then seeds, then prompts
resampled, widened to cover each seed's estimate) and computes each
verdict from its interval.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator
from rich.table import Table
from roadmap_lab.results import ResultsWriter, headline_figure
from roadmap_lab.stats import Interval, paired_ratio

from llm_alignment import PROJECT, plots
from llm_alignment.data import load_dataset
from llm_alignment.demo import WIN_RATE_TARGET, win_rate_headline
from llm_alignment.dpo import DPOOptions, train_dpo
from llm_alignment.evaluate import (
    GROUP_NAMES,
    evaluate_policy,
    figure_text,
    first_per_template,
    pooled_win_rates,
    rejudge,
    render_html,
    summarise,
)
from llm_alignment.pairs import PairOptions, build_pairs
from llm_alignment.prompts import HELDOUT_RULE, HELDOUT_TEMPLATE
from llm_alignment.reward import RewardOptions, RewardScorer, pairwise_accuracy, train_reward_model
from llm_alignment.rl import GRPOOptions, train_grpo
from llm_alignment.settings import ProjectSettings, base_model_dir
from llm_alignment.stages import StageStore, files_digest, sources_digest

SPEED_ARMS = ("on_the_fly", "precomputed")


class BenchmarkSizes(BaseModel):
    """The full-size defaults: >= 200 training pairs per seed, >= 2 DPO epochs, 3 seeds."""

    seeds: list[int] = Field(default=[0, 1, 2], min_length=1)
    per_template: int = Field(default=20, ge=1, description="prompts drawn from each template")
    samples: int = Field(default=6, ge=2, description="sampled answers per prompt for pairs")
    max_new_tokens: int = Field(default=40, ge=4, description="answer tokens when sampling pairs")
    # Judged answers get room to finish: one cut short fails "quoted" or "two sentences".
    eval_max_new_tokens: int = Field(default=96, ge=4)
    dpo_epochs: float = Field(default=2.0, gt=0)
    batch_size: int = Field(default=4, ge=1)
    eval_per_template: int = Field(default=6, ge=1, description="held-out prompts per template")
    kl_samples: int = Field(default=4, ge=1)
    grpo_steps: int = Field(default=40, ge=1)
    speed_pairs: int = Field(default=32, ge=2, description="pairs each speed arm trains on")
    speed_repeats: int = Field(default=4, ge=2, description="even: each arm first half the time")

    @field_validator("speed_repeats")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("speed_repeats must be even, so each arm goes first equally often")
        return value


class Benchmark:
    """The stages of one benchmark: ``store`` keeps their records, ``run_dir`` their scratch
    (checkpoints, adapters), which the records never need again."""

    def __init__(
        self, settings: ProjectSettings, sizes: BenchmarkSizes, store: StageStore, resume: bool
    ) -> None:
        self.sizes, self.store, self.resume = sizes, store, resume
        self.model_dir = base_model_dir(settings.model_dir)
        self.run_dir = settings.run_dir / "benchmark"
        self.records: dict[str, dict[str, Any]] = {}
        self.versions = code_and_weights(self.model_dir)
        self.tracking: dict[str, Any] = {
            "tracking_uri": settings.resolved_tracking_uri(),
            "experiment": f"{settings.experiment}-benchmark",
            "artifacts_dir": settings.local_artifact_root(),
        }

    def stage(
        self, name: str, work: Callable[[Path], dict[str, Any]], code: str, **settings: Any
    ) -> Any:
        """The stage's result: from this run when it already ran in it, else from its record
        (``--resume``, only when made with the same settings, code and weights), else computed
        now. ``code`` names the digest in ``versions`` the stage depends on."""
        if name not in self.records:
            recorded = {
                "model": self.model_dir.name,
                "weights": self.versions["weights"],
                "code": self.versions[code],
                **settings,
            }
            self.records[name] = self.store.run(name, recorded, work, resume=self.resume)
        return self.records[name]["result"]

    def trained_on(self, seed: int) -> dict[str, Any]:
        """Settings of a stage that trains on seed's pairs: the sizes and the data's record."""
        self.data(seed)
        return {
            "seed": seed,
            "data": self.records[f"data-seed{seed}"]["fingerprint"],
            **self.sizes.model_dump(exclude={"seeds"}),
        }

    def data(self, seed: int) -> tuple[list[Any], list[Any], list[Any], dict[str, Any]]:
        options = PairOptions(
            per_template=self.sizes.per_template,
            samples=self.sizes.samples,
            max_new_tokens=self.sizes.max_new_tokens,
            seed=seed,
        )

        def work(folder: Path) -> dict[str, Any]:
            return build_pairs(
                self.model_dir, folder / "data", options, model_name=self.model_dir.name
            )

        self.stage(f"data-seed{seed}", work, "data_code", pairs=options.model_dump())
        return load_dataset(self.store.folder(f"data-seed{seed}") / "data")

    def evaluate(self, adapter_dir: Path, prompts: list[Any], seed: int) -> dict[str, Any]:
        return evaluate_policy(
            self.model_dir,
            adapter_dir,
            first_per_template(prompts, self.sizes.eval_per_template),
            max_new_tokens=self.sizes.eval_max_new_tokens,
            kl_samples=self.sizes.kl_samples,
            seed=seed,
        )

    def dpo_options(self, name: str, seed: int, precompute: bool) -> DPOOptions:
        """DPO at the benchmark's sizes, into a scratch folder, registering nothing."""
        return DPOOptions(
            output_dir=self.run_dir / name,
            num_train_epochs=self.sizes.dpo_epochs,
            per_device_train_batch_size=self.sizes.batch_size,
            precompute_ref_log_probs=precompute,
            seed=seed,
            register_name=None,
        )

    def dpo(self, seed: int) -> dict[str, Any]:
        train, _, prompts, _ = self.data(seed)

        def work(_: Path) -> dict[str, Any]:
            options = self.dpo_options(f"dpo-seed{seed}", seed, precompute=True)
            summary = train_dpo(options, train, self.model_dir, **self.tracking)
            report = self.evaluate(Path(summary["adapter_dir"]), prompts, seed)
            shutil.rmtree(options.output_dir, ignore_errors=True)
            return {"training": summary, "evaluation": report}

        return self.stage(f"dpo-seed{seed}", work, "code", **self.trained_on(seed))

    def reward(self) -> dict[str, Any]:
        train, heldout_pairs, _, _ = self.data(self.sizes.seeds[0])

        def work(_: Path) -> dict[str, Any]:
            options = RewardOptions(
                output_dir=self.run_dir / "reward", num_train_epochs=self.sizes.dpo_epochs
            )
            summary = train_reward_model(options, train, self.model_dir)
            scorer = RewardScorer(self.model_dir, Path(summary["adapter_dir"]))
            accuracy = pairwise_accuracy(scorer, heldout_pairs)
            shutil.rmtree(options.output_dir, ignore_errors=True)
            return {"training": summary, "heldout": accuracy}

        return self.stage("reward", work, "code", **self.trained_on(self.sizes.seeds[0]))

    def grpo(self) -> dict[str, Any]:
        seed = self.sizes.seeds[0]
        train, _, prompts, _ = self.data(seed)
        train_prompts = [
            {"prompt": row["prompt"][-1]["content"], "check": row["check"]} for row in train
        ]

        def work(_: Path) -> dict[str, Any]:
            options = GRPOOptions(
                output_dir=self.run_dir / "grpo",
                max_steps=self.sizes.grpo_steps,
                max_completion_length=self.sizes.max_new_tokens,
                seed=seed,
                register_name=None,
            )
            summary = train_grpo(options, train_prompts, self.model_dir, **self.tracking)
            summary |= reward_ends(summary["history"], steps=5)
            report = self.evaluate(Path(summary["adapter_dir"]), prompts, seed)
            shutil.rmtree(options.output_dir, ignore_errors=True)
            return {"training": summary, "evaluation": report}

        return self.stage("grpo", work, "code", **self.trained_on(seed))

    def speed(self) -> dict[str, Any]:
        seed = self.sizes.seeds[0]
        # A seeded shuffle: the first pairs are all from the first templates (short answers).
        train = self.data(seed)[0]
        subset = random.Random(seed).sample(train, min(len(train), self.sizes.speed_pairs))

        def arm(precompute: bool, repeat: int) -> dict[str, Any]:
            options = self.dpo_options(f"speed-{repeat}-{precompute}", seed, precompute)
            summary = train_dpo(options, subset, self.model_dir, **self.tracking)
            shutil.rmtree(options.output_dir, ignore_errors=True)
            keys = ("steps", "steps_per_second", "steps_per_second_wall", "peak_memory_mb")
            return {key: summary[key] for key in keys}

        def work(_: Path) -> dict[str, Any]:
            arm(False, -1)  # warm-up, discarded: file cache, torch and MLflow start cold
            repeats: dict[str, list[dict[str, Any]]] = {name: [] for name in SPEED_ARMS}
            for repeat in range(self.sizes.speed_repeats):
                # Alternate which arm goes first, so a drift in machine speed hits both.
                order = SPEED_ARMS if repeat % 2 == 0 else SPEED_ARMS[::-1]
                for name in order:
                    repeats[name].append(arm(name == "precomputed", repeat))
            return repeats

        return self.stage("speed", work, "code", **self.trained_on(seed))


def code_and_weights(model_dir: Path) -> dict[str, str]:
    """Digests a stage's record carries, so --resume never mixes records made otherwise: the
    model (weights, tokenizer, configs) with the versions of the libraries that run it; the code
    that builds pairs (``data_code``); the code that makes a stage's weights and answers
    (``code``: training, generation, the KL estimate). Judging and reporting are left out: the
    report judges the stored answers again, so fixing them needs no new stage."""
    from importlib import metadata

    from roadmap_lab import verifiable

    from llm_alignment import data, dpo, evaluate, generation, pairs, prompts, reward, rl

    libraries = ("torch", "transformers", "trl", "peft", "accelerate")
    versions = ";".join(f"{name}={metadata.version(name)}" for name in libraries)
    model_files = sorted([*model_dir.glob("*.safetensors"), *model_dir.glob("*.json")])
    data_modules = (data, generation, pairs, prompts, verifiable)
    answering = (
        evaluate.evaluate_policy, evaluate.sampled_log_probs, evaluate._answer_log_probs,
        evaluate.mc_kl,
    )  # fmt: skip
    return {
        "weights": f"{files_digest(model_files)};{versions}",
        "data_code": files_digest([Path(m.__file__ or "") for m in data_modules]),
        "code": files_digest([Path(m.__file__ or "") for m in (*data_modules, dpo, reward, rl)])
        + sources_digest(answering),
    }


def rejudged(report: dict[str, Any]) -> dict[str, Any]:
    """A stage's evaluation judged and summarised again from its stored answers."""
    samples = rejudge(report["samples"])
    return summarise(samples) | {"kl_to_base": report["kl_to_base"], "samples": samples}


def reward_ends(history: list[dict[str, Any]], steps: int) -> dict[str, float | None]:
    """GRPO's mean reward over its first and last ``steps`` logged steps (one step is a couple
    of prompts: too few to read alone)."""
    rewards = [h["reward"] for h in history if "reward" in h]
    if not rewards:
        return {"mean_reward_first_steps": None, "mean_reward_last_steps": None}
    return {
        "mean_reward_first_steps": sum(rewards[:steps]) / len(rewards[:steps]),
        "mean_reward_last_steps": sum(rewards[-steps:]) / len(rewards[-steps:]),
    }


def speed_ratio(repeats: dict[str, list[dict[str, Any]]], key: str) -> Interval:
    """Precomputed over on-the-fly ``key`` (steps/s), paired by repeat."""
    return paired_ratio(
        [r[key] for r in repeats["precomputed"]], [r[key] for r in repeats["on_the_fly"]]
    )


def pooled_figure(pooled: dict[str, Any], group: str) -> dict[str, Any]:
    """A group's pooled figure in the shape of one seed's (its cluster count: the fewest any
    seed had), with the length-controlled one inside."""

    def shaped(figure: dict[str, Any]) -> dict[str, Any]:
        return figure | {"n_clusters": figure["n_clusters_min"]}

    return shaped(pooled[group]["raw"]) | {
        "length_controlled": shaped(pooled[group]["length_controlled"])
    }


def merged_conditions(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The conditions of a benchmark run in stages: the busiest stage's start stands for all
    (publishing refuses it when that was a busy machine), each stage's beside it."""
    busiest = max(records, key=lambda r: r["conditions"]["load_average_before"][0])
    return busiest["conditions"] | {
        "quiet": all(r["conditions"]["quiet"] for r in records),
        "stages": {
            r["stage"]: r["conditions"] | {"finished_at": r["finished_at"], "seconds": r["seconds"]}
            for r in records
        },
    }


def run_benchmark(
    settings: ProjectSettings, sizes: BenchmarkSizes, store: StageStore, command: str, *,
    resume: bool,
) -> tuple[Path, Table]:  # fmt: skip
    """Run (or resume) every stage, then write results.json from their records."""
    bench = Benchmark(settings, sizes, store, resume)
    dpo = {seed: bench.dpo(seed) for seed in sizes.seeds}
    reward, grpo, speed = bench.reward(), bench.grpo(), bench.speed()
    records = list(bench.records.values())
    pooled = pooled_win_rates({s: rejudge(dpo[s]["evaluation"]["samples"]) for s in sizes.seeds})
    first, grpo_report = rejudged(dpo[sizes.seeds[0]]["evaluation"]), rejudged(grpo["evaluation"])
    speed_wall = speed_ratio(speed, "steps_per_second_wall")

    writer = ResultsWriter(PROJECT, settings.dist_dir, command=command, kind="benchmark")
    render_html(first, f"DPO (seed {sizes.seeds[0]}) vs base", writer.folder / "samples_dpo.html")
    render_html(grpo_report, "GRPO vs base", writer.folder / "samples_grpo.html")
    writer.save_figure(
        plots.reward_curves(dpo[sizes.seeds[0]]["training"]["history"], "DPO implicit rewards"),
        "dpo_rewards",
    )
    writer.save_figure(plots.mean_reward_curve(grpo["training"]["history"]), "grpo_reward")
    writer.save_figure(
        plots.win_rates(
            {f"DPO (seed {sizes.seeds[0]})": first, "GRPO": grpo_report}, WIN_RATE_TARGET
        ),
        "win_rate",
    )
    seeds = f"{len(sizes.seeds)} seeds pooled"
    templates_figure = pooled_figure(pooled, HELDOUT_TEMPLATE)
    headline = (
        win_rate_headline(
            f"DPO ({seeds})", pooled_figure(pooled, HELDOUT_RULE), pooled[HELDOUT_RULE]["all_seeds"]
        )
        + win_rate_headline(f"GRPO (1 seed: {sizes.seeds[0]})", grpo_report["groups"][HELDOUT_RULE])
        + [
            headline_figure(
                f"DPO win-rate vs base (held-out templates of training rules, {seeds})",
                None, "fraction", baseline=0.5, interval=_interval(templates_figure), digits=3,
            ),
            headline_figure(
                "Reward model pairwise accuracy (held-out pairs; baseline: shorter answer wins)",
                None, "fraction", baseline=round(reward["heldout"]["shorter_answer_wins"], 3),
                interval=rm_interval(reward["heldout"]), digits=3,
            ),
            headline_figure(
                "DPO steps/s, precomputed reference over on the fly (wall, precompute counted)",
                None, "x", baseline=1.0, interval=speed_wall, digits=3,
            ),
        ]
    )  # fmt: skip
    results = {
        "headline": headline,
        "sizes": sizes.model_dump(),
        "stages": {r["stage"]: _stage_summary(r) for r in records},
        "data_cards": {s: bench.records[f"data-seed{s}"]["result"] for s in sizes.seeds},
        "dpo": {s: _without_samples(dpo[s]) for s in sizes.seeds},
        "dpo_pooled": pooled,
        "reward_model": reward,
        "grpo": _without_samples(grpo),
        "dpo_speed": speed | {"wall_ratio": speed_wall.as_dict()},
        "pages": ["samples_dpo.html", "samples_grpo.html"],
        "conditions": merged_conditions(records),
    }
    return writer.write(results), summary_table(pooled, grpo_report, reward, speed, speed_wall)


def _stage_summary(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record[key] for key in ("settings", "finished_at", "seconds")}


def _without_samples(stage: dict[str, Any]) -> dict[str, Any]:
    """A training stage's result without the per-prompt answers (they go to the HTML pages)."""
    evaluation = {k: v for k, v in stage["evaluation"].items() if k != "samples"}
    return {"training": stage["training"], "evaluation": evaluation}


def rm_interval(accuracy: dict[str, Any]) -> Interval:
    return Interval(
        accuracy["accuracy"], accuracy["ci_low"], accuracy["ci_high"], 0.95, accuracy["method"],
        accuracy["templates"],
    )  # fmt: skip


def _interval(figure: dict[str, Any]) -> Interval | None:
    if not figure["verified"] or figure["ci_low"] is None:
        return None
    return Interval(
        figure["win_rate"], figure["ci_low"], figure["ci_high"], 0.95, figure["method"],
        figure["n_clusters"],
    )  # fmt: skip


def summary_table(
    pooled: dict[str, Any],
    grpo: dict[str, Any],
    reward: dict[str, Any],
    speed: dict[str, list[dict[str, Any]]],
    speed_wall: Interval,
) -> Table:
    table = Table("figure", "value [95% CI] (templates, prompts)")
    for group in (HELDOUT_RULE, HELDOUT_TEMPLATE):
        figure = pooled_figure(pooled, group)
        table.add_row(f"DPO win-rate, {GROUP_NAMES[group]}, seeds pooled", figure_text(figure))
        table.add_row("  length-controlled", figure_text(figure["length_controlled"]))
        for seed, per_seed in figure["per_seed"].items():
            table.add_row(f"  seed {seed}", figure_text(per_seed))
    for group, summary in grpo["groups"].items():
        table.add_row(f"GRPO win-rate, {GROUP_NAMES[group]}", figure_text(summary))
    kl = grpo["kl_to_base"]
    table.add_row("GRPO KL to base (nats/answer)", f"{kl['kl']:.3f} (SE {kl['se']})")
    accuracy = reward["heldout"]
    table.add_row(
        "RM pairwise accuracy",
        f"{accuracy['accuracy']:.3f} [{accuracy['ci_low']:.3f}, {accuracy['ci_high']:.3f}] "
        f"n={accuracy['n']}",
    )
    for arm, repeats in speed.items():
        rates = ", ".join(f"{r['steps_per_second_wall']:.4f}" for r in repeats)
        table.add_row(f"DPO steps/s wall ({arm})", rates)
    table.add_row(
        "precomputed / on the fly (wall)",
        f"{speed_wall.estimate:.3f}x [{speed_wall.low:.3f}, {speed_wall.high:.3f}]",
    )
    return table
