"""DPO with TRL's DPOTrainer and a PEFT LoRA adapter, tracked in MLflow.

Every option is a flag of ``train-dpo`` and a key of a YAML config (flags win over the file)::

    # The shipped config (SmolLM2-135M-Instruct, LoRA r=16, beta 0.1) on the built pairs:
    python -m llm_alignment build-data
    python -m llm_alignment train-dpo --config configs/dpo_smollm2.yaml

    # Same, with the reference log-probs computed once before training:
    python -m llm_alignment train-dpo --config configs/dpo_smollm2.yaml --precompute-ref-log-probs

    # Any preference file (HH-RLHF or TRL conversational jsonl[.gz]) and a bigger model:
    python -m llm_alignment train-dpo --data hh.jsonl.gz \\
        --model-dir /models/SmolLM2-1.7B-Instruct --lora-r 32 --max-steps 500 \\
        --output-dir runs/dpo-1.7b

    # Two processes (torchrun; gloo on CPU, tested on the tiny model):
    python -m llm_alignment train-dpo --config configs/dpo_smollm2.yaml --processes 2

    # Several GPUs (accelerate; DeepSpeed ZeRO-2 config committed under configs/, never run here):
    accelerate launch --config_file configs/accelerate_zero2.yaml -m llm_alignment train-dpo \\
        --config configs/dpo_smollm2.yaml

The adapter is saved to ``<output_dir>/adapter`` (staged, then renamed into place), the summary to
``<output_dir>/summary.json``, and the adapter registered as a version of the MLflow model
``register_name`` (local store under the run folder unless a tracking URI is set): by the main
process only, when several train.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm_alignment.errors import ConfigError

logger = logging.getLogger(__name__)

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LoraOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    lora_target_modules: list[str] = Field(default_factory=lambda: list(LORA_TARGETS))


class TrainOptions(LoraOptions):
    """Options shared by the DPO, reward-model and GRPO trainers."""

    model_dir: Path | None = None
    output_dir: Path = Path("runs/llm-alignment/dpo")
    learning_rate: float = Field(default=5e-4, gt=0)
    num_train_epochs: float = Field(default=2.0, gt=0)
    max_steps: int = Field(default=-1, description="> 0 overrides num_train_epochs")
    per_device_train_batch_size: int = Field(default=4, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    warmup_steps: int = Field(default=0, ge=0)
    max_length: int = Field(default=256, ge=16)
    logging_steps: int = Field(default=1, ge=1)
    seed: int = 0
    use_cpu: bool | None = Field(default=None, description="None: CPU when no GPU is visible")
    bf16: bool = False
    gradient_checkpointing: bool = False
    register_name: str | None = Field(default=None, description="MLflow registered model name")


class DPOOptions(TrainOptions):
    data: Path | None = Field(default=None, description="preference file; None: the built pairs")
    beta: float = Field(default=0.1, gt=0)
    loss_type: str = "sigmoid"
    precompute_ref_log_probs: bool = False
    register_name: str | None = "llm-alignment-dpo"


def load_options(cls: type[BaseModel], config: Path | None, overrides: dict[str, Any]) -> Any:
    """``cls`` from a YAML file (optional) with the non-None ``overrides`` on top."""
    values: dict[str, Any] = {}
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"config {config} does not exist")
        try:
            loaded = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"config {config} is not valid YAML: {error}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {config} must be a mapping of option: value")
        values.update({key.replace("-", "_"): value for key, value in loaded.items()})
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return cls(**values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()
        )
        raise ConfigError(f"invalid options: {problems}") from None


def lora_config(options: LoraOptions, task_type: str = "CAUSAL_LM") -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=options.lora_target_modules,
        task_type=task_type,
    )


def use_cpu(options: TrainOptions) -> bool:
    import torch

    return options.use_cpu if options.use_cpu is not None else not torch.cuda.is_available()


def common_args(options: TrainOptions, output_dir: Path) -> dict[str, Any]:
    """Trainer arguments every trainer here shares."""
    # Only when asked: the old name warns (transformers 5 renamed it activation_checkpointing).
    checkpointing = {"gradient_checkpointing": True} if options.gradient_checkpointing else {}
    return checkpointing | {
        "output_dir": str(output_dir),
        "learning_rate": options.learning_rate,
        "num_train_epochs": options.num_train_epochs,
        "max_steps": options.max_steps,
        "per_device_train_batch_size": options.per_device_train_batch_size,
        "gradient_accumulation_steps": options.gradient_accumulation_steps,
        "warmup_steps": options.warmup_steps,
        "logging_steps": options.logging_steps,
        "seed": options.seed,
        "use_cpu": use_cpu(options),
        "bf16": options.bf16,
        "save_strategy": "no",
        "report_to": "none",
        "dataloader_num_workers": 0,
        # LoRA uses every trainable weight each step; the search for unused ones only costs time.
        "ddp_find_unused_parameters": False,
    }


def preference_dataset(rows: list[dict[str, Any]]) -> Any:
    """A datasets.Dataset with only prompt/chosen/rejected (metadata columns dropped)."""
    from datasets import Dataset

    return Dataset.from_list(
        [{key: row[key] for key in ("prompt", "chosen", "rejected")} for row in rows]
    )


def train_dpo(
    options: DPOOptions,
    rows: list[dict[str, Any]],
    base_model_dir: Path,
    *,
    tracking_uri: str | None = None,
    experiment: str = "llm-alignment",
    artifacts_dir: Path | None = None,
) -> dict[str, Any]:
    """Train a LoRA adapter with DPO on ``rows``; save (and register) it; return a summary with
    the log history, steps/s, peak memory and what each process ended with.

    Under torchrun every process trains; only the main one opens the MLflow run, logs, saves
    the adapter and writes ``summary.json`` beside it. The others return ``{"is_main_process":
    False, ...}``."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    from llm_alignment.generation import load_tokenizer
    from llm_alignment.tracking import MetricsCallback, PeakMemory, ProcessRecord, main_process_run

    if not rows:
        raise ConfigError("no preference pairs to train on")
    output_dir = Path(options.output_dir)
    tokenizer = load_tokenizer(base_model_dir)
    model = AutoModelForCausalLM.from_pretrained(
        base_model_dir, dtype=torch.float32, local_files_only=True
    )
    args = DPOConfig(
        **common_args(options, output_dir),
        beta=options.beta,
        loss_type=[options.loss_type],
        max_length=options.max_length,
        precompute_ref_log_probs=options.precompute_ref_log_probs,
    )
    is_main = args.process_index == 0
    metrics, processes = MetricsCallback(), ProcessRecord()
    with main_process_run(is_main, tracking_uri, experiment, artifacts_dir, "dpo") as run:
        if run is not None:
            mlflow_params(options, base_model_dir, len(rows), args.world_size)
        started = time.monotonic()
        with PeakMemory() as memory:
            trainer = DPOTrainer(
                model=model,
                args=args,
                train_dataset=preference_dataset(rows),
                processing_class=tokenizer,
                peft_config=lora_config(options),
                callbacks=[metrics, processes],
            )
            output = trainer.train()
        wall = time.monotonic() - started
        if run is None:
            return {"is_main_process": False, "processes": processes.processes}
        return finish_dpo_run(
            options,
            run,
            trainer,
            tokenizer,
            base_model_dir,
            summary={
                "run_id": run.info.run_id,
                "adapter_dir": str(output_dir / "adapter"),
                "steps": int(output.global_step),
                "pairs": len(rows),
                "world_size": args.world_size,
                "processes": processes.processes,
                **speed(int(output.global_step), output.metrics, wall),
                "peak_memory_mb": round(memory.peak_mb, 1),
                "memory_device": memory.device,
                "precompute_ref_log_probs": options.precompute_ref_log_probs,
                "history": metrics.history,
            },
        )


def mlflow_params(options: DPOOptions, base_model_dir: Path, pairs: int, world_size: int) -> None:
    import mlflow

    mlflow.log_params(
        {k: str(v) for k, v in options.model_dump().items()}
        | {"base_model": str(base_model_dir), "pairs": pairs, "world_size": world_size}
    )


def speed(steps: int, metrics: dict[str, Any], wall: float) -> dict[str, float]:
    """Steps/s by the trainer's own clock and by the wall clock (the latter counts the
    precompute pass, which runs before the trainer's clock starts)."""
    train_seconds = float(metrics.get("train_runtime", wall))
    return {
        "train_seconds": round(train_seconds, 2),
        "steps_per_second": round(steps / train_seconds, 4),
        "wall_seconds": round(wall, 2),
        "steps_per_second_wall": round(steps / wall, 4),
    }


def finish_dpo_run(
    options: DPOOptions,
    run: Any,
    trainer: Any,
    tokenizer: Any,
    base_model_dir: Path,
    summary: dict[str, Any],
) -> dict[str, Any]:
    """Main process: save the adapter (atomically), log memory and speed, register the adapter,
    write ``summary.json`` beside it."""
    import mlflow
    from roadmap_lab.results import atomic_write_json

    from llm_alignment.tracking import register_adapter, save_adapter

    adapter_dir = save_adapter(trainer.model, tokenizer, Path(summary["adapter_dir"]))
    mlflow.log_metrics(
        {
            "peak_memory_mb": summary["peak_memory_mb"],
            "steps_per_second_wall": summary["steps_per_second_wall"],
        }
    )
    if options.register_name:
        summary["model_version"] = register_adapter(
            adapter_dir, base_model_dir, options.register_name
        )
        summary["registered_model"] = options.register_name
    summary["is_main_process"] = True
    atomic_write_json(Path(options.output_dir) / "summary.json", summary)
    return summary


def sequence_logprob(
    model: Any, tokenizer: Any, prompt: list[dict[str, str]], response: str
) -> float:
    """Sum of the log-probabilities of ``response``'s tokens after the chat-formatted prompt."""
    import torch

    from llm_alignment.generation import chat_prompt

    prefix = chat_prompt(tokenizer, prompt)
    start = len(tokenizer(prefix, add_special_tokens=False)["input_ids"])
    ids = tokenizer(prefix + response, add_special_tokens=False, return_tensors="pt")["input_ids"]
    ids = ids.to(model.device)
    with torch.inference_mode():
        logits = model(ids).logits[0, start - 1 : -1].float()
    targets = ids[0, start:]
    return float(torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).sum())


def implicit_reward_margins(
    model: Any, tokenizer: Any, rows: list[dict[str, Any]], beta: float
) -> list[float]:
    """DPO's implicit reward margin of each pair under a PEFT policy (reference = adapter off):
    beta x [(log pi - log ref)(chosen) - (log pi - log ref)(rejected)]."""
    margins = []
    for row in rows:
        logps = {}
        for key in ("chosen", "rejected"):
            response = row[key][0]["content"]
            policy = sequence_logprob(model, tokenizer, row["prompt"], response)
            with model.disable_adapter():
                reference = sequence_logprob(model, tokenizer, row["prompt"], response)
            logps[key] = policy - reference
        margins.append(beta * (logps["chosen"] - logps["rejected"]))
    return margins
