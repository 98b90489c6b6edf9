"""Command line: prompts as files, kept in sync with MLflow's prompt registry, evaluated against
golden answers and gated.

python -m prompt_registry list
python -m prompt_registry show review-sentiment --alias production
python -m prompt_registry diff review-sentiment                 # file vs @production
python -m prompt_registry register                              # every prompt; unchanged: no-op
python -m prompt_registry export alignment-rules runs/my-prompts  # a copy to edit (--prompts-dir)
python -m prompt_registry eval review-sentiment --limit 8
python -m prompt_registry gate --changed-since origin/main --markdown gate.md
python -m prompt_registry promote review-sentiment --version 3  # gated; rollback undoes it
python -m prompt_registry demo
python -m prompt_registry benchmark --publish
Registry: PROMPT_REGISTRY_TRACKING_URI (or MLFLOW_TRACKING_URI); default a local sqlite store.
"""

from __future__ import annotations

import contextlib
import difflib
import json
from collections.abc import Callable, Iterator
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
    given,
    headline_table,
    lab_app,
)

from prompt_registry import PROJECT
from prompt_registry.settings import BenchmarkSizes, ProjectSettings

app = lab_app(
    "Versioned prompts in MLflow's prompt registry, golden-answer evals and a CI gate.",
    PROJECT,
    quiet_loggers=("transformers", "httpx2", "openai"),
    # An unreachable registry fails in seconds, not after MLflow's default minutes of retries.
    environment={
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    },
)
console = Console()
GATE_FAILED = 3
BENCHMARK_DEFAULTS = BenchmarkSizes()

PromptsDir = Annotated[
    Path | None, typer.Option(help="Folder of prompt folders (default: the shipped prompts).")
]
ProviderOpt = Annotated[str | None, typer.Option(help="local (transformers) or openai.")]
BaseUrl = Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint, .../v1.")]
MinGain = Annotated[
    float | None,
    typer.Option(
        help="The candidate must beat production: its paired pass-rate gain's lower bound above "
        "this (e.g. 0 for a new model); instead of the drop rule."
    ),
]
CacheOpt = Annotated[
    bool | None, typer.Option("--cache/--no-cache", help="Reuse cached generations.")
]
AcceptScorerCode = Annotated[
    bool,
    typer.Option(
        "--accept-scorer-code-change",
        help="Accept scorer code that differs from production's (recorded on the version).",
    ),
]


def _report_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    columns = ("prompt", "version", "examples", "pass rate", "95% CI", "cached", "calls", "cut")
    for column in columns:
        table.add_column(column)
    for row in rows:
        interval = row["pass_rate_interval"]
        table.add_row(
            row["prompt"],
            row["label"],
            str(row["examples"]),
            f"{row['pass_rate']:.3f}",
            f"[{interval['low']:.3f}, {interval['high']:.3f}]",
            str(row["cache_hits"]),
            str(row["model_calls"]),
            str(row["truncated"]),
        )
    table.caption = "cut: answers that hit the token limit (finish reason length)"
    return table


@app.command("list")
def list_command(
    prompts_dir: PromptsDir = None,
    run_dir: RunDirOption = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """The prompt files, with their registry versions and aliases."""
    with cli_errors():
        from prompt_registry.prompts import load_all
        from prompt_registry.registry import DIGEST_TAG, registry_for

        settings = ProjectSettings(
            **given(prompts_dir=prompts_dir, run_dir=run_dir, tracking_uri=tracking_uri)
        )
        folders = load_all(settings.prompts_dir)
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        registry = registry_for(settings)
        table = Table(title=f"prompts in {settings.prompts_dir}")
        for column in ("prompt", "variables", "golden", "scorers", "digest", "registry"):
            table.add_column(column)
        for folder in folders:
            versions = registry.versions(folder.name)
            digest = folder.content().digest
            in_registry = next(
                (int(v.version) for v in versions if v.tags.get(DIGEST_TAG) == digest), None
            )
            aliases = ", ".join(
                f"{a}=v{v}" for a, v in sorted(registry.aliases(folder.name).items())
            )
            state = (
                f"{len(versions)} versions; file = v{in_registry}"
                if in_registry
                else f"{len(versions)} versions; file unregistered"
            )
            table.add_row(
                folder.name,
                ", ".join(folder.spec.variables),
                folder.spec.eval.golden,
                ", ".join(s.type for s in folder.spec.eval.scorers),
                digest[:12],
                state + (f"; {aliases}" if aliases else ""),
            )
        console.print(table)


def _content(settings: ProjectSettings, name: str, version: int | None, alias: str | None) -> Any:
    from prompt_registry.prompts import load_prompt
    from prompt_registry.registry import registry_for

    if version is None and alias is None:
        return load_prompt(settings.prompts_dir, name).content()
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    return registry_for(settings).content(name, version, alias)


VersionOpt = Annotated[int | None, typer.Option(help="A registry version.")]
AliasOpt = Annotated[str | None, typer.Option(help="A registry alias (staging, production).")]


@app.command()
def show(
    name: str,
    version: VersionOpt = None,
    alias: AliasOpt = None,
    eval_config: Annotated[
        bool, typer.Option("--eval-config", help="Print the whole eval config (JSON).")
    ] = False,
    prompts_dir: PromptsDir = None,
    run_dir: RunDirOption = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """A prompt: the file, or a registry version (--version / --alias), with its eval config."""
    with cli_errors():
        settings = ProjectSettings(
            **given(prompts_dir=prompts_dir, run_dir=run_dir, tracking_uri=tracking_uri)
        )
        content = _content(settings, name, version, alias)
        if eval_config:
            typer.echo(json.dumps(content.config.to_dict(), indent=2))
            return
        config = content.config
        console.print(f"[bold]{content.name}[/] ({content.source}) digest {content.digest[:12]}")
        console.print(f"variables: {', '.join(content.variables)}")
        console.print(f"parameters: {json.dumps(content.params.model_dump())}")
        console.print(
            f"eval config {config.digest[:12]}: {len(config.examples)} examples "
            f"({config.golden}), scorers {', '.join(s.type for s in config.scorers)}, floor "
            f"{config.min_pass_rate}, baseline pin {config.baseline_version or 'none'}, "
            f"scorer code {config.scorer_code[:12]}",
            markup=False,
            highlight=False,
        )
        console.print(content.template, markup=False, highlight=False)


@app.command()
def diff(
    name: str,
    version: VersionOpt = None,
    alias: Annotated[str, typer.Option(help="Registry alias to compare with.")] = "production",
    prompts_dir: PromptsDir = None,
    run_dir: RunDirOption = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Unified diff of a registry version (default @production) against the prompt file."""
    with cli_errors():
        settings = ProjectSettings(
            **given(prompts_dir=prompts_dir, run_dir=run_dir, tracking_uri=tracking_uri)
        )
        old = _content(settings, name, version, None if version else alias)
        new = _content(settings, name, None, None)

        def lines(content: Any) -> list[str]:
            params = json.dumps(content.params.model_dump(), sort_keys=True)
            return [*content.template.splitlines(), f"# parameters: {params}"]

        text = "\n".join(
            difflib.unified_diff(lines(old), lines(new), old.source, "file", lineterm="")
        )
        console.print(
            text or f"{name}: the file equals {old.source}", markup=False, highlight=False
        )


@app.command()
def register(
    names: Annotated[list[str] | None, typer.Argument(help="Prompts (default: all).")] = None,
    message: Annotated[str | None, typer.Option(help="Commit message of new versions.")] = None,
    prompts_dir: PromptsDir = None,
    run_dir: RunDirOption = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Register the prompt files (a new version only when the content changed; sets staging)."""
    with cli_errors():
        from prompt_registry.prompts import load_prompt, prompt_names
        from prompt_registry.registry import registry_for

        settings = ProjectSettings(
            **given(prompts_dir=prompts_dir, run_dir=run_dir, tracking_uri=tracking_uri)
        )
        # Every folder is validated before anything is registered.
        folders = [
            load_prompt(settings.prompts_dir, n)
            for n in (names or prompt_names(settings.prompts_dir))
        ]
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        registry = registry_for(settings)
        for folder in folders:
            version, created = registry.register(folder, message)
            state = "new version" if created else "unchanged"
            console.print(f"{folder.name}: v{version} ({state}); staging -> v{version}")


@app.command()
def export(
    name: str,
    dest: Annotated[Path, typer.Argument(help="Folder to copy the prompt's folder into.")],
    prompts_dir: PromptsDir = None,
) -> None:
    """Copy a prompt's files (prompt.yaml, template, golden set) to DEST/NAME, e.g. to edit the
    shipped prompt and register the copy with --prompts-dir DEST."""
    with cli_errors():
        import shutil
        import tempfile

        from prompt_registry.errors import PromptRegistryError
        from prompt_registry.prompts import load_prompt

        settings = ProjectSettings(**given(prompts_dir=prompts_dir))
        folder = load_prompt(settings.prompts_dir, name)  # a valid prompt, or one error line
        target = dest / folder.name
        if target.exists():
            raise PromptRegistryError(f"{target} already exists: export into another folder")
        dest.mkdir(parents=True, exist_ok=True)
        # Copied beside the target, then renamed into place: never a half-written folder.
        staging = Path(tempfile.mkdtemp(dir=dest, prefix=f".{folder.name}-"))
        shutil.copytree(folder.path, staging, dirs_exist_ok=True)
        staging.rename(target)
        console.print(f"{name} -> {target}")


@contextlib.contextmanager
def generation_progress() -> Iterator[Callable[[int], None]]:
    """A live count of the examples generated (cache hits never reach the model)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}: {task.completed} examples"),
        TimeElapsedColumn(), console=Console(stderr=True), transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("generating", total=None)
        yield lambda count: progress.advance(task, count)


JudgeOpt = Annotated[
    str | None, typer.Option(help="Judge provider for llm_judge scorers: local or openai.")
]


@app.command("eval")
def eval_command(
    name: str,
    version: VersionOpt = None,
    alias: AliasOpt = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N examples.")] = None,
    provider: ProviderOpt = None,
    model_dir: ModelDirOption = None,
    base_url: BaseUrl = None,
    judge: JudgeOpt = None,
    cache: CacheOpt = None,
    output_json: Annotated[Path | None, typer.Option(help="Also write the results here.")] = None,
    prompts_dir: PromptsDir = None,
    run_dir: RunDirOption = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Evaluate a prompt (the file, or a registry version) on its golden set; an MLflow run."""
    with cli_errors():
        from roadmap_lab.results import atomic_write_json

        from prompt_registry.harness import evaluate_prompt

        settings = ProjectSettings(**given(
            prompts_dir=prompts_dir, run_dir=run_dir, tracking_uri=tracking_uri,
            provider=provider, model_dir=model_dir, openai_base_url=base_url, cache=cache,
        ))  # fmt: skip
        with generation_progress() as progress:
            report = evaluate_prompt(settings, name, version, alias, limit, judge, progress)
        console.print(_report_table("eval", [report.summary()]))
        console.print(f"MLflow run {report.run_id} in {settings.resolved_tracking_uri()}")
        if output_json is not None:
            atomic_write_json(
                output_json,
                {"summary": report.summary(), "examples": [vars(e) for e in report.examples]},
            )


@app.command()
def gate(
    names: Annotated[
        list[str] | None, typer.Argument(help="Prompts (default: changed/all).")
    ] = None,
    changed_since: Annotated[
        str | None,
        typer.Option(
            help="Gate only prompts changed since this git ref (every prompt when the scorer "
            "code changed); with no registry configured, production is the prompt files at that "
            "ref."
        ),
    ] = None,
    max_drop: Annotated[float | None, typer.Option(help="Largest pass-rate drop allowed.")] = None,
    min_gain: MinGain = None,
    markdown: Annotated[Path | None, typer.Option(help="Write the PR comment here.")] = None,
    output_json: Annotated[Path | None, typer.Option(help="Write the results here.")] = None,
    provider: ProviderOpt = None,
    model_dir: ModelDirOption = None,
    base_url: BaseUrl = None,
    judge: JudgeOpt = None,
    accept_scorer_code_change: AcceptScorerCode = False,
    prompts_dir: PromptsDir = None,
    run_dir: RunDirOption = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Changed prompts vs their production version, judged with production's golden set and
    scorers; exit 3 on a failure."""
    with cli_errors():
        from roadmap_lab.results import atomic_write_json, atomic_write_text

        from prompt_registry.changes import changed_prompts, scorer_code_at
        from prompt_registry.evalconfig import scorer_code_digest
        from prompt_registry.gate import markdown_report
        from prompt_registry.harness import build_harness
        from prompt_registry.prompts import prompt_names

        settings = ProjectSettings(**given(
            prompts_dir=prompts_dir, run_dir=run_dir, tracking_uri=tracking_uri, provider=provider,
            model_dir=model_dir, openai_base_url=base_url, gate_max_drop=max_drop,
            gate_min_gain=min_gain,
        ))  # fmt: skip
        if names:
            selected = list(names)
        elif changed_since and scorer_code_at(settings.prompts_dir, changed_since) not in (
            None,
            scorer_code_digest(),
        ):
            # The scorers judge every prompt: a change to them gates them all.
            selected = prompt_names(settings.prompts_dir)
        elif changed_since:
            selected = changed_prompts(settings.prompts_dir, changed_since)
        else:
            selected = prompt_names(settings.prompts_dir)
        console.print(f"gating {', '.join(selected) or 'no prompts'}")
        with generation_progress() as progress:
            results = build_harness(settings, judge, progress).gate(
                selected, changed_since, accept_scorer_code_change
            )
        report = markdown_report(results, settings.gate_max_drop)
        if markdown is not None:
            atomic_write_text(markdown, report)
        if output_json is not None:
            atomic_write_json(output_json, [r.as_dict() for r in results])
        for result in results:
            colour = "green" if result.passed else "red"
            console.print(f"[{colour}]{result.prompt}: {result.reason}[/]", highlight=False)
    if any(not r.passed for r in results):
        raise typer.Exit(GATE_FAILED)


@app.command()
def promote(
    name: str,
    version: Annotated[
        int | None, typer.Option(help="Version to promote (default: @staging).")
    ] = None,
    to: Annotated[str, typer.Option(help="staging or production (gated).")] = "production",
    max_drop: Annotated[float | None, typer.Option(help="Largest pass-rate drop allowed.")] = None,
    min_gain: MinGain = None,
    provider: ProviderOpt = None,
    model_dir: ModelDirOption = None,
    base_url: BaseUrl = None,
    accept_scorer_code_change: AcceptScorerCode = False,
    markdown: Annotated[Path | None, typer.Option(help="Write the gate report here.")] = None,
    run_dir: RunDirOption = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Point an alias at a version; production needs a passing gate (exit 3 otherwise), judged
    with production's stored golden set and scorers."""
    with cli_errors():
        from roadmap_lab.results import atomic_write_text

        from prompt_registry.errors import PromptRegistryError
        from prompt_registry.gate import markdown_report
        from prompt_registry.harness import build_harness
        from prompt_registry.registry import PRODUCTION, STAGING, registry_for

        settings = ProjectSettings(**given(
            run_dir=run_dir, tracking_uri=tracking_uri, provider=provider, model_dir=model_dir,
            openai_base_url=base_url, gate_max_drop=max_drop, gate_min_gain=min_gain,
        ))  # fmt: skip
        if to not in (STAGING, PRODUCTION):
            raise PromptRegistryError(f"--to {to!r}: use {STAGING} or {PRODUCTION}")
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        registry = registry_for(settings)
        version = version or registry.alias_version(name, STAGING)
        if version is None:
            raise PromptRegistryError(f"{name} has no {STAGING} version: register it first")
        if to == STAGING:
            registry.set_alias(name, STAGING, version)
            console.print(f"{name}: {STAGING} -> v{version}")
            return
        with generation_progress() as progress:
            result, previous = build_harness(settings, progress=progress).promote(
                name, version, accept_scorer_code_change
            )
        if markdown is not None:
            atomic_write_text(markdown, markdown_report([result], settings.gate_max_drop))
        colour = "green" if result.passed else "red"
        console.print(f"[{colour}]{name} v{version}: {result.reason}[/]", highlight=False)
        if result.passed:
            undo = f"; `rollback {name}` restores v{previous}" if previous else ""
            console.print(f"{name}: {PRODUCTION} -> v{version}{undo}")
    if not result.passed:
        raise typer.Exit(GATE_FAILED)


@app.command()
def rollback(
    name: str, run_dir: RunDirOption = None, tracking_uri: TrackingUriOption = None
) -> None:
    """Production back to the version it replaced (previous-production)."""
    with cli_errors():
        from prompt_registry.registry import registry_for

        settings = ProjectSettings(**given(run_dir=run_dir, tracking_uri=tracking_uri))
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        current, previous = registry_for(settings).rollback(name)
        console.print(f"{name}: production v{current} -> v{previous}")


@app.command()
def demo(
    dist_dir: DistDirOption = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Demo run folder (emptied first; default <run_dir>/demo).")
    ] = None,
    model_dir: ModelDirOption = None,
) -> None:
    """Register the prompts; gate an improvement, a regression, a trimmed regression (< 3 min)."""
    with cli_errors():
        from roadmap_lab.results import invocation

        from prompt_registry.demo import run_demo

        settings = ProjectSettings(**given(dist_dir=dist_dir, model_dir=model_dir))
        settings = settings.model_copy(
            update={"run_dir": run_dir or settings.run_dir / "demo", "tracking_uri": None}
        )
        results_file = run_demo(settings, invocation("prompt_registry"))
        console.print(f"results: {results_file}")


@app.command()
def benchmark(
    examples: Annotated[int, typer.Option(help="Examples per run.")] = BENCHMARK_DEFAULTS.examples,
    batch_size: Annotated[
        int, typer.Option(help="Batch of the batched run.")
    ] = BENCHMARK_DEFAULTS.batch_size,
    max_new_tokens: Annotated[
        int, typer.Option(help="Tokens generated per example.")
    ] = BENCHMARK_DEFAULTS.max_new_tokens,
    repeats: Annotated[
        int, typer.Option(help="Interleaved repeats of each comparison.")
    ] = BENCHMARK_DEFAULTS.repeats,
    publish: PublishOption = False,
    dist_dir: DistDirOption = None,
    model_dir: ModelDirOption = None,
) -> None:
    """Batched vs one-at-a-time generation, cached rerun vs warm uncached eval (examples/s)."""
    with cli_errors():
        from roadmap_lab.results import invocation

        from prompt_registry.benchmark import run_benchmark

        sizes = BenchmarkSizes(
            examples=examples, batch_size=batch_size, max_new_tokens=max_new_tokens, repeats=repeats
        )
        settings = ProjectSettings(**given(dist_dir=dist_dir, model_dir=model_dir))
        results_file, published = run_benchmark(
            settings, sizes, invocation("prompt_registry"), publish=publish
        )
        headline = json.loads(results_file.read_text(encoding="utf-8"))["headline"]
        console.print(headline_table(f"{PROJECT} benchmark", headline))
        console.print(f"results: {results_file}")
        if published is not None:
            console.print(f"published: {published}")


def main() -> None:
    """Run the CLI; it exits with the command's status."""
    app()


if __name__ == "__main__":
    main()
