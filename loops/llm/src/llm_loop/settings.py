"""Typed settings of the loop: where the three projects' PEXes and llm-alignment's results are,
how the adapter is made when it is trained here, what vLLM serves and which prompt gates it.
Environment variables with the prefix ``LLM_LOOP_`` override the defaults; CLI flags override
both."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from roadmap_lab.settings import LabSettings, env_prefix

from llm_loop import PROJECT

ENV_PREFIX = env_prefix(PROJECT)


class LoopSettings(LabSettings):
    """The loop's inputs and sizes. Prefix ``LLM_LOOP_``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    run_dir: Path = Path("runs/llm-loop")

    # The projects, reached only through their PEXes (`./pants package projects/llm-alignment:cli
    # projects/llm-serving:cli projects/prompt-registry:cli`).
    alignment_pex: Path = Path("dist/projects.llm-alignment/cli.pex")
    serving_pex: Path = Path("dist/projects.llm-serving/cli.pex")
    prompt_registry_pex: Path = Path("dist/projects.prompt-registry/cli.pex")

    # The adapter. Reused (default): llm-alignment's demo registered it; its results file names
    # the tracking URI, the registered model and the version. Trained (``train``): llm-alignment's
    # build-data and train-dpo, registered in this loop's MLflow server.
    train: bool = False
    alignment_results: Path = Path("dist/llm-alignment/results.json")
    registered_model: str = "llm-loop-dpo"
    # build-data: prompts per template and responses sampled per prompt (llm-alignment's demo: 2
    # and 4), tokens per sampled response.
    train_per_template: int = Field(default=2, ge=1)
    train_samples: int = Field(default=4, ge=2)
    train_max_new_tokens: int = Field(default=40, ge=4)
    # A preference file (HH-RLHF or TRL conversational JSON lines) to train on instead of pairs
    # built here (build-data samples SmolLM2: minutes on 2 cores).
    train_data: Path | None = None
    # train-dpo: epochs over the pairs (llm-alignment's demo: 2), or steps when set (> 0).
    train_epochs: float = Field(default=2.0, gt=0)
    train_max_steps: int | None = Field(default=None, ge=1)

    # The server: llm-serving's vLLM with the base under ``base_model_name`` and the adapter
    # under ``adapter_name``. Without torch.compile vLLM starts in ~25 s instead of ~100 s; a
    # 32-prompt evaluation gains nothing from compiling.
    base_model_name: str = "smollm2"
    adapter_name: str = Field(default="dpo", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    # The noise floor (llm_loop.control): the adapter with its B matrices zeroed, served and
    # evaluated beside it under this name; empty: not served.
    control_name: str = Field(default="zero-lora", pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]*)?$")
    enforce_eager: bool = True
    serve_timeout_s: float = Field(default=600.0, gt=0)

    # The evaluation and the gate: prompt-registry's prompt whose golden set holds the rule
    # families llm-alignment never trains on. v1 is the prompt as shipped (the base); v2 the same
    # prompt naming the adapter. A new model must win, not only hold: the gate's required gain
    # (prompt-registry's --min-gain: the lower bound of the paired gain above it), and an
    # optional floor written into v2's eval config (the refusal test sets one the adapter
    # cannot reach).
    prompt: str = "alignment-heldout-rules"
    gate_min_gain: float = Field(default=0.0, ge=-1, le=1)
    adapter_floor: float | None = Field(default=None, ge=0, le=1)
    # Any one step of the projects' CLIs (training excluded) must finish within this.
    step_timeout_s: float = Field(default=600.0, gt=0)
    # Training (build-data + train-dpo) must finish within this.
    train_timeout_s: float = Field(default=1800.0, gt=0)
