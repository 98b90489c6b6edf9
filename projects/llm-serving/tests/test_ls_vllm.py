"""Real vLLM on 127.0.0.1 with SmolLM2: the OpenAI API through the official client, OpenAI-style
4xx errors, overload, client disconnects, metrics. One server for the module; the vLLM test
modules run one after the other in one pytest process (tests/BUILD), so two engines never run at
once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from llm_serving.online import run_level
from llm_serving.server import VllmServer, metric_value
from ls_vllm_testing import small_engine_settings

pytestmark = pytest.mark.slow
MODEL = "smollm2"


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory, smollm2: Path) -> Iterator[VllmServer]:
    settings = small_engine_settings(tmp_path_factory.mktemp("vllm-server"))
    with VllmServer(settings, smollm2) as server:
        yield server


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)


def test_completion_chat_and_streaming_through_the_openai_client(vllm_server):
    client = _client(vllm_server)
    completion = client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0
    )
    assert "Paris" in completion.choices[0].text
    assert completion.usage.completion_tokens <= 8

    chat = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=16,
        temperature=0,
    )
    assert "Paris" in chat.choices[0].message.content

    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Count from one to five."}],
            max_tokens=24,
            temperature=0,
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 3 and text.strip()
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert [m.id for m in client.models.list().data] == [MODEL]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b'{"model": "smollm2", "prompt": ', 400, "json"),
        (json.dumps({"model": "gpt-5", "prompt": "Hi"}).encode(), 404, "does not exist"),
        (json.dumps({"model": MODEL, "prompt": "word " * 600}).encode(), 400, "context length"),
        (json.dumps({"model": MODEL, "prompt": "Hi", "max_tokens": 0}).encode(), 400, "max_tokens"),
        (
            json.dumps({"model": MODEL, "prompt": "Hi", "max_tokens": 99999}).encode(),
            400,
            "max_tokens",
        ),
    ],
    ids=["malformed-json", "unknown-model", "prompt-too-long", "max-tokens-0", "max-tokens-huge"],
)
def test_bad_requests_get_openai_style_errors_and_the_server_keeps_serving(
    vllm_server, body, status, words
):
    response = httpx.post(
        vllm_server.base_url + "/v1/completions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert words in error["message"].lower() and error["code"] == status
    ok = _client(vllm_server).completions.create(model=MODEL, prompt="Hi", max_tokens=2)
    assert ok.choices[0].text is not None


def test_the_official_client_raises_typed_errors(vllm_server):
    with pytest.raises(openai.NotFoundError):
        _client(vllm_server).completions.create(model="nope", prompt="Hi", max_tokens=2)
    with pytest.raises(openai.BadRequestError):
        _client(vllm_server).completions.create(model=MODEL, prompt="Hi", max_tokens=-1)


def test_overload_far_beyond_capacity_loses_no_request(vllm_server):
    # 48 concurrent streams against max_num_seqs=4: the rest queue; every one must come back.
    prompts = [[1, 1, 1, 1 + i] for i in range(48)]
    level = asyncio.run(run_level(vllm_server.base_url, MODEL, prompts, 8, concurrency=48))
    summary = level.summary()
    assert summary["requests"] == 48
    assert summary["completed"] + summary["errors"] == 48
    assert summary["completed"] == 48, summary["error_examples"]
    assert all(r.output_tokens == 8 for r in level.results)
    assert vllm_server.healthy()


def _running(server) -> float:
    return metric_value(server.metrics(), "vllm:num_requests_running") or 0.0


def test_a_client_that_disconnects_mid_stream_frees_its_slot(vllm_server):
    client = _client(vllm_server)
    stream = client.completions.create(
        model=MODEL,
        prompt="Tell me a long story.",
        max_tokens=480,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    for _, _chunk in zip(range(3), stream, strict=False):
        pass
    assert _running(vllm_server) == 1
    stream.close()  # drop the connection; 470-odd tokens were still to come (~15 s)
    deadline = time.monotonic() + 5
    while _running(vllm_server) > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _running(vllm_server) == 0
    assert client.completions.create(model=MODEL, prompt="Hi", max_tokens=2).choices


def test_prometheus_metrics_are_exposed(vllm_server):
    text = vllm_server.metrics()
    for name in (
        "vllm:num_requests_waiting",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds_count",
    ):
        assert metric_value(text, name) is not None, name
    assert metric_value(text, "vllm:generation_tokens_total") > 0
