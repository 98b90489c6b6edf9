"""The zero LoRA of the noise floor: every lora_B tensor of the adapter's safetensors file
zeroed, every other byte kept; a file with no lora_B is refused."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from llm_loop.control import zero_lora_b
from llm_loop.errors import LlmLoopError


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """The safetensors layout: header length (u64, little endian), JSON header, data."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    data, offset = b"", 0
    for name, array in tensors.items():
        raw = array.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}  # fmt: skip
        data, offset = data + raw, offset + len(raw)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    body = raw[8 + size :]
    return {
        name: np.frombuffer(body[t["data_offsets"][0] : t["data_offsets"][1]], "<f4").reshape(
            t["shape"]
        )
        for name, t in header.items()
        if name != "__metadata__"
    }


def test_zeroing_touches_the_b_matrices_only(tmp_path: Path) -> None:
    layer = "base_model.model.model.layers.0.self_attn"
    tensors = {
        f"{layer}.q_proj.lora_A.weight": np.full((4, 8), 0.5),
        f"{layer}.q_proj.lora_B.weight": np.full((8, 4), 0.25),
        f"{layer}.v_proj.lora_A.weight": np.arange(32.0).reshape(4, 8),
        f"{layer}.v_proj.lora_B.weight": np.arange(32.0).reshape(8, 4) + 1,
    }
    weights = tmp_path / "adapter_model.safetensors"
    write_safetensors(weights, tensors)
    assert zero_lora_b(weights) == 2
    after = read_safetensors(weights)
    for name, before in tensors.items():
        expected = np.zeros_like(before) if ".lora_B." in name else before
        np.testing.assert_array_equal(after[name], expected.astype("<f4"))


def test_a_file_without_b_matrices_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    weights = tmp_path / "adapter_model.safetensors"
    write_safetensors(weights, {"lm_head.weight": np.ones((2, 2))})
    before = weights.read_bytes()
    with pytest.raises(LlmLoopError, match="no lora_B tensors"):
        zero_lora_b(weights)
    assert weights.read_bytes() == before
