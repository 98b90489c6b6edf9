"""The command-line scaffold every project's CLI is built on (typer + rich).

* ``lab_app(help, project)``: the Typer app, with one setup callback (``setup``: logging at
  ``<PREFIX>LOG_LEVEL``, quiet third-party loggers, offline defaults for their environment); a
  single-command app (no subcommands) calls ``setup`` itself.
* ``cli_errors()``: around each command's body: a ``LabError`` (the user can fix it) or invalid
  settings become one line on stderr and exit 2; Ctrl-C exits 130 without a traceback; anything
  else is a bug and keeps its traceback.
* The common options, defined once: ``RunDirOption``, ``DistDirOption``, ``TrackingUriOption``,
  ``ModelDirOption``, ``PublishOption``; ``given(**flags)`` keeps the flags that were given, so
  settings from the environment are overridden only by those.
* ``headline_table(title, headline)``: a results file's headline as a rich table, verdicts
  included (console output belongs to the CLI, never to library code).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from roadmap_lab.errors import LabError
from roadmap_lab.logs import setup_logging
from roadmap_lab.settings import OFFLINE_ENVIRONMENT, env_prefix

stderr = Console(stderr=True, soft_wrap=True)

# Libraries whose INFO logs drown ours; warnings still show.
QUIET_LOGGERS = ("mlflow", "alembic", "urllib3", "httpx", "httpcore", "filelock", "asyncio")


def setup(
    project: str, quiet_loggers: Iterable[str] = (), environment: Mapping[str, str] | None = None
) -> None:
    """What every command runs first: the offline environment (``environment`` adds the
    project's own defaults; variables already set win), logging at ``<PREFIX>LOG_LEVEL``, quiet
    third-party loggers. ``lab_app``'s callback calls it; a single-command app calls it itself."""
    for name, value in {**OFFLINE_ENVIRONMENT, **(environment or {})}.items():
        os.environ.setdefault(name, value)
    setup_logging(os.environ.get(f"{env_prefix(project)}LOG_LEVEL", "INFO"))
    for name in (*QUIET_LOGGERS, *quiet_loggers):
        logging.getLogger(name).setLevel(logging.WARNING)


def lab_app(
    help: str,
    project: str,
    quiet_loggers: Iterable[str] = (),
    environment: Mapping[str, str] | None = None,
) -> typer.Typer:
    """A project's Typer app; its callback runs ``setup`` before any command."""
    app = typer.Typer(
        add_completion=False,
        no_args_is_help=True,
        help=help,
        pretty_exceptions_show_locals=False,
    )

    @app.callback()
    def _setup() -> None:
        setup(project, quiet_loggers, environment)

    return app


def error_line(message: object, code: int = 2) -> typer.Exit:
    """Print ``error: <message>`` on stderr; return the Exit to raise."""
    stderr.print(f"[red]error:[/] {escape(str(message))}", highlight=False)
    return typer.Exit(code)


def _settings_problems(error: Any) -> str:
    return "; ".join(
        f"{'.'.join(map(str, problem['loc'])) or 'settings'}: {problem['msg']}"
        for problem in error.errors()
    )


@contextlib.contextmanager
def cli_errors(*also: type[BaseException]) -> Iterator[None]:
    """One line on stderr and exit 2 for what the user can fix (``LabError``, invalid settings,
    and the exception types in ``also``); exit 130 on Ctrl-C or another ``KeyboardInterrupt``
    (with its message, if any); a traceback for anything else."""
    from pydantic import ValidationError

    user_errors: tuple[type[BaseException], ...] = (LabError, *also)
    try:
        yield
    except ValidationError as error:
        raise error_line(f"invalid settings: {_settings_problems(error)}") from None
    except user_errors as error:
        raise error_line(error) from None
    except KeyboardInterrupt as error:
        # A project's own interruption may say what was saved and how to resume.
        detail = f": {error}" if str(error) else ""
        stderr.print(f"[yellow]interrupted[/]{escape(detail)}", highlight=False)
        raise typer.Exit(130) from None


def given(**flags: Any) -> dict[str, Any]:
    """The flags that were given (not None): what overrides the settings from the environment."""
    return {name: value for name, value in flags.items() if value is not None}


RunDirOption = Annotated[
    Path | None,
    typer.Option(
        "--run-dir",
        help="Run folder: local stores, models, scratch (default: runs/<project>).",
    ),
]
DistDirOption = Annotated[
    Path | None,
    typer.Option("--dist-dir", help="Results folder; results go under <dist-dir>/<project>/."),
]
TrackingUriOption = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking/registry URI (default: MLFLOW_TRACKING_URI, else a sqlite store "
        "in the run folder).",
    ),
]
ModelDirOption = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Model folder to use instead of the embedded default."),
]
PublishOption = Annotated[
    bool,
    typer.Option(
        "--publish",
        help="Copy the results to projects/<project>/benchmarks/ (refused on a busy machine).",
    ),
]


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def headline_table(title: str, headline: Iterable[Mapping[str, Any]]) -> Table:
    """The headline as a table: figure, value with its interval, baseline, target, verdict."""
    table = Table(title=title)
    for column in ("figure", "value (interval)", "baseline", "target", "verdict"):
        table.add_column(column)
    for item in headline:
        value = f"{_number(item.get('value'))} {item.get('unit') or ''}".strip()
        interval = item.get("interval")
        if interval:
            value += f" [{_number(interval['low'])}, {_number(interval['high'])}]"
        baseline = item.get("baseline")
        unit = item.get("baseline_unit", "")
        cells = (
            str(item.get("name")),
            value,
            "" if baseline is None else f"{_number(baseline)} {unit}".strip(),
            item.get("target") or "",
            item.get("verdict") or "",
        )
        table.add_row(*(escape(cell) for cell in cells))
    return table
