"""Model names the project knows, resolved to local folders vLLM and transformers load."""

from __future__ import annotations

from pathlib import Path

from llm_quantize.store import quantized_model_dir
from roadmap_lab.models import smollm2_dir

from llm_serving.errors import ModelNotFoundError

# Served name -> quantization scheme of llm_quantize (None: the bf16 model itself).
MODELS: dict[str, str | None] = {
    "smollm2": None,
    "smollm2-w8a8": "w8a8-int8",
    "smollm2-fp8": "fp8",
    "smollm2-w4a16": "w4a16",
}


def resolve_model(name_or_path: str) -> Path:
    """The folder of a known model name (building bf16 SmolLM2 on first use) or of a path."""
    if name_or_path in MODELS:
        scheme = MODELS[name_or_path]
        if scheme is None:
            return smollm2_dir()
        folder = quantized_model_dir(scheme)
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(
                f"{name_or_path}: no quantized checkpoint at {folder}; make it with "
                f"`./pants run projects/llm-serving:quantize -- --scheme {scheme}` "
                f"(or `python -m llm_quantize --scheme {scheme}`)"
            )
        return folder
    folder = Path(name_or_path).expanduser()
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            f"{name_or_path}: not a model folder (no config.json), nor one of {', '.join(MODELS)}"
        )
    return folder
