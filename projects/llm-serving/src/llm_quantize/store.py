"""Where quantized checkpoints live; shared by the quantizer and the server (both resolves)."""

from __future__ import annotations

from pathlib import Path

from roadmap_lab.models import models_dir

from llm_quantize.errors import UnknownSchemeError

# Scheme name -> what it is. W8A8 INT8 is the one faster than bf16 on CPU (see the README);
# fp8 is for GPUs (Hopper/Ada); w4a16 trades quality for memory.
SCHEMES = {
    "w8a8-int8": "INT8 weights (per channel) and activations (per token), SmoothQuant + GPTQ",
    "fp8": "FP8 weights (per channel) and activations (dynamic per token), no calibration",
    "w4a16": "INT4 weights (group 64, GPTQ), 16-bit activations",
}
REPORT_FILE = "quantization.json"


def quantized_model_dir(scheme: str) -> Path:
    """``<cache>/models/smollm2-135m-instruct-<scheme>``: the checkpoint ``llm_quantize`` writes."""
    if scheme not in SCHEMES:
        raise UnknownSchemeError(
            f"unknown quantization scheme {scheme!r}; choose one of {', '.join(SCHEMES)}"
        )
    return models_dir() / f"smollm2-135m-instruct-{scheme}"
