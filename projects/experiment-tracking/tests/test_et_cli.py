from __future__ import annotations

import json
from pathlib import Path

from et_testing import model_data_args
from experiment_tracking.cli import app
from typer.testing import CliRunner


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "baseline", "sweep", "evaluate", "promote", "demo", "benchmark"):
        assert command in result.output


def test_train_without_tracking_writes_a_summary(
    tmp_path: Path, tiny_model_dir: Path, data_files
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "train",
            *model_data_args(tiny_model_dir, data_files, tmp_path, tracker="none"),
            "--no-progress",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--learning-rate",
            "3e-3",
            "--baseline",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "tfidf-baseline" in result.output
    summary = json.loads((tmp_path / "training" / "fine-tune" / "summary.json").read_text())
    assert summary["fit"]["world_size"] == 1
    assert summary["run_ids"] == {}
    assert not (tmp_path / "mlflow.db").exists()


def test_invalid_settings_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "--batch-size", "0", "--run-dir", str(tmp_path), "--tracker", "none"]
    )
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: invalid settings: batch_size")


def test_promote_without_a_registered_model_explains(tmp_path: Path, data_files) -> None:
    result = CliRunner().invoke(
        app,
        [
            "promote",
            "--run-dir",
            str(tmp_path),
            "--train-file",
            str(data_files[0]),
            "--test-file",
            str(data_files[1]),
        ],
    )
    assert result.exit_code == 2
    assert "no registered model 'review-classifier'" in result.output
