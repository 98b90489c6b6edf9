from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import typer
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from rich.console import Console
from roadmap_lab.cli import (
    RunDirOption,
    TrackingUriOption,
    cli_errors,
    given,
    headline_table,
    lab_app,
)
from roadmap_lab.errors import LabError
from roadmap_lab.settings import TrackedSettings
from typer.testing import CliRunner


class DemoSettings(TrackedSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_CLI_")
    epochs: int = Field(default=2, ge=1)


def make_app() -> typer.Typer:
    app = lab_app("A demo project.", "demo-cli", quiet_loggers=("noisy",))

    @app.command()
    def run(
        run_dir: RunDirOption = None,
        tracking_uri: TrackingUriOption = None,
        fail: str = "",
    ) -> None:
        """Run something."""
        with cli_errors(FileNotFoundError):
            settings = DemoSettings(**given(run_dir=run_dir, tracking_uri=tracking_uri))
            if fail == "lab":
                raise LabError("the data folder is empty: add a slice")
            if fail == "lab-brackets":
                raise LabError("no model in [runs/x]")
            if fail == "missing":
                raise FileNotFoundError("no such file: x.csv")
            if fail == "interrupt":
                raise KeyboardInterrupt
            if fail == "stopped":
                raise KeyboardInterrupt("stopped at step 3; run again with --resume")
            if fail == "bug":
                raise RuntimeError("a bug")
            typer.echo(f"{settings.run_dir} {settings.resolved_tracking_uri()} {settings.epochs}")

    @app.command()
    def other() -> None:
        """Another command (a single command would make the app that command)."""

    return app


runner = CliRunner()


def test_options_override_the_environment_only_when_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEMO_CLI_EPOCHS", "5")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    result = runner.invoke(make_app(), ["run", "--run-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.split() == [str(tmp_path), "http://127.0.0.1:5000", "5"]


@pytest.mark.parametrize(
    ("fail", "code", "line"),
    [
        ("lab", 2, "error: the data folder is empty: add a slice"),
        ("missing", 2, "error: no such file: x.csv"),
        ("interrupt", 130, "interrupted"),
        ("stopped", 130, "interrupted: stopped at step 3; run again with --resume"),
        ("lab-brackets", 2, "error: no model in [runs/x]"),
    ],
)
def test_user_errors_are_one_line_and_an_exit_code(fail: str, code: int, line: str) -> None:
    result = runner.invoke(make_app(), ["run", "--fail", fail])
    assert result.exit_code == code
    assert result.stderr.strip() == line and "Traceback" not in result.output


def test_invalid_settings_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_CLI_EPOCHS", "0")
    result = runner.invoke(make_app(), ["run"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: invalid settings: epochs: Input should be greater than or equal to 1"
    )


def test_a_bug_keeps_its_traceback() -> None:
    result = runner.invoke(make_app(), ["run", "--fail", "bug"])
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)


def test_the_setup_callback_sets_logging_and_offline_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_CLI_LOG_LEVEL", "DEBUG")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert runner.invoke(make_app(), ["other"]).exit_code == 0
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger("noisy").level == logging.WARNING
    assert logging.getLogger("mlflow").level == logging.WARNING
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_headline_table_shows_intervals_and_verdicts() -> None:
    item = {
        "name": "speed-up", "value": 2.31, "unit": "x", "baseline": 100.0,
        "baseline_unit": "req/s", "target": ">= 2", "verdict": "met",
        "interval": {"low": 2.05, "high": 2.6, "confidence": 0.95, "method": "t", "n": 5},
    }  # fmt: skip
    console = Console(record=True, width=200)
    console.print(headline_table("bench", [item]))
    text = console.export_text()
    assert "2.31 x [2.05, 2.6]" in text and "100 req/s" in text and "met" in text
