"""The noise floor: a zero LoRA, served beside the adapter and evaluated like it.

It is the adapter with every ``lora_B`` matrix set to zero, so its weights are exactly the
base's, but its requests take vLLM's LoRA path (the adapter's rank and target modules). Its
answers against the base's show what serving through a LoRA changes by itself (kernels,
batching, rounding): a gain of the adapter that is not clearly above the zero LoRA's is noise.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

from roadmap_lab.assets import replace_dir

from llm_loop.adapter import Adapter
from llm_loop.errors import LlmLoopError
from llm_loop.settings import LoopSettings

WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"


def download_adapter(adapter: Adapter, where: Path) -> Path:
    """Download the registered version into ``where``; its PEFT folder (the one holding
    ``adapter_config.json``). The registry is asked for the version's own location."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=adapter.tracking_uri, registry_uri=adapter.tracking_uri)
    try:
        location = client.get_model_version_download_uri(adapter.registered_model, adapter.version)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=str(where), tracking_uri=adapter.tracking_uri
        )
    except mlflow.exceptions.MlflowException as error:
        raise LlmLoopError(f"{adapter.uri}: cannot download it ({error.message})") from None
    configs = sorted(Path(local).rglob(CONFIG_FILE))
    if not configs:
        raise LlmLoopError(f"{adapter.uri} holds no {CONFIG_FILE}: not a PEFT adapter")
    return configs[0].parent


def zero_lora_b(weights: Path) -> int:
    """Set every ``lora_B`` tensor of a safetensors file to zero, in place; how many. The format
    is an 8-byte header length, a JSON header (name -> dtype, shape, byte offsets), then the
    data, so zeroing the byte ranges is exact for every float dtype."""
    data = bytearray(weights.read_bytes())
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_size])
    start = 8 + header_size
    zeroed = 0
    for name, tensor in header.items():
        if name != "__metadata__" and ".lora_B." in name:
            begin, end = tensor["data_offsets"]
            data[start + begin : start + end] = bytes(end - begin)
            zeroed += 1
    if not zeroed:
        raise LlmLoopError(f"{weights} has no lora_B tensors: not a LoRA adapter")
    weights.write_bytes(bytes(data))
    return zeroed


def zero_lora(adapter: Adapter, dest: Path) -> Path:
    """The adapter with its B matrices zeroed, in ``dest`` (a PEFT folder vLLM can serve),
    written in a staging folder and renamed into place."""
    staging = dest.with_name(f".{dest.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        shutil.copytree(download_adapter(adapter, staging / "download"), staging / "lora")
        zero_lora_b(staging / "lora" / WEIGHTS_FILE)
        replace_dir(staging / "lora", dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def control_lora(settings: LoopSettings, adapter: Adapter, folder: Path) -> Path | None:
    """The zero LoRA to serve beside the adapter (``folder/zero-lora``), or None when
    ``control_name`` is empty."""
    if not settings.control_name:
        return None
    return zero_lora(adapter, folder / "zero-lora")
