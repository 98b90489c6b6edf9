"""Turn benchmark results into targets, vLLM-style lines, a table, plots and results.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from roadmap_lab.results import ResultsWriter, invocation

PROJECT = "llm-serving"

# The targets. CPU and GPU differ for the ratio to HF sequential.
TARGETS = {
    "cpu": {"vllm_vs_hf_sequential": 30.0, "vllm_vs_hf_best_static_chat": 3.0},
    "cuda": {"vllm_vs_hf_sequential": 24.0, "vllm_vs_hf_best_static_chat": 3.0},
}
QUANT_SPEEDUP_TARGET = 1.2
PERPLEXITY_DELTA_TARGET_PCT = 2.0


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    ratios, quality = results["ratios"], results["quality"]
    goals = TARGETS[results["device"]]
    sequential, chat = "vllm_vs_hf_sequential", "vllm_vs_hf_best_static_chat"
    rows = [
        ("vLLM / HF sequential, equal lengths (x)", ratios[sequential], goals[sequential], ">="),
        ("vLLM / HF best static batch, chat workload (x)", ratios[chat], goals[chat], ">="),
        (
            "quantized / bf16 on vLLM, equal lengths (x)",
            ratios["quantized_vs_bf16_equal_lengths"],
            QUANT_SPEEDUP_TARGET,
            ">=",
        ),
        (
            "perplexity quantized vs bf16 (% change)",
            quality["perplexity_delta_pct"],
            PERPLEXITY_DELTA_TARGET_PCT,
            "<=",
        ),
    ]
    return [
        {
            "name": name,
            "value": value,
            "target": f"{op} {goal:g}",
            "met": value >= goal if op == ">=" else value <= goal,
        }
        for name, value, goal, op in rows
    ]


def headline(results: dict[str, Any]) -> list[dict[str, Any]]:
    offline = results["offline"]
    baselines = [
        offline["equal_lengths"]["hf_sequential"]["output_tokens_per_s"],
        offline["chat"]["hf_best_static"]["output_tokens_per_s"],
        offline["equal_lengths"]["vllm_bf16"]["output_tokens_per_s"],
        results["quality"]["perplexity_bf16"],
    ]
    units = ["x", "x", "x", "%"]
    return [
        {
            "name": t["name"],
            "value": t["value"],
            "unit": unit,
            "baseline": base,
            "target": t["target"],
        }
        for t, unit, base in zip(targets(results), units, baselines, strict=True)
    ]


def demo_headline(results: dict[str, Any], reference: dict[str, Any] | None) -> list[dict]:
    """The demo's own figures, without targets (too small a run to judge them), then those of the
    committed full benchmark with theirs."""
    items = [
        {**item, "name": f"demo: {item['name']}", "target": None} for item in headline(results)
    ]
    if reference is not None:
        cpu = reference.get("machine", {}).get("cpu_model") or "?"
        items += [
            {**item, "name": f"full benchmark ({cpu}): {item['name']}"}
            for item in reference["headline"]
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
                    f"[{workload}] {e['engine']:<22} Throughput: {e['requests_per_s']:.2f} "
                    f"requests/s, {e['total_tokens_per_s']:.2f} total tokens/s, "
                    f"{e['output_tokens_per_s']:.2f} output tokens/s"
                )
    return lines


def print_report(results: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=max(Console().width, 140))
    for line in throughput_lines(results):
        console.print(line, highlight=False)
    table = Table(
        title=f"llm-serving targets ({results['device']}, {results['machine'].get('cpu_model')})"
    )
    for column in ("measure", "value", "target", "met"):
        table.add_column(column)
    for t in targets(results):
        table.add_row(t["name"], f"{t['value']}", t["target"], "yes" if t["met"] else "NO")
    console.print(table)
    online = Table(title=f"Online serving ({results['online']['model']}, OpenAI client, streaming)")
    for column in (
        "concurrency",
        "ok/sent",
        "req/s",
        "out tok/s",
        "TTFT p50/p99 ms",
        "TPOT p50/p99 ms",
        "latency p50/p99 ms",
    ):
        online.add_column(column)
    for level in results["online"]["levels"]:
        online.add_row(
            str(level["concurrency"]),
            f"{level['completed']}/{level['requests']}",
            f"{level['requests_per_s']:.2f}",
            f"{level['output_tokens_per_s']:.1f}",
            f"{level['ttft_ms']['p50']}/{level['ttft_ms']['p99']}",
            f"{level['tpot_ms']['p50']}/{level['tpot_ms']['p99']}",
            f"{level['latency_ms']['p50']}/{level['latency_ms']['p99']}",
        )
    console.print(online)


def _plots(writer: ResultsWriter, results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (workload, entries) in zip(axes, results["offline"].items(), strict=True):
        bars = [("vLLM bf16", entries["vllm_bf16"]), ("vLLM quantized", entries["vllm_quantized"])]
        if "hf_sequential" in entries:
            bars.append(("HF sequential", entries["hf_sequential"]))
        bars += [(f"HF batch {e['batch_size']}", e) for e in entries["hf_static"]]
        names = [name for name, _ in bars]
        values = [e["output_tokens_per_s"] for _, e in bars]
        colors = ["tab:green" if name.startswith("vLLM") else "tab:gray" for name in names]
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        ax.set_xlabel("output tokens/s")
        title = (
            "equal lengths, EOS ignored"
            if workload == "equal_lengths"
            else "chat: EOS, long-tailed max_tokens"
        )
        ax.set_title(title)
    fig.suptitle(f"Offline throughput, SmolLM2-135M ({results['device']})")
    writer.save_figure(fig, "throughput")
    plt.close(fig)

    levels = results["online"]["levels"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    x = [level["concurrency"] for level in levels]
    axes[0].plot(x, [level["output_tokens_per_s"] for level in levels], marker="o")
    axes[0].set_title("output tokens/s")
    axes[1].plot(x, [level["ttft_ms"]["p50"] for level in levels], marker="o", label="p50")
    axes[1].plot(x, [level["ttft_ms"]["p99"] for level in levels], marker="o", label="p99")
    axes[1].set_title("TTFT (ms)")
    axes[1].legend()
    axes[2].plot(x, [level["tpot_ms"]["p50"] for level in levels], marker="o", label="p50")
    axes[2].plot(x, [level["tpot_ms"]["p99"] for level in levels], marker="o", label="p99")
    axes[2].set_title("TPOT (ms)")
    axes[2].legend()
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent streams")
    fig.suptitle(f"Online serving of {results['online']['model']} through the OpenAI API")
    writer.save_figure(fig, "online")
    plt.close(fig)


def write_results(results: dict[str, Any], dist_dir: Path, copy_to: Path | None = None) -> Path:
    """dist/llm-serving/results.json + plots; also written to ``copy_to`` (e.g. benchmarks/)."""
    results = {**results, "headline": headline(results), "targets": targets(results)}
    writer = ResultsWriter(PROJECT, dist_dir, invocation("llm_serving"))
    _plots(writer, results)
    path = writer.write(results)
    if copy_to is not None:
        from roadmap_lab.results import atomic_write_bytes

        atomic_write_bytes(copy_to, path.read_bytes())
        for plot in writer.plots:
            atomic_write_bytes(copy_to.parent / plot, (writer.folder / plot).read_bytes())
    return path
