"""Command line: preference data, DPO, a reward model, a GRPO step, win-rate evaluation, chat.

python -m llm_alignment build-data                      # verifiable pairs from SmolLM2 (+ card)
python -m llm_alignment inspect-data hh.jsonl.gz        # validate an HH-RLHF / TRL file
python -m llm_alignment train-dpo --config configs/dpo_smollm2.yaml [--precompute-ref-log-probs]
python -m llm_alignment train-dpo --processes 2          # two processes (torchrun; gloo on CPU)
python -m llm_alignment train-reward                    # reward model + held-out pairwise accuracy
python -m llm_alignment train-grpo --max-steps 20       # online RL rewarded by the verifier
python -m llm_alignment evaluate --adapter runs/llm-alignment/dpo/adapter --html eval.html
python -m llm_alignment chat --adapter runs/llm-alignment/dpo/adapter
python -m llm_alignment export-vllm runs/llm-alignment/dpo/adapter dist/vllm-adapter
python -m llm_alignment merge-adapter models:/llm-alignment-dpo/1 dist/merged  # HF folder, no PEFT
python -m llm_alignment demo
python -m llm_alignment benchmark --publish
Tracking: LLM_ALIGNMENT_TRACKING_URI (or MLFLOW_TRACKING_URI); default a local sqlite store in
the run folder. Base model: --model-dir / LLM_ALIGNMENT_MODEL_DIR (default SmolLM2-135M-Instruct).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from roadmap_lab.cli import (
    DistDirOption,
    ModelDirOption,
    PublishOption,
    RunDirOption,
    TrackingUriOption,
    cli_errors,
    error_line,
    given,
    headline_table,
    lab_app,
)

from llm_alignment import PROJECT
from llm_alignment.errors import ConfigError
from llm_alignment.settings import ProjectSettings

app = lab_app(
    "Align SmolLM2 with DPO (TRL + PEFT LoRA), a reward model and GRPO; measure win-rate.",
    PROJECT,
    environment={"HF_HUB_DISABLE_PROGRESS_BARS": "1"},
)
console = Console()

DataDir = Annotated[
    Path | None, typer.Option(help="Built data set folder (default: <run-dir>/data).")
]
Config = Annotated[Path | None, typer.Option(help="YAML file of options; flags override it.")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Any other option as KEY=VALUE (YAML value).")
]


def _overrides(values: list[str] | None, flags: dict[str, Any]) -> dict[str, Any]:
    """``--set KEY=VALUE`` options with the given (non-None) flags on top."""
    return _parse_sets(values) | given(**flags)


def _parse_sets(values: list[str] | None) -> dict[str, Any]:
    import yaml

    parsed: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            parsed[key.replace("-", "_")] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: {raw!r} is not a YAML value") from None
    return parsed


def _training_rows(
    settings: ProjectSettings, data: Path | None, data_dir: Path | None
) -> list[dict[str, Any]]:
    from llm_alignment.data import load_dataset, load_preferences

    if data is not None:
        return load_preferences(data)
    train, _, _, _ = load_dataset(data_dir or settings.data_dir)
    return train


@app.command("build-data")
def build_data(
    per_template: Annotated[int, typer.Option(help="Prompts per template.")] = 6,
    samples: Annotated[int, typer.Option(help="Responses sampled per prompt.")] = 4,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per sampled response.")] = 48,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    min_gap: Annotated[float, typer.Option(help="Best - worst score a pair needs.")] = 0.25,
    seed: Annotated[int, typer.Option(help="Prompt, split and sampling seed.")] = 0,
    out: DataDir = None,
    model_dir: ModelDirOption = None,
    run_dir: RunDirOption = None,
) -> None:
    """Build verifiable preference pairs from the base model, with a data card."""
    with cli_errors():
        from llm_alignment.pairs import PairOptions, build_pairs
        from llm_alignment.settings import base_model_dir

        settings = ProjectSettings(**given(model_dir=model_dir, run_dir=run_dir))
        options = PairOptions(
            per_template=per_template,
            samples=samples,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            min_gap=min_gap,
            seed=seed,
        )
        folder = out or settings.data_dir
        base = base_model_dir(settings.model_dir)
        card = build_pairs(base, folder, options, model_name=base.name)
        console.print_json(json.dumps({"folder": str(folder), **card["splits"]}))


@app.command("inspect-data")
def inspect_data(
    path: Annotated[Path, typer.Argument(help="A .jsonl or .jsonl.gz preference file.")],
    fmt: Annotated[str, typer.Option("--format", help="hh, conversational or auto.")] = "auto",
) -> None:
    """Validate a preference file and show its first row in TRL's conversational format."""
    with cli_errors():
        from llm_alignment.data import load_preferences

        rows = load_preferences(path, fmt)
        console.print(f"{len(rows)} rows; first row:")
        console.print_json(json.dumps(rows[0]))


@app.command("train-dpo")
def train_dpo_command(
    config: Config = None,
    data: Annotated[
        Path | None, typer.Option(help="Preference file (HH or TRL jsonl[.gz]).")
    ] = None,
    data_dir: DataDir = None,
    output_dir: Annotated[Path | None, typer.Option(help="Where the adapter goes.")] = None,
    beta: Annotated[float | None, typer.Option(help="DPO beta.")] = None,
    learning_rate: Annotated[float | None, typer.Option()] = None,
    num_train_epochs: Annotated[float | None, typer.Option()] = None,
    max_steps: Annotated[int | None, typer.Option(help="> 0 overrides epochs.")] = None,
    per_device_train_batch_size: Annotated[int | None, typer.Option("--batch-size")] = None,
    lora_r: Annotated[int | None, typer.Option()] = None,
    lora_alpha: Annotated[int | None, typer.Option()] = None,
    max_length: Annotated[int | None, typer.Option()] = None,
    precompute_ref_log_probs: Annotated[
        bool | None, typer.Option("--precompute-ref-log-probs/--no-precompute-ref-log-probs")
    ] = None,
    register_name: Annotated[str | None, typer.Option(help="MLflow registered model.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    processes: Annotated[
        int, typer.Option(help="Train in this many processes (re-launches itself under torchrun).")
    ] = 1,
    sets: SetOption = None,
    model_dir: ModelDirOption = None,
    run_dir: RunDirOption = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Train a LoRA adapter with DPO; track in MLflow; save and register the adapter."""
    with cli_errors():
        from llm_alignment.dpo import DPOOptions, load_options, train_dpo
        from llm_alignment.launch import relaunch, under_launcher
        from llm_alignment.settings import base_model_dir

        settings = ProjectSettings(
            **given(model_dir=model_dir, run_dir=run_dir, tracking_uri=tracking_uri)
        )
        flags = {
            "data": data,
            "output_dir": output_dir,
            "beta": beta,
            "learning_rate": learning_rate,
            "num_train_epochs": num_train_epochs,
            "max_steps": max_steps,
            "per_device_train_batch_size": per_device_train_batch_size,
            "lora_r": lora_r,
            "lora_alpha": lora_alpha,
            "max_length": max_length,
            "precompute_ref_log_probs": precompute_ref_log_probs,
            "register_name": register_name,
            "seed": seed,
            "model_dir": model_dir,
        }
        options: DPOOptions = load_options(DPOOptions, config, _overrides(sets, flags))
        if options.output_dir == DPOOptions().output_dir:
            options = options.model_copy(update={"output_dir": settings.run_dir / "dpo"})
        if processes < 1:
            raise ConfigError(f"--processes must be at least 1, got {processes}")
        rows = _training_rows(settings, options.data, data_dir)  # bad data fails here, once
        if processes > 1 and not under_launcher():
            status = relaunch(
                "train-dpo",
                options,
                processes,
                {
                    "data_dir": data_dir,
                    "run_dir": settings.run_dir,
                    "tracking_uri": settings.resolved_tracking_uri(),
                },
            )
            if status != 0:
                raise error_line(
                    f"training in {processes} processes failed (torchrun status "
                    f"{status}); their output is above",
                    status,
                )
            return
        summary = train_dpo(
            options,
            rows,
            base_model_dir(options.model_dir or settings.model_dir),
            tracking_uri=settings.resolved_tracking_uri(),
            experiment=settings.experiment,
            artifacts_dir=settings.local_artifact_root(),
        )
        if summary["is_main_process"]:
            console.print_json(json.dumps({k: v for k, v in summary.items() if k != "history"}))


@app.command("train-reward")
def train_reward_command(
    config: Config = None,
    data_dir: DataDir = None,
    output_dir: Annotated[Path | None, typer.Option()] = None,
    max_steps: Annotated[int | None, typer.Option()] = None,
    num_train_epochs: Annotated[float | None, typer.Option()] = None,
    sets: SetOption = None,
    model_dir: ModelDirOption = None,
    run_dir: RunDirOption = None,
) -> None:
    """Train a reward model (LoRA) on the pairs; report held-out pairwise accuracy."""
    with cli_errors():
        from llm_alignment.data import load_dataset
        from llm_alignment.dpo import load_options
        from llm_alignment.reward import (
            RewardOptions,
            RewardScorer,
            pairwise_accuracy,
            train_reward_model,
        )
        from llm_alignment.settings import base_model_dir

        settings = ProjectSettings(**given(model_dir=model_dir, run_dir=run_dir))
        flags: dict[str, Any] = {
            "output_dir": output_dir or settings.run_dir / "reward",
            "max_steps": max_steps,
            "num_train_epochs": num_train_epochs,
        }
        options = load_options(RewardOptions, config, _overrides(sets, flags))
        train, heldout, _, _ = load_dataset(data_dir or settings.data_dir)
        base = base_model_dir(settings.model_dir)
        summary = train_reward_model(options, train, base)
        accuracy = pairwise_accuracy(RewardScorer(base, Path(summary["adapter_dir"])), heldout)
        console.print_json(json.dumps({"adapter_dir": summary["adapter_dir"], **accuracy}))


@app.command("train-grpo")
def train_grpo_command(
    config: Config = None,
    max_steps: Annotated[int | None, typer.Option()] = None,
    per_template: Annotated[int, typer.Option(help="Training prompts per template.")] = 4,
    output_dir: Annotated[Path | None, typer.Option()] = None,
    sets: SetOption = None,
    model_dir: ModelDirOption = None,
    run_dir: RunDirOption = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Online RL (GRPO) on the training templates' prompts, rewarded by the verifier."""
    with cli_errors():
        from llm_alignment.dpo import load_options
        from llm_alignment.prompts import make_prompts, split_by_template
        from llm_alignment.rl import GRPOOptions, train_grpo
        from llm_alignment.settings import base_model_dir

        settings = ProjectSettings(
            **given(model_dir=model_dir, run_dir=run_dir, tracking_uri=tracking_uri)
        )
        flags = {"output_dir": output_dir or settings.run_dir / "grpo", "max_steps": max_steps}
        options = load_options(GRPOOptions, config, _overrides(sets, flags))
        train, _ = split_by_template(make_prompts(per_template, options.seed), options.seed)
        summary = train_grpo(
            options,
            [item.as_row() for item in train],
            base_model_dir(settings.model_dir),
            tracking_uri=settings.resolved_tracking_uri(),
            experiment=settings.experiment,
            artifacts_dir=settings.local_artifact_root(),
        )
        if summary["is_main_process"]:  # under torchrun, one summary
            console.print_json(json.dumps({k: v for k, v in summary.items() if k != "history"}))


@app.command("evaluate")
def evaluate_command(
    adapter: Annotated[Path, typer.Option(help="The policy's LoRA adapter folder.")],
    data_dir: DataDir = None,
    reward_adapter: Annotated[
        Path | None, typer.Option(help="Reward model adapter: its preference beside.")
    ] = None,
    html: Annotated[Path | None, typer.Option(help="Write the side-by-side page here.")] = None,
    max_new_tokens: Annotated[int, typer.Option()] = 48,
    kl_samples: Annotated[
        int, typer.Option(min=1, help="Answers sampled per prompt for the KL estimate.")
    ] = 4,
    model_dir: ModelDirOption = None,
    run_dir: RunDirOption = None,
) -> None:
    """Win-rate of a policy against the base on held-out rules and held-out templates (the
    verifier's pass/fail as judge, cluster bootstrap intervals over templates)."""
    with cli_errors():
        from llm_alignment.data import load_dataset
        from llm_alignment.evaluate import evaluate_policy, render_html
        from llm_alignment.settings import base_model_dir

        settings = ProjectSettings(**given(model_dir=model_dir, run_dir=run_dir))
        _, _, prompts, _ = load_dataset(data_dir or settings.data_dir)
        report = evaluate_policy(
            base_model_dir(settings.model_dir),
            adapter,
            prompts,
            max_new_tokens=max_new_tokens,
            kl_samples=kl_samples,
            seed=settings.seed,
            reward_model_dir=reward_adapter,
        )
        if html is not None:
            render_html(report, f"{adapter} vs base", html)
        print_report(report)


def print_report(report: dict[str, Any]) -> None:
    from llm_alignment.evaluate import GROUP_NAMES, figure_text

    table = Table("group / rule", "win-rate [95% cluster CI] (templates, prompts)", "pass rate")
    for group, summary in report["groups"].items():
        table.add_row(
            f"[b]{GROUP_NAMES[group]}[/b]",
            figure_text(summary),
            f"{summary['base_pass_rate']:.3f} -> {summary['policy_pass_rate']:.3f}",
        )
        table.add_row("  length-controlled", figure_text(summary["length_controlled"]), "")
        for rule, row in summary["per_rule"].items():
            table.add_row(
                f"  {rule}",
                figure_text(row),
                f"{row['base_pass_rate']:.3f} -> {row['policy_pass_rate']:.3f}",
            )
    console.print(table)
    kl = report["kl_to_base"]
    console.print(
        f"judge: {report['judge']}; KL to base {kl['kl']:.3f} nats/answer "
        f"(SE {kl['se'] if kl['se'] is None else round(kl['se'], 3)}, {kl['samples']} samples)"
    )
    if "reward_model" in report:
        for group, figure in report["reward_model"].items():
            console.print(f"reward model's win-rate, {GROUP_NAMES[group]}: {figure_text(figure)}")


@app.command("chat")
def chat(
    adapter: Annotated[Path | None, typer.Option(help="Policy adapter (none: the base).")] = None,
    message: Annotated[str | None, typer.Option(help="One message; omit to chat.")] = None,
    max_new_tokens: Annotated[int, typer.Option()] = 128,
    model_dir: ModelDirOption = None,
) -> None:
    """Talk to a saved policy (greedy). Empty line or Ctrl-D ends the chat."""
    with cli_errors():
        from llm_alignment.generation import generate, load_policy
        from llm_alignment.settings import base_model_dir

        settings = ProjectSettings(**given(model_dir=model_dir))
        model, tokenizer = load_policy(base_model_dir(settings.model_dir), adapter)
        history: list[dict[str, str]] = []
        while True:
            if message is None:
                try:
                    text = input("you> ").strip()
                except EOFError:
                    break
                if not text:
                    break
            else:
                text = message
            history.append({"role": "user", "content": text})
            answer = generate(model, tokenizer, [history], max_new_tokens=max_new_tokens)[0][0]
            history.append({"role": "assistant", "content": answer})
            console.print(answer if message is not None else f"bot> {answer}", highlight=False)
            if message is not None:
                break


@app.command("export-vllm")
def export_vllm(
    adapter: Annotated[Path, typer.Argument(help="A saved PEFT LoRA adapter folder.")],
    dest: Annotated[Path, typer.Argument(help="Output folder.")],
    base_model_name: Annotated[
        str | None, typer.Option(help="Served base model's name, recorded in the config.")
    ] = None,
) -> None:
    """Export an adapter in the layout vLLM loads as a LoRA adapter."""
    with cli_errors():
        from llm_alignment.export import export_for_vllm

        console.print_json(json.dumps(export_for_vllm(adapter, dest, base_model_name)))


@app.command("merge-adapter")
def merge_adapter_command(
    source: Annotated[
        str,
        typer.Argument(
            help="A saved PEFT LoRA adapter folder, or models:/<name>/<version> (or @<alias>) "
            "of an adapter this project registered."
        ),
    ],
    dest: Annotated[Path, typer.Argument(help="Output folder: the merged model (replaced).")],
    model_dir: ModelDirOption = None,
    run_dir: RunDirOption = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Merge a LoRA adapter into the base model: a plain HF model folder (float32) that any
    model-folder tool (prompt-registry --model-dir) runs without PEFT."""
    with cli_errors():
        from llm_alignment.merge import merge_adapter
        from llm_alignment.settings import base_model_dir

        settings = ProjectSettings(
            **given(model_dir=model_dir, run_dir=run_dir, tracking_uri=tracking_uri)
        )
        local_store = settings.run_dir / "mlflow.db"
        # The default registry is the run folder's store, when there is one.
        registry = (
            None
            if settings.uses_local_store() and not local_store.is_file()
            else settings.resolved_tracking_uri()
        )
        base = base_model_dir(settings.model_dir)
        console.print_json(json.dumps(merge_adapter(source, dest, base, registry)))


@app.command("demo")
def demo(
    dist_dir: DistDirOption = None,
    run_dir: RunDirOption = None,
    model_dir: ModelDirOption = None,
    per_template: Annotated[int | None, typer.Option(help="Prompts per template.")] = None,
) -> None:
    """State the claim, build pairs, train DPO, measure the win-rate on held-out rules; results
    for the showcase (at most 6 min on 2 cores)."""
    with cli_errors():
        from roadmap_lab.results import invocation

        from llm_alignment.demo import CLAIM, DemoSizes, run_demo

        console.print(f"[bold]Claim:[/bold] {CLAIM}")
        settings = ProjectSettings(**given(dist_dir=dist_dir, run_dir=run_dir, model_dir=model_dir))
        sizes = DemoSizes(**({"per_template": per_template} if per_template else {}))
        path = run_demo(settings, sizes, invocation("llm_alignment"))
        results = json.loads(path.read_text(encoding="utf-8"))
        console.print(headline_table("llm-alignment demo", results["headline"]))
        console.print(f"results: {path}")


@app.command("benchmark")
def benchmark(
    publish: PublishOption = False,
    dist_dir: DistDirOption = None,
    run_dir: RunDirOption = None,
    model_dir: ModelDirOption = None,
    resume: Annotated[
        bool, typer.Option(help="Reuse the stages already finished with the same settings.")
    ] = False,
    stage_dir: Annotated[
        Path | None,
        typer.Option(help="Where stage records go (default: <run-dir>/benchmark/stages)."),
    ] = None,
    config: Config = None,
    sets: SetOption = None,
) -> None:
    """The full-size benchmark in resumable stages (hours on 2 cores; --resume continues): DPO
    win-rates on held-out rules over 3 seeds, pooled, with cluster intervals; GRPO; the reward
    model; DPO steps/s with precomputed reference log-probs against on the fly. Sizes: the
    BenchmarkSizes defaults, changed with --config / --set (e.g. --set grpo_steps=60)."""
    with cli_errors():
        from roadmap_lab.results import ensure_quiet_machine, invocation, publish_benchmark

        from llm_alignment.benchmark import BenchmarkSizes, run_benchmark
        from llm_alignment.dpo import load_options
        from llm_alignment.stages import StageStore

        settings = ProjectSettings(**given(dist_dir=dist_dir, run_dir=run_dir, model_dir=model_dir))
        sizes = load_options(BenchmarkSizes, config, _parse_sets(sets))
        store = StageStore(stage_dir or settings.run_dir / "benchmark" / "stages")
        if publish:
            ensure_quiet_machine()
        path, table = run_benchmark(
            settings, sizes, store, invocation("llm_alignment"), resume=resume
        )
        console.print(table)
        console.print(f"results: {path}")
        if publish:
            console.print(f"published: {publish_benchmark(path)}")


def main() -> None:
    app()  # standalone: exits with the command's status
