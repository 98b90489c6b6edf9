"""An online RL step: TRL's GRPOTrainer on the training prompts, a LoRA adapter on the base
model, rewarded by the verifier (and, when given, a trained reward model). The mean reward of
each logging step is logged to MLflow."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field
from roadmap_lab import verifiable

from llm_alignment.dpo import TrainOptions, common_args, lora_config
from llm_alignment.errors import PreferenceDataError


class GRPOOptions(TrainOptions):
    output_dir: Path = Path("runs/llm-alignment/grpo")
    learning_rate: float = Field(default=1e-4, gt=0)
    max_steps: int = 20
    num_generations: int = Field(default=4, ge=2)
    per_device_train_batch_size: int = Field(default=8, ge=2)
    max_completion_length: int = Field(default=48, ge=4)
    temperature: float = Field(default=1.0, gt=0)
    beta: float = Field(default=0.04, ge=0)
    register_name: str | None = "llm-alignment-grpo"


def verifier_reward(completions: list[Any], check_json: list[str], **_: Any) -> list[float]:
    """GRPO reward function: the verifier's score of each completion for its prompt's check."""
    rewards = []
    for completion, check in zip(completions, check_json, strict=True):
        text = completion[0]["content"] if isinstance(completion, list) else str(completion)
        rewards.append(verifiable.score(text, json.loads(check)))
    return rewards


def prompt_dataset(prompt_rows: list[dict[str, Any]]) -> Any:
    """Conversational prompts with their check (as JSON: checks differ in keys)."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": row["prompt"]}],
                "check_json": json.dumps(row["check"]),
            }
            for row in prompt_rows
        ]
    )


def train_grpo(
    options: GRPOOptions,
    prompt_rows: list[dict[str, Any]],
    base_model_dir: Path,
    *,
    tracking_uri: str | None = None,
    experiment: str = "llm-alignment",
    artifacts_dir: Path | None = None,
    reward_funcs: list[Callable[..., list[float]]] | None = None,
) -> dict[str, Any]:
    """Run GRPO on ``prompt_rows`` (rows with prompt and check); save (and register) the adapter.
    The reward is the verifier's score unless ``reward_funcs`` (TRL reward functions) are given."""
    import mlflow
    import torch
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from llm_alignment.generation import load_tokenizer
    from llm_alignment.tracking import (
        MetricsCallback,
        main_process_run,
        register_adapter,
        save_adapter,
    )

    if not prompt_rows:
        raise PreferenceDataError("no prompts for the RL step")
    tokenizer = load_tokenizer(base_model_dir)
    model = AutoModelForCausalLM.from_pretrained(
        base_model_dir, dtype=torch.float32, local_files_only=True
    )
    args = GRPOConfig(
        **common_args(options, options.output_dir),
        num_generations=options.num_generations,
        max_completion_length=options.max_completion_length,
        temperature=options.temperature,
        beta=options.beta,
    )
    metrics = MetricsCallback()
    is_main = args.process_index == 0
    with main_process_run(is_main, tracking_uri, experiment, artifacts_dir, "grpo") as run:
        if run is not None:
            mlflow.log_params({k: str(v) for k, v in options.model_dump().items()})
        started = time.monotonic()
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward_funcs or [verifier_reward],
            args=args,
            train_dataset=prompt_dataset(prompt_rows),
            processing_class=tokenizer,
            peft_config=lora_config(options),
            callbacks=[metrics],
        )
        output = trainer.train()
        if run is None:
            return {"is_main_process": False}
        adapter_dir = save_adapter(trainer.model, tokenizer, Path(options.output_dir) / "adapter")
        rewards = [h["reward"] for h in metrics.history if "reward" in h]
        summary: dict[str, Any] = {
            "run_id": run.info.run_id,
            "adapter_dir": str(adapter_dir),
            "steps": int(output.global_step),
            "train_seconds": round(time.monotonic() - started, 2),
            "mean_reward_first": rewards[0] if rewards else None,
            "mean_reward_last": rewards[-1] if rewards else None,
            "history": metrics.history,
            "is_main_process": True,
        }
        if options.register_name:
            summary["model_version"] = register_adapter(
                adapter_dir, base_model_dir, options.register_name
            )
    return summary
