"""Export a LoRA adapter in the layout vLLM loads (``--lora-modules name=folder`` or
``LoRARequest(name, id, folder)``): adapter_config.json + adapter_model.safetensors, nothing else,
with the served base model's name in the config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from roadmap_lab.results import atomic_write_json

from llm_alignment.errors import AdapterError

VLLM_FILES = ("adapter_config.json", "adapter_model.safetensors")
# vLLM applies LoRA to these projections of Llama-family models.
VLLM_LORA_MODULES = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def export_for_vllm(
    adapter_dir: Path, dest: Path, base_model_name: str | None = None
) -> dict[str, Any]:
    """Copy the adapter into ``dest`` in vLLM's layout; raises AdapterError for an adapter vLLM
    cannot load (extra trained modules, unsupported target modules)."""
    missing = [name for name in VLLM_FILES if not (adapter_dir / name).is_file()]
    if missing:
        raise AdapterError(
            f"{adapter_dir} is not a saved PEFT LoRA adapter (missing {', '.join(missing)})"
        )
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA":
        raise AdapterError(f"{adapter_dir} holds a {config.get('peft_type')} adapter, not LoRA")
    if config.get("modules_to_save"):
        raise AdapterError(
            f"{adapter_dir} also trains {config['modules_to_save']}; vLLM loads only LoRA weights"
        )
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    unsupported = sorted(set(targets) - VLLM_LORA_MODULES)
    if unsupported:
        raise AdapterError(f"target modules vLLM cannot apply LoRA to: {', '.join(unsupported)}")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(adapter_dir / "adapter_model.safetensors", dest / "adapter_model.safetensors")
    if base_model_name:
        config["base_model_name_or_path"] = base_model_name
    atomic_write_json(dest / "adapter_config.json", config)
    return {"folder": str(dest), "rank": config.get("r"), "target_modules": sorted(targets)}
