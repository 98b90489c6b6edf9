"""Typed settings: where the prompt files, runs, cache and local MLflow store live, which registry
and provider to use, and the gate's threshold. Environment variables (prefix
``PROMPT_REGISTRY_``) override the defaults, CLI flags override both."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict
from roadmap_lab.settings import TrackedSettings, env_prefix

from prompt_registry import PROJECT

ProviderName = Literal["local", "openai"]
SHIPPED_PROMPTS = Path(__file__).parent / "prompts"


class BenchmarkSizes(BaseModel):
    """How much the benchmark measures; every size is a flag of ``benchmark``."""

    examples: int = Field(default=32, ge=4, description="examples of each generation run")
    repeats: int = Field(default=5, ge=2, description="interleaved repeats of each comparison")
    batch_size: int = Field(default=16, ge=2, description="batch of the batched local run")
    max_new_tokens: int = Field(default=16, ge=1, description="tokens generated per example")


class ProjectSettings(TrackedSettings):
    """Where things live and which registry and provider are used.

    ``tracking_uri`` None means no registry is configured: application code then loads prompts
    from their files, and the CLI uses a local sqlite store in ``run_dir``."""

    model_config = SettingsConfigDict(env_prefix=env_prefix(PROJECT), extra="ignore")

    # The prompt folders (one folder per prompt); default: those shipped with the package.
    prompts_dir: Path = SHIPPED_PROMPTS
    run_dir: Path = Path("runs/prompt-registry")
    experiment: str = "prompt-evals"
    provider: ProviderName = "local"
    # Local provider: an HF causal LM folder (default: SmolLM2-135M-Instruct from the cache).
    model_dir: Path | None = None
    batch_size: int = Field(default=16, ge=1)
    # OpenAI-compatible provider; the defaults reach the llm-serving project's vLLM server,
    # which serves SmolLM2 as "smollm2".
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_model: str = "smollm2"
    openai_api_key: str = "EMPTY"
    openai_concurrency: int = Field(default=8, ge=1)
    openai_timeout_s: float = Field(default=60.0, gt=0)
    # Retries of a request answered 408/409/429/5xx or cut off (the SDK's exponential backoff).
    openai_max_retries: int = Field(default=4, ge=0)
    cache: bool = True
    # The project's own gate (a pass-rate drop, not roadmap_lab.gate's macro-F1 rule).
    gate_max_drop: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="largest drop of the pass rate (candidate minus production) the gate accepts",
    )
    # A model change (the loop's adapter) must win, not only hold: None keeps the drop rule.
    gate_min_gain: float | None = Field(
        default=None,
        ge=-1,
        le=1,
        description="when set, the candidate must beat production: the lower bound of its "
        "paired pass-rate gain above this",
    )

    def cache_file(self) -> Path:
        return self.run_dir / "generations.sqlite"
