"""A reward model: TRL's RewardTrainer with a LoRA adapter on a sequence-classification head
(one label) over the base model, trained on the preference pairs and judged by pairwise accuracy
on held-out pairs (the chosen answer must get the higher reward)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import Field

from llm_alignment.dpo import TrainOptions, common_args, lora_config, preference_dataset
from llm_alignment.errors import PreferenceDataError


class RewardOptions(TrainOptions):
    output_dir: Path = Path("runs/llm-alignment/reward")
    learning_rate: float = Field(default=5e-4, gt=0)
    num_train_epochs: float = Field(default=3.0, gt=0)
    register_name: str | None = None


def _classifier(base_model_dir: Path) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification

    from llm_alignment.generation import load_tokenizer

    tokenizer = load_tokenizer(base_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_model_dir, num_labels=1, dtype=torch.float32, local_files_only=True
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def train_reward_model(
    options: RewardOptions, rows: list[dict[str, Any]], base_model_dir: Path
) -> dict[str, Any]:
    """Train the reward model's LoRA adapter (and score head) on ``rows``; save it."""
    from trl import RewardConfig, RewardTrainer

    from llm_alignment.tracking import MetricsCallback, save_adapter

    if not rows:
        raise PreferenceDataError("no preference pairs to train the reward model on")
    model, tokenizer = _classifier(base_model_dir)
    args = RewardConfig(**common_args(options, options.output_dir), max_length=options.max_length)
    metrics = MetricsCallback()
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=preference_dataset(rows),
        processing_class=tokenizer,
        peft_config=lora_config(options, task_type="SEQ_CLS"),
        callbacks=[metrics],
    )
    started = time.monotonic()
    output = trainer.train()
    adapter_dir = Path(options.output_dir) / "adapter"
    if args.process_index == 0:  # one writer under torchrun
        save_adapter(trainer.model, tokenizer, adapter_dir)
    return {
        "adapter_dir": str(adapter_dir),
        "steps": int(output.global_step),
        "train_seconds": round(time.monotonic() - started, 2),
        "history": metrics.history,
    }


class RewardScorer:
    """Scores (prompt, response) pairs with a trained reward model."""

    def __init__(self, base_model_dir: Path, adapter_dir: Path) -> None:
        from peft import PeftModel

        from llm_alignment.generation import device, require_adapter

        require_adapter(adapter_dir)
        model, self.tokenizer = _classifier(base_model_dir)
        self.model = PeftModel.from_pretrained(model, adapter_dir).to(device()).eval()

    def score(self, prompts: list[str], responses: list[str], batch_size: int = 16) -> list[float]:
        import torch

        texts = [
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                tokenize=False,
            )
            for p, r in zip(prompts, responses, strict=True)
        ]
        self.tokenizer.padding_side = "right"
        rewards: list[float] = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                texts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=512,
                add_special_tokens=False,
            ).to(self.model.device)
            with torch.inference_mode():
                rewards += self.model(**batch).logits[:, 0].float().tolist()
        return rewards


def pairwise_accuracy(scorer: RewardScorer, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Share of pairs whose chosen answer gets the higher reward, with a cluster bootstrap
    interval over templates (pairs of one template are not independent; Wilson's when the rows
    name fewer than two templates), and beside it the accuracy of "the shorter answer wins"
    on the same pairs: what a reward model that learnt only length would score."""
    from roadmap_lab import verifiable
    from roadmap_lab.stats import cluster_bootstrap_mean, wilson_interval

    if not rows:
        raise PreferenceDataError("no held-out pairs to measure pairwise accuracy on")
    prompts = [row["prompt"][-1]["content"] for row in rows]
    chosen = scorer.score(prompts, [row["chosen"][0]["content"] for row in rows])
    rejected = scorer.score(prompts, [row["rejected"][0]["content"] for row in rows])
    correct = [float(c > r) for c, r in zip(chosen, rejected, strict=True)]
    templates = [row.get("template_id", row.get("rule", "")) for row in rows]
    if len(set(templates)) >= 2:
        interval = cluster_bootstrap_mean(correct, templates)
    else:
        interval = wilson_interval(sum(correct), len(rows))

    def length(row: dict[str, Any], key: str) -> int:
        return len(verifiable.words(row[key][0]["content"]))

    shorter = [
        0.5 if length(row, "chosen") == length(row, "rejected")
        else float(length(row, "chosen") < length(row, "rejected"))
        for row in rows
    ]  # fmt: skip
    return {
        "accuracy": interval.estimate,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "method": interval.method,
        "n": len(rows),
        "templates": len(set(templates)),
        "shorter_answer_wins": sum(shorter) / len(rows),
        "mean_margin": sum(c - r for c, r in zip(chosen, rejected, strict=True)) / len(rows),
    }
