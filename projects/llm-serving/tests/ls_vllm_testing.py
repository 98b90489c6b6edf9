"""Helpers of the tests that start real vLLM engines and servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_serving.settings import ProjectSettings

# Fast-starting engines (compilation is not what these tests test): eager, short context, small
# KV cache, few sequences.
SMALL_ENGINE: dict[str, Any] = {
    "enforce_eager": True,
    "max_model_len": 512,
    "max_num_seqs": 4,
    "kv_cache_gib": 1,
}


def small_engine_settings(run_dir: Path, **overrides: Any) -> ProjectSettings:
    fields: dict[str, Any] = {**SMALL_ENGINE, "port": 0, "run_dir": run_dir, "log_level": "WARNING"}
    return ProjectSettings(**{**fields, **overrides})


def small_engine_env(run_dir: Path) -> dict[str, str]:
    """The same settings as ``LLM_SERVING_*`` variables, for a CLI started as a process."""
    values = {**SMALL_ENGINE, "run_dir": run_dir}
    return {f"LLM_SERVING_{name.upper()}": str(value).lower() for name, value in values.items()}
