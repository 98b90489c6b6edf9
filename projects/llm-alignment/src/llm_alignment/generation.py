"""Batched generation with a chat template (left padding), and loading a base model with or
without a LoRA adapter."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_alignment.errors import AdapterError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def load_tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def device() -> str:
    """Where models run: the GPU when one is visible, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def require_adapter(adapter_dir: Path) -> Path:
    """``adapter_dir``, refused unless it holds a saved LoRA adapter."""
    if not (adapter_dir / "adapter_config.json").is_file():
        raise AdapterError(f"{adapter_dir} holds no LoRA adapter (adapter_config.json)")
    return adapter_dir


def load_policy(model_dir: Path, adapter_dir: Path | None = None) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer): the base model, with the LoRA adapter when given, on
    the GPU when there is one."""
    import torch
    from transformers import AutoModelForCausalLM

    if adapter_dir is not None:
        require_adapter(adapter_dir)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, local_files_only=True
    )
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
    return model.to(device()).eval(), load_tokenizer(model_dir)


def chat_prompt(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    """The model's input text for a conversation, ending where the assistant's turn starts."""
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[dict[str, str]]],
    *,
    num_samples: int = 1,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 48,
    batch_size: int = 16,
    seed: int = 0,
) -> list[list[str]]:
    """``num_samples`` responses for each conversation (greedy unless ``do_sample``)."""
    import torch

    tokenizer.padding_side = "left"
    texts = [chat_prompt(tokenizer, messages) for messages in conversations]
    results: list[list[str]] = []
    torch.manual_seed(seed)
    options: dict[str, Any] = {"do_sample": do_sample, "max_new_tokens": max_new_tokens}
    if do_sample:
        options |= {"temperature": temperature, "top_p": top_p, "top_k": 0}
    prompts_per_batch = max(1, batch_size // num_samples)
    for start in range(0, len(texts), prompts_per_batch):
        batch = tokenizer(
            texts[start : start + prompts_per_batch],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(model.device)
        with torch.inference_mode():
            output = model.generate(
                **batch,
                num_return_sequences=num_samples,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **options,
            )
        decoded = tokenizer.batch_decode(
            output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
        )
        for index in range(0, len(decoded), num_samples):
            results.append([text.strip() for text in decoded[index : index + num_samples]])
    return results
