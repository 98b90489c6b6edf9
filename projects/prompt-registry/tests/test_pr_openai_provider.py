"""The OpenAI-compatible provider (the ``openai`` SDK) against a real HTTP server on 127.0.0.1
speaking the chat and models API: parameters and order, retries on 429 and 5xx, finished
generations kept when a later request fails, answers cut at the token limit, and the cache keyed
on the model the server reports."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pr_testing import ChatServer
from prompt_registry.errors import ProviderError
from prompt_registry.harness import Harness
from prompt_registry.providers import GenerationRequest, OpenAIProvider
from prompt_registry.settings import ProjectSettings

pytestmark = pytest.mark.slow


def test_chat_completions_in_order_with_parameters() -> None:
    with ChatServer().running() as server:
        provider = OpenAIProvider(server.url, "smollm2", concurrency=4)
        prompts = ["I love it", "awful", "great stuff", "meh"]
        outputs = provider.generate([GenerationRequest(p, 7, 0.5, seed=3) for p in prompts])
        assert [o.text for o in outputs] == [
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


def test_the_default_model_is_the_name_llm_serving_serves() -> None:
    settings = ProjectSettings()
    assert settings.openai_model == "smollm2"
    # vLLM lists its models (GET /v1/models, no per-model route): the served name is found there.
    with ChatServer().running() as server:
        provider = OpenAIProvider(server.url, settings.openai_model)
        assert '"root":"/models/smollm2"' in provider.identity()
        with pytest.raises(ProviderError, match="serves no model named 'gpt-4o'.*smollm2"):
            OpenAIProvider(server.url, "gpt-4o").identity()


def test_429_and_5xx_are_retried_with_backoff() -> None:
    with ChatServer().running() as server:
        server.statuses = [429, 503, 429]
        provider = OpenAIProvider(server.url, "m", concurrency=1, max_retries=3)
        [output] = provider.generate([GenerationRequest("I love it")])
        assert output.text == "The review is positive"
        assert len(server.requests) == 4 and provider.calls == 1


def test_errors_after_the_retries_and_unreachable_endpoints_are_provider_errors(
    free_tcp_port: int,
) -> None:
    with ChatServer().running() as server:
        server.statuses = [500, 500]
        with pytest.raises(ProviderError, match="answered 500"):
            OpenAIProvider(server.url, "m", max_retries=1).generate([GenerationRequest("x")])
        assert len(server.requests) == 2
    dead = OpenAIProvider(f"http://127.0.0.1:{free_tcp_port}/v1", "m", max_retries=0)
    with pytest.raises(ProviderError, match="cannot reach"):
        dead.generate([GenerationRequest("x")])


def test_answers_cut_at_the_token_limit_are_counted(settings) -> None:
    with ChatServer().running() as server:
        settings = settings.model_copy(update={"provider": "openai", "openai_base_url": server.url})
        harness = Harness(settings)
        content = harness.folder("review-sentiment").content()
        # Two tokens: "The review is positive" is cut, "negative" is not.
        short = replace(content, params=content.params.model_copy(update={"max_new_tokens": 2}))
        report = harness.evaluate(short, content.config)
        positive = [e for e in report.examples if e.output.startswith("The review")]
        assert report.truncated == len(positive) > 0
        assert all(e.truncated for e in positive)


def test_a_failure_keeps_the_finished_generations_in_the_cache(settings) -> None:
    with ChatServer().running() as server:
        settings = settings.model_copy(
            update={"provider": "openai", "openai_base_url": server.url, "openai_max_retries": 0}
        )
        harness = Harness(settings)
        content = harness.folder("review-sentiment").content()
        server.fail_when = "Awful product"  # one review of 32 always fails
        with pytest.raises(ProviderError, match=r"answered 500.*; \d+ kept in the cache"):
            harness.evaluate(content, content.config)
        server.fail_when = None
        done = len(server.chat_requests()) - 1
        report = Harness(settings).evaluate(content, content.config)
        # Only what had not finished is asked again.
        assert report.cache_hits == done and report.model_calls == 32 - done


def test_an_eval_is_cached_until_the_server_reports_another_model(settings) -> None:
    with ChatServer().running() as server:
        settings = settings.model_copy(update={"provider": "openai", "openai_base_url": server.url})
        content = Harness(settings).folder("review-sentiment").content()
        first = Harness(settings).evaluate(content, content.config)
        # The rule-based server knows "love" and "great": those reviews pass.
        assert 0 < first.pass_rate < 1 and first.model_calls == 32
        second = Harness(settings).evaluate(content, content.config)
        assert second.model_calls == 0 and len(server.chat_requests()) == 32
        # Same URL and served name, other weights behind them: evaluated again.
        server.root = "/models/smollm2-w8a8"
        swapped = Harness(settings).evaluate(content, content.config)
        assert swapped.model_calls == 32 and swapped.cache_hits == 0
