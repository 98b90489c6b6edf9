"""llm-serving's vLLM (its PEX's ``serve``) with the base and the adapter from the registry,
bound to 127.0.0.1; ready once ``/v1/models`` lists both."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from roadmap_lab.services import LOCALHOST, ManagedProcess, free_port, pex_child_env

from llm_loop.adapter import Adapter
from llm_loop.settings import ENV_PREFIX, LoopSettings
from llm_loop.steps import pex_argv


def served_models(base_url: str) -> list[str]:
    """The model names ``<base_url>/models`` lists ([] when it does not answer yet)."""
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=5) as reply:
            listed = json.loads(reply.read())
    except (urllib.error.URLError, OSError, ValueError):
        return []
    return [str(item.get("id")) for item in listed.get("data", []) if isinstance(item, dict)]


@contextlib.contextmanager
def vllm_server(
    settings: LoopSettings, folder: Path, adapter: Adapter, control: Path | None = None
) -> Iterator[str]:
    """Serve the base as ``base_model_name``, the adapter as ``adapter_name`` and, when given,
    the zero LoRA ``control`` as ``control_name``; yields the OpenAI-compatible base URL
    (``http://127.0.0.1:<port>/v1``) and stops vLLM on exit."""
    port = free_port()
    base_url = f"http://{LOCALHOST}:{port}/v1"
    loras = {settings.adapter_name: adapter.uri}
    if control is not None:
        loras[settings.control_name] = str(control)
    wanted = {settings.base_model_name, *loras}
    folder.mkdir(parents=True, exist_ok=True)
    eager = "--enforce-eager" if settings.enforce_eager else "--no-enforce-eager"
    lora_args = [arg for name, spec in loras.items() for arg in ("--lora", f"{name}={spec}")]
    process = ManagedProcess(
        [*pex_argv(settings.serving_pex, f"{ENV_PREFIX}SERVING_PEX"), "serve", "--port", str(port),
         eager, *lora_args],
        name="llm-serving serve", log_path=folder / "serve.log", cwd=folder,
        ready=lambda: wanted <= set(served_models(base_url)),
        startup_timeout_s=settings.serve_timeout_s,
        # It stops vLLM's engine on SIGTERM; give it the time.
        stop_grace_s=60.0,
        env=pex_child_env(
            LLM_SERVING_TRACKING_URI=adapter.tracking_uri,
            LLM_SERVING_SERVED_MODEL_NAME=settings.base_model_name,
            LLM_SERVING_HOST=LOCALHOST,
            LLM_SERVING_RUN_DIR=str(folder),
        ),
    )  # fmt: skip
    with process:
        yield base_url
