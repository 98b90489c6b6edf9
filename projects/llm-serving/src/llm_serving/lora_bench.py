"""LoRA's cost on one server: requests to the adapter against requests to the base model, in
interleaved rounds (each round one level for each side, the order alternating), so drift of the
machine cancels in the per-round ratios. Reported with intervals, no target."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roadmap_lab.results import headline_figure
from roadmap_lab.stats import paired_ratio

from llm_serving.errors import BenchmarkSizeError
from llm_serving.online import NO_API_KEY, run_level

if TYPE_CHECKING:
    from llm_serving.settings import ProjectSettings


def lora_rounds(
    base_url: str,
    models: tuple[str, str],
    prompts: list[list[int]],
    max_tokens: int,
    concurrency: int,
    rounds: int,
    api_key: str = NO_API_KEY,
) -> list[dict[str, dict[str, Any]]]:
    """``rounds`` rounds of one level per model (base, adapter), the order alternating, after an
    untimed level per model (the server's and the adapter's first use); every request has a
    prompt of its own (no answer from the prefix cache), so ``prompts`` splits into
    2 x (``rounds`` + 1) levels. An even ``rounds`` puts each side first equally often."""
    per_level = len(prompts) // (2 * (rounds + 1))
    if per_level < 1 or rounds < 2 or rounds % 2:
        raise BenchmarkSizeError(
            f"LoRA's cost needs an even number (>= 2) of rounds and a prompt per request; got "
            f"{rounds} rounds, {len(prompts)} prompts"
        )
    unused = iter(prompts)

    def level(model: str) -> dict[str, Any]:
        chosen = [next(unused) for _ in range(per_level)]
        measured = asyncio.run(
            run_level(base_url, model, chosen, max_tokens, concurrency, api_key=api_key)
        )
        return measured.summary()

    for model in models:
        level(model)  # the warm-up, not kept
    return [
        {model: level(model) for model in (models if index % 2 == 0 else models[::-1])}
        for index in range(rounds)
    ]


def lora_cost(measured: list[dict[str, dict[str, Any]]], base: str, adapter: str) -> dict[str, Any]:
    """Adapter / base output tokens/s and TTFT p50 over the rounds, each a paired ratio with its
    interval, as headline items (no target: LoRA's cost is reported, not judged)."""
    failed = sum(entry[m]["errors"] for entry in measured for m in (base, adapter))

    def series(model: str, figure: str) -> list[float]:
        return [
            entry[model][figure]["p50"] if figure == "ttft_ms" else entry[model][figure]
            for entry in measured
        ]

    items = []
    for figure, label in (
        ("output_tokens_per_s", "output tokens/s"),
        ("ttft_ms", "TTFT p50"),
    ):
        ours, theirs = series(adapter, figure), series(base, figure)
        items.append(
            headline_figure(
                f"LoRA adapter / base on one vLLM server, {label} (x)",
                None,
                "x",
                interval=paired_ratio(ours, theirs),
                baseline=round(sorted(theirs)[len(theirs) // 2], 2),
                baseline_unit="ms" if figure == "ttft_ms" else "tok/s",
                per_round_adapter=ours,
                per_round_base=theirs,
            )
        )
    return {"rounds": measured, "failed_requests": failed, "headline": items}


def run_lora_cost(
    settings: ProjectSettings,
    model_dir: Path,
    adapter_dir: str,
    prompts: list[list[int]],
    output_len: int,
    concurrency: int,
    rounds: int,
) -> dict[str, Any]:
    """Serve ``model_dir`` with the adapter at ``adapter_dir`` and measure LoRA's cost on it:
    ``rounds`` rounds of ``concurrency`` requests of ``output_len`` tokens to each side."""
    from llm_serving.lora import resolve_adapters
    from llm_serving.server import VllmServer

    base = settings.served_model_name
    adapters = resolve_adapters([f"lora={adapter_dir}"], base, settings.run_dir / "lora", None)
    with VllmServer(
        settings.model_copy(update={"port": 0}), model_dir, adapters=adapters
    ) as server:
        measured = lora_rounds(
            server.base_url, (base, "lora"), prompts, output_len, concurrency, rounds,
            api_key=settings.api_key_value() or NO_API_KEY,
        )  # fmt: skip
    return {"adapter": adapter_dir, **lora_cost(measured, base, "lora")}
