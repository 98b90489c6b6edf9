"""The OpenAI-compatible provider against a real HTTP server on 127.0.0.1 speaking the chat API."""

from __future__ import annotations

import pytest
from pr_testing import ChatServer
from prompt_registry.errors import ProviderError
from prompt_registry.harness import Harness
from prompt_registry.providers import GenerationRequest, OpenAIProvider

pytestmark = pytest.mark.slow


def test_chat_completions_in_order_with_parameters() -> None:
    with ChatServer().running() as server:
        provider = OpenAIProvider(server.url, "smollm2", concurrency=4)
        prompts = ["I love it", "awful", "great stuff", "meh"]
        outputs = provider.generate([GenerationRequest(p, 7, 0.5, seed=3) for p in prompts])
        assert outputs == [
            "The review is positive",
            "negative",
            "The review is positive",
            "negative",
        ]
        assert provider.calls == 4
        body = server.requests[0]
        assert body["model"] == "smollm2" and body["max_tokens"] == 7
        assert body["temperature"] == 0.5 and body["seed"] == 3
        assert body["messages"][0]["role"] == "user"


def test_server_errors_and_unreachable_endpoints_are_provider_errors(free_tcp_port: int) -> None:
    with ChatServer().running() as server:
        server.fail_next = 1
        with pytest.raises(ProviderError, match="answered 500"):
            OpenAIProvider(server.url, "m").generate([GenerationRequest("x")])
    dead = OpenAIProvider(f"http://127.0.0.1:{free_tcp_port}/v1", "m", timeout_s=5)
    with pytest.raises(ProviderError, match="cannot reach"):
        dead.generate([GenerationRequest("x")])


def test_an_eval_through_the_endpoint_is_cached(settings) -> None:
    with ChatServer().running() as server:
        settings = settings.model_copy(update={"provider": "openai", "openai_base_url": server.url})
        harness = Harness(settings)
        folder = harness.folder("review-sentiment")
        first = harness.evaluate(folder, folder.content())
        # The rule-based server knows "love" and "great": those reviews pass.
        assert 0 < first.pass_rate < 1 and first.model_calls == 32
        assert len(server.requests) == 32
        second = Harness(settings).evaluate(folder, folder.content())
        assert second.model_calls == 0 and len(server.requests) == 32
