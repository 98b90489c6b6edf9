"""Real vLLM on SmolLM2 with a LoRA adapter made here with PEFT, behind an API key: one server
for the module. /v1/models lists base and adapter, their greedy answers differ as the adapter's
weights say, the adapter's answer is HF + PEFT's, and requests without the key get 401.

Both sides run in float32: in bfloat16 vLLM and HF + PEFT agreed on the base model's answer but
parted after the adapter's first token (this random adapter flattens the logits, and vLLM's bf16
LoRA kernels round differently from PEFT's bf16 matmuls, which flips near-ties)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from llm_serving.lora import resolve_adapters
from llm_serving.server import VllmServer
from ls_vllm_testing import small_engine_settings

pytestmark = pytest.mark.slow
BASE, ADAPTER, KEY = "smollm2", "noisy", "test-key-not-secret"
PROMPT = "The capital of France is"
MAX_TOKENS = 8
DTYPE = "float32"


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory, smollm2: Path) -> tuple[Path, str, str]:
    """A fresh LoRA adapter on SmolLM2 (random A and B, fixed seed, scale 4: it changes the
    answer), and HF's greedy answers without and with it (taken before vLLM starts)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    model = AutoModelForCausalLM.from_pretrained(smollm2, dtype=getattr(torch, DTYPE))
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids

    def greedy(m: torch.nn.Module) -> str:
        with torch.no_grad():
            out = m.generate(ids, max_new_tokens=MAX_TOKENS, do_sample=False)
        return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)

    base_answer = greedy(model)
    config = LoraConfig(
        r=8, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(model, config)
    folder = tmp_path_factory.mktemp("lora") / ADAPTER
    peft_model.save_pretrained(folder)
    return folder, base_answer, greedy(peft_model)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, smollm2: Path, adapter: tuple[Path, str, str]
) -> Iterator[VllmServer]:
    run_dir = tmp_path_factory.mktemp("vllm-lora")
    settings = small_engine_settings(run_dir, api_key=KEY, dtype=DTYPE)
    adapters = resolve_adapters([f"{ADAPTER}={adapter[0]}"], BASE, run_dir / "lora", None)
    with VllmServer(settings, smollm2, adapters=adapters) as running:
        yield running


def _client(server: VllmServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key=KEY, max_retries=0)


def _answer(server: VllmServer, model: str) -> str:
    completion = _client(server).completions.create(
        model=model, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0
    )
    return completion.choices[0].text


def test_models_lists_base_and_adapter(server):
    assert [model.id for model in _client(server).models.list().data] == [BASE, ADAPTER]


def test_the_adapter_answers_differently_and_as_hf_with_peft(server, adapter):
    _, hf_base, hf_adapter = adapter
    assert hf_adapter != hf_base  # the adapter's weights change the answer
    base, with_adapter = _answer(server, BASE), _answer(server, ADAPTER)
    assert base != with_adapter
    assert base == hf_base
    assert with_adapter == hf_adapter


def test_requests_without_the_key_get_401(server):
    url = server.base_url + "/v1/models"
    assert httpx.get(url, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert httpx.get(url, headers=wrong, timeout=10).status_code == 401
    right = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(url, headers=right, timeout=10).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=server.base_url + "/v1", api_key="wrong", max_retries=0
        ).models.list()
    assert server.healthy()  # the health probe needs no key
