"""Merge a LoRA adapter into its base model and save a plain Hugging Face causal-LM folder
(model + tokenizer, float32), so that any tool that loads a model folder (prompt-registry's local
provider, say) runs the adapter without PEFT: the same weights vLLM serves as base + LoRA.

The adapter is a saved PEFT folder or ``models:/<name>/<version>`` (or ``@<alias>``) of a policy
this project registered (tracking.register_adapter: a pyfunc model whose ``adapter`` artifact is
the adapter folder)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from llm_alignment.errors import AdapterError, ConfigError
from llm_alignment.tracking import save_adapter

REGISTRY_PREFIX = "models:/"
# The artifact name tracking.register_adapter gives the adapter folder.
ADAPTER_ARTIFACT = "adapter"


def merge_adapter(
    source: str, dest: Path, model_dir: Path, tracking_uri: str | None
) -> dict[str, Any]:
    """Merge the adapter ``source`` into the base at ``model_dir``; write the merged model to
    ``dest`` (a staging folder beside it, renamed into place). AdapterError for a source that
    holds no LoRA adapter or a registry that cannot give it."""
    dest = dest.expanduser().resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-source-") as scratch:
        adapter_dir = adapter_folder(source, Path(scratch), tracking_uri)
        merged, tokenizer = _merged_model(model_dir, adapter_dir)
        # save_adapter stages any save_pretrained model + tokenizer and renames it into place.
        save_adapter(merged, tokenizer, dest)
    return {"source": source, "base": str(model_dir), "folder": str(dest)}


def _merged_model(model_dir: Path, adapter_dir: Path) -> tuple[Any, Any]:
    """(base with the LoRA weights folded in, on the CPU in float32; the base's tokenizer)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _require_lora(adapter_dir)
    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"{model_dir}: not a Hugging Face model folder (no config.json)")
    base = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, local_files_only=True
    )
    try:
        adapted = PeftModel.from_pretrained(base, adapter_dir)
    except (ValueError, RuntimeError, KeyError) as error:  # modules or shapes the base lacks
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise AdapterError(f"{adapter_dir} does not fit the base {model_dir}: {first}") from None
    merged = adapted.merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return merged.to(torch.float32).eval(), tokenizer


def _require_lora(adapter_dir: Path) -> None:
    import json

    config_path = adapter_dir / "adapter_config.json"
    if not config_path.is_file():
        raise AdapterError(f"{adapter_dir} holds no LoRA adapter (adapter_config.json)")
    try:
        kind = json.loads(config_path.read_text(encoding="utf-8")).get("peft_type")
    except (ValueError, AttributeError):
        raise AdapterError(f"{config_path} is not a PEFT adapter config") from None
    if kind != "LORA":
        raise AdapterError(f"{adapter_dir} holds a {kind} adapter, not LoRA: nothing to merge")


def adapter_folder(source: str, scratch: Path, tracking_uri: str | None) -> Path:
    """The adapter folder ``source`` names: the folder itself, or a registered version
    downloaded into ``scratch``."""
    if not source.startswith(REGISTRY_PREFIX):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise AdapterError(f"{source}: no such adapter folder")
        return folder
    return _download_registered(source, scratch, tracking_uri)


def _download_registered(uri: str, scratch: Path, tracking_uri: str | None) -> Path:
    # A registry that does not answer fails in seconds, not after MLflow's minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    import mlflow
    import yaml
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    if not tracking_uri:
        raise AdapterError(f"{uri}: no MLflow registry to ask; pass --tracking-uri")
    try:
        # Resolved through a client of this registry: MLflow resolves a models:/ URI given to
        # download_artifacts through the process-wide registry, whatever URI it is handed.
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        name, version = get_model_name_and_version(client, uri)
        downloaded = mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(name, version),
            dst_path=str(scratch),
            tracking_uri=tracking_uri,
        )
    except MlflowException as error:
        first = (error.message.strip().splitlines() or ["MLflow error"])[0]
        raise AdapterError(f"{uri}: {first}") from None
    except OSError as error:  # the connection, or a download that broke off
        raise AdapterError(f"{uri}: the registry at {tracking_uri} failed: {error}") from None
    model_dir = Path(downloaded)
    mlmodel = model_dir / "MLmodel"
    flavors = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) if mlmodel.is_file() else {}
    artifacts = (flavors or {}).get("flavors", {}).get("python_function", {}).get("artifacts")
    path = ((artifacts or {}).get(ADAPTER_ARTIFACT) or {}).get("path")
    if not path:
        raise AdapterError(f"{uri}: not an adapter llm-alignment registered (no adapter artifact)")
    return model_dir / path
