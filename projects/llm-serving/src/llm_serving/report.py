"""Turn benchmark results into targets, vLLM-style lines, plots and results.json."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from roadmap_lab.results import (
    ResultsWriter,
    committed_results,
    headline_figure,
    invocation,
    reference_headline,
)
from roadmap_lab.stats import Interval

from llm_serving import PROJECT

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# The issue's targets. CPU and GPU differ for the ratio to HF sequential.
TARGETS = {
    "cpu": {"vllm_vs_hf_sequential": 30.0, "vllm_vs_hf_best_static_chat": 3.0},
    "cuda": {"vllm_vs_hf_sequential": 24.0, "vllm_vs_hf_best_static_chat": 3.0},
}
QUANT_SPEEDUP_TARGET = 1.2
PERPLEXITY_DELTA_TARGET_PCT = 2.0
TOKS = "tok/s"


def _engine(entry: dict[str, Any]) -> str:
    dtype = entry.get("dtype")
    return f"{entry['engine']} ({dtype})" if dtype else str(entry["engine"])


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The headline figures with their baselines and targets, and whether each target is met
    (None where the issue sets no target)."""
    ratios, perplexity = results["ratios"], results["quality"]["perplexity"]
    fixed, chat = results["offline"]["equal_lengths"], results["offline"]["chat"]
    goals = TARGETS[results["device"]]
    scheme = results["models"]["quantization"]
    tokens = chat["output_tokens"]
    repeats = results["config"]["repeats"]
    sequential = fixed["hf_sequential"]
    rows: list[tuple[str, str, float, str, Any, str, float | None, str, str]] = [
        (
            "vllm_vs_hf_sequential",
            "vLLM / HF sequential, equal lengths (x)",
            ratios["vllm_vs_hf_sequential"],
            "x",
            fixed["hf_sequential"]["output_tokens_per_s"],
            TOKS,
            goals["vllm_vs_hf_sequential"],
            ">=",
            f"vLLM and HF over {repeats} paired rounds; HF {_engine(sequential)} (its faster "
            f"dtype) on {sequential['requests']} of the prompts",
        ),
        (
            "vllm_vs_hf_best_static_equal_lengths",
            "vLLM / HF best static batch, equal lengths (x)",
            ratios["vllm_vs_hf_best_static_equal_lengths"],
            "x",
            fixed["hf_best_static"]["output_tokens_per_s"],
            TOKS,
            None,
            ">=",
            f"HF's best: {_engine(fixed['hf_best_static'])}; the issue sets no target here",
        ),
        (
            "vllm_vs_hf_best_static_chat",
            "vLLM / HF best static batch, chat workload (x)",
            ratios["vllm_vs_hf_best_static_chat"],
            "x",
            chat["hf_best_static"]["output_tokens_per_s"],
            TOKS,
            goals["vllm_vs_hf_best_static_chat"],
            ">=",
            f"HF's best: {_engine(chat['hf_best_static'])}; output tokens (EOS respected, "
            f"so they differ): vLLM {tokens['vllm_bf16']}, HF {tokens['hf_best_static']}",
        ),
        (
            "quantized_vs_bf16_equal_lengths",
            f"{scheme} / bf16 on vLLM, equal lengths (x)",
            ratios["quantized_vs_bf16_equal_lengths"],
            "x",
            fixed["vllm_bf16"]["output_tokens_per_s"],
            TOKS,
            QUANT_SPEEDUP_TARGET,
            ">=",
            f"{repeats} paired rounds",
        ),
    ]
    for name, what in (("reviews", "held-out reviews"), ("freshqa", "FreshQA, another domain")):
        rows.append(
            (
                f"perplexity_{name}",
                f"perplexity {scheme} vs bf16, {what} (% change)",
                perplexity[name]["delta_pct"],
                "%",
                perplexity[name]["bf16"],
                "ppl",
                PERPLEXITY_DELTA_TARGET_PCT,
                "<=",
                f"{perplexity[name]['tokens']} tokens",
            )
        )
    out = []
    for key, name, value, unit, baseline, baseline_unit, goal, op, note in rows:
        # The verdict comes from the interval (the shared rule); without one (a single round,
        # or results from before the intervals) the figure is unverified.
        interval, details = _interval_of(results, key)
        figure = headline_figure(
            name,
            value,
            unit,
            baseline=baseline,
            target=None if goal is None else f"{op} {goal:g}",
            interval=interval,
            baseline_unit=baseline_unit,
            note=note,
            **details,
        )
        out.append({"key": key, **figure})
    return out


def _interval_of(results: dict[str, Any], key: str) -> tuple[Interval | None, dict[str, Any]]:
    """The interval of figure ``key`` and its per-round values, where the results have them."""
    if key.startswith("perplexity_"):
        stored = results["quality"]["perplexity"][key.removeprefix("perplexity_")]
        fields = stored.get("delta_pct_interval")
        return (None if fields is None else Interval(**fields)), {}
    entry = results.get("ratio_intervals", {}).get(key)
    if entry is None:
        return None, {}
    fields = entry["interval"]
    return (None if fields is None else Interval(**fields)), {"per_round": entry["per_round"]}


def _headline_item(target: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in target.items() if key != "key"}


def headline(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The results file's headline (``roadmap_lab.results.Headline`` items, plus a ``note``),
    with LoRA's cost where it was measured (reported, no target)."""
    lora = results["online"].get("lora") or {}
    return [_headline_item(target) for target in targets(results)] + lora.get("headline", [])


def demo_headline(results: dict[str, Any], judged: set[str]) -> list[dict[str, Any]]:
    """The demo's own figures, with targets only for those whose key is in ``judged`` (the
    demo measures them as the full benchmark does; the others are too small a run to judge),
    then the committed full benchmark's as references (shown, not counted as measured now)."""
    items = []
    for target in targets(results):
        item = _headline_item(target)
        if target["key"] not in judged:
            item["target"] = item["verdict"] = None
        items.append({**item, "name": f"demo: {item['name']}"})
    committed = committed_results(PROJECT)
    if committed is not None:
        cpu = (committed.get("machine") or {}).get("cpu_model") or "?"
        items += [
            {**item, "name": f"full benchmark ({cpu}): {item['name']}"}
            for item in reference_headline(committed)
        ]
    return items


def throughput_lines(results: dict[str, Any]) -> list[str]:
    """One ``Throughput: ...`` line per engine, as vLLM's benchmark prints them."""
    lines = []
    for workload, entries in results["offline"].items():
        for key in ("vllm_bf16", "vllm_quantized", "hf_sequential", "hf_best_static"):
            if key in entries:
                e = entries[key]
                lines.append(
                    f"[{workload}] {_engine(e):<32} Throughput: {e['requests_per_s']:.2f} "
                    f"requests/s, {e['total_tokens_per_s']:.2f} total tokens/s, "
                    f"{e['output_tokens_per_s']:.2f} output tokens/s"
                )
    return lines


def _throughput_bars(ax: Axes, workload: str, entries: dict[str, Any]) -> None:
    bars = [("vLLM bf16", entries["vllm_bf16"]), ("vLLM quantized", entries["vllm_quantized"])]
    bars += [(f"HF {e['dtype']} sequential", e) for e in entries.get("hf_sequential_by_dtype", [])]
    bars += [(f"HF {e['dtype']} batch {e['batch_size']}", e) for e in entries["hf_static"]]
    names = [name for name, _ in bars]
    values = [e["output_tokens_per_s"] for _, e in bars]
    colors = ["tab:green" if name.startswith("vLLM") else "tab:gray" for name in names]
    ax.barh(names, values, color=colors)
    ax.invert_yaxis()
    ax.set_xlabel("output tokens/s")
    ax.set_title(
        "equal lengths, EOS ignored"
        if workload == "equal_lengths"
        else "chat: EOS, long-tailed max_tokens"
    )


def _plots(writer: ResultsWriter, results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, (workload, entries) in zip(axes, results["offline"].items(), strict=True):
        _throughput_bars(ax, workload, entries)
    fig.suptitle(f"Offline throughput, SmolLM2-135M ({results['device']})")
    writer.save_figure(fig, "throughput")
    plt.close(fig)

    levels = results["online"]["levels"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    x = [level["concurrency"] for level in levels]
    axes[0].plot(x, [level["output_tokens_per_s"] for level in levels], marker="o")
    axes[0].set_title("output tokens/s")
    for ax, key, title in ((axes[1], "ttft_ms", "TTFT (ms)"), (axes[2], "tpot_ms", "TPOT (ms)")):
        ax.plot(x, [level[key]["p50"] for level in levels], marker="o", label="p50")
        ax.plot(x, [level[key]["p99"] for level in levels], marker="o", label="p99")
        ax.set_title(title)
        ax.legend()
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent streams")
    fig.suptitle(f"Online serving of {results['online']['model']} through the OpenAI API")
    writer.save_figure(fig, "online")
    plt.close(fig)


def write_results(
    results: dict[str, Any],
    dist_dir: Path,
    kind: Literal["demo", "benchmark"] = "benchmark",
    headline_items: list[dict[str, Any]] | None = None,
) -> Path:
    """``results.json`` + plots: the benchmark's in ``dist/llm-serving/benchmark/``, the demo's
    in ``dist/llm-serving/``. The headline is the benchmark's unless ``headline_items`` is given."""
    results = {
        **results,
        "headline": headline(results) if headline_items is None else headline_items,
        "targets": targets(results),
    }
    writer = ResultsWriter(PROJECT, dist_dir, invocation("llm_serving"), kind=kind)
    _plots(writer, results)
    return writer.write(results)
