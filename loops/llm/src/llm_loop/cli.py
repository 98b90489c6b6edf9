"""Command line: the loop once (demo) and its benchmark (vLLM against Hugging Face).

python -m llm_loop demo              # reuses llm-alignment's demo adapter; <= 5 min on 2 cores
python -m llm_loop demo --train      # trains a small adapter first (llm-alignment's CLI)
python -m llm_loop benchmark         # trains the adapter, then vLLM and HF on the same version
Needs the three projects' PEXes: ./pants package projects/llm-alignment:cli
projects/llm-serving:cli projects/prompt-registry:cli
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from roadmap_lab.cli import (
    DistDirOption,
    PublishOption,
    RunDirOption,
    cli_errors,
    given,
    headline_table,
    lab_app,
)

from llm_loop import PROJECT
from llm_loop.settings import LoopSettings

app = lab_app(
    "The LLM loop: llm-alignment's adapter served by llm-serving's vLLM beside its base, "
    "evaluated and gated by prompt-registry on rules the adapter never trained on.",
    PROJECT,
    quiet_loggers=("roadmap_lab.services",),
)
console = Console()

Prompt = Annotated[
    str | None, typer.Option(help="prompt-registry's prompt to gate on (its held-out rules).")
]
MinGain = Annotated[
    float | None,
    typer.Option(help="The gain the gate requires: the lower bound of the adapter's paired "
                 "pass-rate gain above this (default 0).", min=-1, max=1),
]  # fmt: skip
TrainSteps = Annotated[
    int | None, typer.Option(help="DPO steps when training (default: 2 epochs).", min=1)
]


@app.command()
def demo(
    train: Annotated[
        bool, typer.Option(help="Train an adapter here instead of reusing llm-alignment's.")
    ] = False,
    train_steps: TrainSteps = None,
    prompt: Prompt = None,
    min_gain: MinGain = None,
    dist_dir: DistDirOption = None,
    run_dir: RunDirOption = None,
) -> None:
    """The loop once: serve base + adapter with vLLM, evaluate both with prompt-registry, gate
    and promote; writes dist/llm-loop/results.json and the side-by-side page."""
    with cli_errors():
        from roadmap_lab.results import invocation

        from llm_loop.demo import CLAIM, run_demo

        console.print(f"[bold]Claim:[/bold] {CLAIM}")
        settings = LoopSettings(**given(
            train=train or None, train_max_steps=train_steps, prompt=prompt,
            gate_min_gain=min_gain, dist_dir=dist_dir, run_dir=run_dir,
        ))  # fmt: skip
        path = run_demo(settings, invocation("llm_loop"))
        results = json.loads(path.read_text(encoding="utf-8"))
        console.print(headline_table(f"{PROJECT} demo", results["headline"]))
        console.print(f"results -> {path}")


@app.command()
def benchmark(
    reuse: Annotated[
        bool, typer.Option(help="Reuse llm-alignment's demo adapter instead of training one.")
    ] = False,
    train_steps: TrainSteps = None,
    prompt: Prompt = None,
    min_gain: MinGain = None,
    dist_dir: DistDirOption = None,
    run_dir: RunDirOption = None,
    publish: PublishOption = False,
) -> None:
    """The loop through vLLM, then the same prompt version through HF (base, and the adapter
    merged into it): pass rates, the paired gain with its interval, the gate's decision, and how
    far HF agrees."""
    with cli_errors():
        from roadmap_lab.results import ensure_quiet_machine, invocation, publish_benchmark

        from llm_loop.benchmark import run_benchmark

        settings = LoopSettings(**given(
            train=not reuse, train_max_steps=train_steps, prompt=prompt, gate_min_gain=min_gain,
            dist_dir=dist_dir, run_dir=run_dir,
        ))  # fmt: skip
        if publish:
            ensure_quiet_machine()
        path, results = run_benchmark(settings, invocation("llm_loop"))
        console.print(headline_table(f"{PROJECT} benchmark", results["headline"]))
        console.print(f"results -> {path}")
        if publish:
            console.print(f"published -> {publish_benchmark(path)}")


def main() -> None:
    app()
