"""Real vLLM on 127.0.0.1, started as a user starts it: ``python -m llm_serving serve --lora
noisy=<folder>`` behind an API key, SmolLM2 with a LoRA adapter made here with PEFT. One server
for the module (vLLM's start is most of the time these tests take): every test but the last only
reads from it; the last stops it with SIGTERM. The vLLM test modules run one after the other in
one pytest process (tests/BUILD), so two engines never run at once.

Checked: the OpenAI API through the official client, OpenAI-style 4xx errors, overload, client
disconnects, metrics; /v1/models lists base and adapter, their greedy answers differ as the
adapter's weights say and the adapter's answer is HF + PEFT's; requests without the key get 401;
SIGTERM stops vLLM gracefully.

Both sides run in float32: in bfloat16 vLLM and HF + PEFT agreed on the base model's answer but
parted after the adapter's first token (this random adapter flattens the logits, and vLLM's bf16
LoRA kernels round differently from PEFT's bf16 matmuls, which flips near-ties)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from llm_serving.online import run_level
from llm_serving.server import metric_value
from ls_vllm_testing import group_alive, logged, serve_cli, vllm_server_of
from roadmap_lab.services import ManagedProcess, free_port, http_probe, signal_process_group

pytestmark = pytest.mark.slow
BASE, ADAPTER, KEY = "smollm2", "noisy", "test-key-not-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}
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
    peft_model.save_pretrained(str(folder))
    return folder, base_answer, greedy(peft_model)


@dataclass(frozen=True)
class Served:
    """The ``serve`` CLI's process, its URL and the vLLM server process it started."""

    cli: ManagedProcess
    url: str
    vllm_pid: int


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, adapter: tuple[Path, str, str]
) -> Iterator[Served]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cli = serve_cli(
        tmp_path_factory.mktemp("serve"),
        port,
        signal.SIGTERM,
        f"{url}/health",
        "--lora",
        f"{ADAPTER}={adapter[0]}",
        LLM_SERVING_API_KEY=KEY,
        LLM_SERVING_DTYPE=DTYPE,
    )
    with cli:
        vllm_pid = vllm_server_of(cli.pid)
        try:
            yield Served(cli, url, vllm_pid)
        finally:
            signal_process_group(vllm_pid, signal.SIGKILL)  # only if the CLI left it behind


def _client(served: Served, api_key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key=api_key, max_retries=0)


def _metrics(served: Served) -> str:
    return httpx.get(served.url + "/metrics", timeout=10).text


def test_models_lists_base_and_adapter_as_the_cli_says(served):
    assert [model.id for model in _client(served).models.list().data] == [BASE, ADAPTER]
    assert logged(served.cli, f"Serving {BASE}, {ADAPTER} at {served.url}/v1")


def test_completion_chat_and_streaming_through_the_openai_client(served):
    client = _client(served)
    completion = client.completions.create(
        model=BASE, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0
    )
    assert "Paris" in completion.choices[0].text
    assert completion.usage.completion_tokens <= MAX_TOKENS

    chat = client.chat.completions.create(
        model=BASE,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=16,
        temperature=0,
    )
    assert "Paris" in chat.choices[0].message.content

    chunks = list(
        client.chat.completions.create(
            model=BASE,
            messages=[{"role": "user", "content": "Count from one to five."}],
            max_tokens=24,
            temperature=0,
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 3 and text.strip()
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_the_adapter_answers_differently_and_as_hf_with_peft(served, adapter):
    _, hf_base, hf_adapter = adapter
    assert hf_adapter != hf_base  # the adapter's weights change the answer

    def answer(model: str) -> str:
        completion = _client(served).completions.create(
            model=model, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0
        )
        return completion.choices[0].text

    base, with_adapter = answer(BASE), answer(ADAPTER)
    assert base != with_adapter
    assert base == hf_base
    assert with_adapter == hf_adapter


def test_requests_without_the_key_get_401(served):
    url = served.url + "/v1/models"
    assert httpx.get(url, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert httpx.get(url, headers=wrong, timeout=10).status_code == 401
    assert httpx.get(url, headers=AUTH, timeout=10).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        _client(served, api_key="wrong").models.list()
    assert http_probe(served.url + "/health")()  # the health probe needs no key


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b'{"model": "smollm2", "prompt": ', 400, "json"),
        (json.dumps({"model": "gpt-5", "prompt": "Hi"}).encode(), 404, "does not exist"),
        (json.dumps({"model": BASE, "prompt": "word " * 600}).encode(), 400, "context length"),
        (json.dumps({"model": BASE, "prompt": "Hi", "max_tokens": 0}).encode(), 400, "max_tokens"),
        (
            json.dumps({"model": BASE, "prompt": "Hi", "max_tokens": 99999}).encode(),
            400,
            "max_tokens",
        ),
    ],
    ids=["malformed-json", "unknown-model", "prompt-too-long", "max-tokens-0", "max-tokens-huge"],
)
def test_bad_requests_get_openai_style_errors_and_the_server_keeps_serving(
    served, body, status, words
):
    response = httpx.post(
        served.url + "/v1/completions",
        content=body,
        headers={"content-type": "application/json", **AUTH},
        timeout=30,
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert words in error["message"].lower() and error["code"] == status
    ok = _client(served).completions.create(model=BASE, prompt="Hi", max_tokens=2)
    assert ok.choices[0].text is not None


def test_the_official_client_raises_typed_errors(served):
    with pytest.raises(openai.NotFoundError):
        _client(served).completions.create(model="nope", prompt="Hi", max_tokens=2)
    with pytest.raises(openai.BadRequestError):
        _client(served).completions.create(model=BASE, prompt="Hi", max_tokens=-1)


def test_overload_far_beyond_capacity_loses_no_request(served):
    # 48 concurrent streams against max_num_seqs=4: the rest queue; every one must come back.
    prompts = [[1, 1, 1, 1 + i] for i in range(48)]
    level = asyncio.run(run_level(served.url, BASE, prompts, 8, concurrency=48, api_key=KEY))
    summary = level.summary()
    assert summary["requests"] == 48
    assert summary["completed"] + summary["errors"] == 48
    assert summary["completed"] == 48, summary["error_examples"]
    assert all(r.output_tokens == 8 for r in level.results)
    assert http_probe(served.url + "/health")()


def _running(served: Served) -> float:
    return metric_value(_metrics(served), "vllm:num_requests_running") or 0.0


def test_a_client_that_disconnects_mid_stream_frees_its_slot(served):
    client = _client(served)
    stream = client.completions.create(
        model=BASE,
        prompt="Tell me a long story.",
        max_tokens=480,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    for _, _chunk in zip(range(3), stream, strict=False):
        pass
    assert _running(served) == 1
    stream.close()  # drop the connection; 470-odd tokens were still to come (~15 s)
    deadline = time.monotonic() + 5
    while _running(served) > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _running(served) == 0
    assert client.completions.create(model=BASE, prompt="Hi", max_tokens=2).choices


def test_prometheus_metrics_are_exposed(served):
    text = _metrics(served)
    for name in (
        "vllm:num_requests_waiting",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds_count",
    ):
        assert metric_value(text, name) is not None, name
    assert metric_value(text, "vllm:generation_tokens_total") > 0


def test_sigterm_stops_vllm_gracefully(served):
    """Last in the module: it stops the server the tests above read from."""
    assert served.cli.stop() == 0
    signal_process_group(served.vllm_pid, signal.SIGKILL)  # only if the CLI left it behind
    assert not http_probe(f"{served.url}/health")()
    deadline = time.monotonic() + 10  # killed processes wait to be reaped
    while group_alive(served.vllm_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not group_alive(served.vllm_pid)
    assert "vLLM stopped (exit code 0)" in served.cli.log_tail()  # SIGTERM: vLLM drained and exited
