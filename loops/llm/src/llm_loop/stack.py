"""The loop's parts on 127.0.0.1: its MLflow server (the registry of the adapter when it is
trained here, and of prompt-registry's prompts), the adapter, and llm-serving's vLLM serving the
base and the adapter; each project reached only through its PEX, HTTP and the registry."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from roadmap_lab.services import mlflow_server

from llm_loop.adapter import Adapter, reused_adapter, train_adapter
from llm_loop.settings import ENV_PREFIX, LoopSettings
from llm_loop.steps import Steps, pex_argv

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopStack:
    """The running parts: the loop's registry, the adapter, vLLM's OpenAI-compatible URL."""

    folder: Path
    tracking_uri: str
    adapter: Adapter
    base_url: str
    steps: Steps
    control: Path | None  # the zero LoRA served as settings.control_name


@contextlib.contextmanager
def tracking_server(folder: Path) -> Iterator[str]:
    """The loop's MLflow server (sqlite store and artifacts in ``folder``); yields its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    with mlflow_server(f"sqlite:///{folder.resolve() / 'mlflow.db'}", folder.resolve()) as url:
        logger.info("MLflow server (registry of the adapter and the prompts): %s", url)
        yield url


def check_inputs(settings: LoopSettings) -> Adapter | None:
    """Fail before anything starts: the three PEXes must exist, and the adapter to reuse (its
    record, returned) unless one is trained."""
    pex_argv(settings.alignment_pex, f"{ENV_PREFIX}ALIGNMENT_PEX")
    pex_argv(settings.serving_pex, f"{ENV_PREFIX}SERVING_PEX")
    pex_argv(settings.prompt_registry_pex, f"{ENV_PREFIX}PROMPT_REGISTRY_PEX")
    return None if settings.train else reused_adapter(settings.alignment_results)


def obtain_adapter(
    settings: LoopSettings, steps: Steps, folder: Path, tracking_uri: str, reused: Adapter | None
) -> Adapter:
    """The reused adapter, or one trained here (``settings.train``)."""
    if reused is not None:
        adapter = reused
    else:
        logger.info("training the adapter with llm-alignment (build-data, train-dpo)")
        adapter = train_adapter(settings, steps, folder / "alignment", tracking_uri)
    logger.info("adapter (%s): %s in %s", adapter.origin, adapter.uri, adapter.tracking_uri)
    return adapter


@contextlib.contextmanager
def loop_stack(settings: LoopSettings, folder: Path) -> Iterator[LoopStack]:
    """The MLflow server, the adapter and vLLM serving base + adapter, in ``folder``; stopped on
    exit."""
    from llm_loop.control import control_lora
    from llm_loop.serving import vllm_server

    reused = check_inputs(settings)
    folder = folder.resolve()
    steps = Steps(folder / "logs")
    with tracking_server(folder / "mlflow") as tracking_uri:
        adapter = obtain_adapter(settings, steps, folder, tracking_uri, reused)
        control = control_lora(settings, adapter, folder)
        logger.info("starting vLLM with the base and the adapter (about a minute on 2 cores)")
        with vllm_server(settings, folder / "serving", adapter, control) as base_url:
            logger.info("vLLM serves %s and %s at %s", settings.base_model_name,
                        settings.adapter_name, base_url)  # fmt: skip
            yield LoopStack(folder, tracking_uri, adapter, base_url, steps, control)
