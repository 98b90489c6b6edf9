"""LoRA adapters served beside the base model: ``serve --lora NAME=PATH`` or
``--lora NAME=models:/<registered name>/<version>`` (an MLflow model version whose pyfunc model
carries the adapter folder as its ``adapter`` artifact, as llm-alignment registers it).

Every adapter is checked before vLLM starts (a PEFT LoRA folder vLLM can load), so bad input is
one line, not a vLLM traceback a minute later. Registry look-ups fail closed: no tracking URI, an
unknown version or a registry that does not answer stop ``serve``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from llm_serving.errors import LoraError

REGISTRY_PREFIX = "models:/"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
# The artifact name under which llm-alignment's pyfunc model logs the adapter folder.
ADAPTER_ARTIFACT = "adapter"
# vLLM accepts only these values of --max-lora-rank.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class LoraAdapter:
    """One adapter to serve: the model name clients ask for, its folder and rank."""

    name: str
    folder: Path
    rank: int
    source: str  # what was given: a path or a models:/ URI

    def module_arg(self) -> str:
        return f"{self.name}={self.folder}"


def split_spec(spec: str) -> tuple[str, str]:
    """``NAME=PATH`` (or ``NAME=models:/...``) into its two parts."""
    name, sep, source = spec.partition("=")
    name, source = name.strip(), source.strip()
    if not sep or not source:
        raise LoraError(f"--lora takes NAME=PATH or NAME=models:/<name>/<version>, got {spec!r}")
    if not _NAME.fullmatch(name):
        raise LoraError(f"--lora {spec!r}: the name must be letters, digits, '.', '_' or '-'")
    return name, source


def adapter_rank(folder: Path) -> int:
    """The rank of the PEFT LoRA adapter in ``folder``; LoraError when vLLM could not load it."""
    if not folder.is_dir():
        raise LoraError(f"{folder}: no such adapter folder")
    config_path = folder / ADAPTER_CONFIG
    if not config_path.is_file() or not any((folder / n).is_file() for n in ADAPTER_WEIGHTS):
        raise LoraError(
            f"{folder}: not a PEFT adapter (needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS[0]})"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise LoraError(f"{config_path}: unreadable ({error})") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        kind = config.get("peft_type") if isinstance(config, dict) else None
        raise LoraError(f"{folder}: a {kind} adapter, not LoRA")
    rank = config.get("r")
    if not isinstance(rank, int) or not 1 <= rank <= VLLM_LORA_RANKS[-1]:
        raise LoraError(f"{folder}: LoRA rank {rank!r} is not one vLLM serves (1-512)")
    return rank


def max_lora_rank(adapters: list[LoraAdapter]) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that fits every adapter."""
    largest = max(adapter.rank for adapter in adapters)
    return next(rank for rank in VLLM_LORA_RANKS if rank >= largest)


def resolve_adapters(
    specs: list[str], base_name: str, download_dir: Path, tracking_uri: str | None
) -> list[LoraAdapter]:
    """Check every ``NAME=SOURCE`` and return the adapters to serve (registry versions are
    downloaded under ``download_dir``)."""
    adapters: list[LoraAdapter] = []
    for spec in specs:
        name, source = split_spec(spec)
        if name == base_name or name in {adapter.name for adapter in adapters}:
            raise LoraError(f"--lora {spec!r}: the name {name!r} is already served")
        if source.startswith(REGISTRY_PREFIX):
            folder = download_registered(source, download_dir / name, tracking_uri)
        else:
            folder = Path(source).expanduser().resolve()
        adapters.append(LoraAdapter(name, folder, adapter_rank(folder), source))
    return adapters


def download_registered(uri: str, dest: Path, tracking_uri: str | None) -> Path:
    """Download the model version ``uri`` into ``dest`` (replacing what was there, atomically)
    and return its adapter folder."""
    if not tracking_uri:
        raise LoraError(
            f"{uri}: no MLflow registry to ask; set LLM_SERVING_TRACKING_URI or MLFLOW_TRACKING_URI"
        )
    # A registry that does not answer fails in seconds, not after MLflow's minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.exceptions import MlflowException

    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        name, version, alias = _name_and_version(uri)
        model_version = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
        # The version's own artifact location: MLflow resolves a models:/ URI given to
        # download_artifacts through the process-wide registry, not this one.
        downloaded = mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(name, model_version.version),
            dst_path=str(staging),
            tracking_uri=tracking_uri,
        )
        model_dir = Path(downloaded).relative_to(staging)  # a folder location keeps its name
        relative = model_dir / _adapter_artifact(staging / model_dir, uri)
        _replace(staging, dest)
    except MlflowException as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise LoraError(f"{uri}: {_first_line(error.message)}") from None
    except OSError as error:  # the registry's connection, or a download that broke off
        shutil.rmtree(staging, ignore_errors=True)
        raise LoraError(f"{uri}: the registry at {tracking_uri} failed: {error}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest / relative


def _name_and_version(uri: str) -> tuple[str, str, str]:
    """(name, version, alias) of ``models:/name/3`` or ``models:/name@alias``."""
    path = uri.removeprefix(REGISTRY_PREFIX)
    name, _, version = path.rpartition("/")
    alias = ""
    if "/" not in path and "@" in path:
        (name, _, alias), version = path.partition("@"), ""
    if not name or not (version.isdigit() or alias):
        raise LoraError(f"{uri}: expected models:/<registered model>/<version> or @<alias>")
    return name, version, alias


def _adapter_artifact(model_dir: Path, uri: str) -> Path:
    """The adapter folder's path inside a downloaded pyfunc model (from its MLmodel file)."""
    import yaml

    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        raise LoraError(f"{uri}: the model version holds no MLmodel file")
    flavors = (yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}).get("flavors", {})
    artifacts = flavors.get("python_function", {}).get("artifacts") or {}
    path = (artifacts.get(ADAPTER_ARTIFACT) or {}).get("path")
    if not path:
        raise LoraError(f"{uri}: the model version has no {ADAPTER_ARTIFACT!r} artifact")
    return Path(path)


def _replace(staging: Path, dest: Path) -> None:
    """Put ``staging`` at ``dest``: the old copy moved aside first, then removed."""
    old = dest.with_name(f".{dest.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    staging.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "MLflow error"
