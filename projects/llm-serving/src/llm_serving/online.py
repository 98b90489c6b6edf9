"""Online serving benchmark: N concurrent streams against the OpenAI-compatible API.

Each request streams a completion through the official ``openai`` client; we record time to first
token (TTFT), time per output token after the first (TPOT), end-to-end latency, and errors.
Nothing is retried: a refused request counts as an error with its message, and the benchmark
fails when any request does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from llm_serving.errors import BenchmarkSizeError
from llm_serving.progress import progress_bar

if TYPE_CHECKING:
    import openai

logger = logging.getLogger(__name__)

NO_API_KEY = "not-needed"  # the client requires one; a server without a key ignores it


@dataclass
class RequestResult:
    ok: bool
    latency_s: float
    ttft_s: float | None = None
    output_tokens: int = 0
    error: str | None = None

    @property
    def tpot_s(self) -> float | None:
        if not self.ok or self.ttft_s is None or self.output_tokens < 2:
            return None
        return (self.latency_s - self.ttft_s) / (self.output_tokens - 1)


@dataclass
class LevelResult:
    concurrency: int
    results: list[RequestResult] = field(default_factory=list)
    elapsed_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        done = [r for r in self.results if r.ok]
        errors = [r.error or "unknown error" for r in self.results if not r.ok]

        def stats_ms(values: list[float]) -> dict[str, float | None]:
            if not values:
                return {"mean": None, "p50": None, "p99": None}
            return {
                "mean": round(float(np.mean(values)) * 1000, 1),
                "p50": round(float(np.percentile(values, 50)) * 1000, 1),
                "p99": round(float(np.percentile(values, 99)) * 1000, 1),
            }

        ttft = [r.ttft_s for r in done if r.ttft_s is not None]
        tpot = [r.tpot_s for r in done if r.tpot_s is not None]
        latency = [r.latency_s for r in done]
        output = sum(r.output_tokens for r in done)
        return {
            "concurrency": self.concurrency,
            "requests": len(self.results),
            "completed": len(done),
            "errors": len(errors),
            "error_examples": sorted(set(errors))[:3],
            "elapsed_s": round(self.elapsed_s, 2),
            "requests_per_s": round(len(done) / self.elapsed_s, 3),
            "output_tokens_per_s": round(output / self.elapsed_s, 2),
            "ttft_ms": stats_ms(ttft),
            "tpot_ms": stats_ms(tpot),
            "latency_ms": stats_ms(latency),
        }


async def _one_request(
    client: openai.AsyncOpenAI, model: str, prompt: list[int], max_tokens: int, ignore_eos: bool
) -> RequestResult:
    import openai

    started = time.perf_counter()
    ttft = None
    tokens = 0
    try:
        stream = await client.completions.create(
            model=model,
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=0.0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": ignore_eos},
        )
        async for chunk in stream:
            if ttft is None and chunk.choices and chunk.choices[0].text:
                ttft = time.perf_counter() - started
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
    except openai.APIError as error:
        status = getattr(error, "status_code", None)
        message = f"{status or type(error).__name__}: {getattr(error, 'message', error)}"
        return RequestResult(False, time.perf_counter() - started, error=message[:200])
    return RequestResult(True, time.perf_counter() - started, ttft, tokens)


async def run_level(
    base_url: str,
    model: str,
    prompts: list[list[int]],
    max_tokens: int,
    concurrency: int,
    ignore_eos: bool = True,
    api_key: str = NO_API_KEY,
    timeout_s: float = 600.0,
    on_done: Callable[[], None] | None = None,
) -> LevelResult:
    """Send every prompt, at most ``concurrency`` in flight at a time; ``on_done`` is called as
    each request ends."""
    import openai

    client = openai.AsyncOpenAI(
        base_url=base_url + "/v1", api_key=api_key, max_retries=0, timeout=timeout_s
    )
    gate = asyncio.Semaphore(concurrency)

    async def limited(prompt: list[int]) -> RequestResult:
        async with gate:
            result = await _one_request(client, model, prompt, max_tokens, ignore_eos)
        if on_done is not None:
            on_done()
        return result

    level = LevelResult(concurrency)
    started = time.perf_counter()
    try:
        level.results = await asyncio.gather(*(limited(prompt) for prompt in prompts))
    finally:
        await client.close()
    level.elapsed_s = time.perf_counter() - started
    return level


def run_levels(
    base_url: str,
    model: str,
    prompts: list[list[int]],
    max_tokens: int,
    levels: dict[int, int],
    api_key: str = NO_API_KEY,
) -> list[dict[str, Any]]:
    """For each ``concurrency: requests`` pair, run that many requests at that concurrency.

    Every request gets a prompt of its own (the server's prefix cache would otherwise answer
    repeats faster than new prompts), so ``prompts`` must hold the sum of the requests.
    """
    needed = sum(levels.values())
    if len(prompts) < needed:
        raise BenchmarkSizeError(
            f"the online levels send {needed} requests; got {len(prompts)} prompts"
        )
    summaries = []
    unused = iter(prompts)
    with progress_bar() as progress:
        for concurrency, requests in levels.items():
            chosen = [next(unused) for _ in range(requests)]
            step = progress.add_task(f"online, concurrency {concurrency}", total=requests)
            level = asyncio.run(
                run_level(
                    base_url, model, chosen, max_tokens, concurrency, api_key=api_key,
                    on_done=partial(progress.advance, step),
                )
            )  # fmt: skip
            summary = level.summary()
            logger.info(
                "concurrency %d: %d/%d ok, %.2f req/s, %.1f out tok/s, TTFT p50 %s ms, "
                "TPOT p50 %s ms",
                concurrency, summary["completed"], summary["requests"], summary["requests_per_s"],
                summary["output_tokens_per_s"], summary["ttft_ms"]["p50"],
                summary["tpot_ms"]["p50"],
            )  # fmt: skip
            summaries.append(summary)
    return summaries
