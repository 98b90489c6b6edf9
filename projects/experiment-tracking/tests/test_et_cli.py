from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from et_testing import model_data_args, store_client
from experiment_tracking.cli import app
from typer.testing import CliRunner, Result

COMMANDS = {"train", "baseline", "sweep", "evaluate", "promote", "demo", "benchmark"}


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    # The first word of each row of the "Commands" panel (descriptions mention "train" too).
    panel = result.output.split("Commands")[1]
    listed = {match.group(1) for match in re.finditer(r"^\W+([a-z-]+)\s{2,}\S", panel, re.M)}
    assert listed == COMMANDS


def one_error_line(result: Result) -> str:
    """The single line a failed command printed, which must be an error line."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


def test_train_without_tracking_writes_a_summary(
    tmp_path: Path, tiny_bert_dir: Path, data_files
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "train",
            *model_data_args(tiny_bert_dir, data_files, tmp_path, tracker="none"),
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


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "config file {path} does not exist"),
        ("epochs: [1,\n", "cannot read config file {path}"),
        ("- 1\n- 2\n", "{path} must hold a mapping of training settings"),
    ],
    ids=["missing", "not-yaml", "not-a-mapping"],
)
def test_a_bad_config_file_is_one_error_line(
    tmp_path: Path, content: str | None, message: str
) -> None:
    config = tmp_path / "config.yaml"
    if content is not None:
        config.write_text(content)
    result = CliRunner().invoke(
        app, ["train", "--config", str(config), "--run-dir", str(tmp_path), "--tracker", "none"]
    )
    assert result.exit_code == 2
    assert message.format(path=config) in one_error_line(result)


def test_a_bug_keeps_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the project's own errors become exit 2: a ValueError from a bug is not hidden."""
    import experiment_tracking.data

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(experiment_tracking.data, "load_data", broken)
    result = CliRunner().invoke(app, ["baseline", "--run-dir", str(tmp_path), "--tracker", "none"])
    assert result.exit_code == 1
    assert isinstance(result.exception, ValueError)


def test_evaluate_without_a_champion_explains(tmp_path: Path, data_files) -> None:
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--run-dir",
            str(tmp_path),
            "--train-file",
            str(data_files[0]),
            "--test-file",
            str(data_files[1]),
        ],
    )
    assert result.exit_code == 2
    assert one_error_line(result).startswith(
        "error: cannot load models:/review-classifier@champion"
    )


def test_flags_not_given_leave_the_environment_settings(
    tmp_path: Path, tiny_bert_dir: Path, data_files, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPERIMENT_TRACKING_SEED", "7")
    monkeypatch.setenv("EXPERIMENT_TRACKING_RUN_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("EXPERIMENT_TRACKING_TRACKERS", "mlflow")
    data = ["--train-file", str(data_files[0]), "--test-file", str(data_files[1])]
    baseline = CliRunner().invoke(app, ["baseline", *data])
    train = CliRunner().invoke(
        app,
        [
            "train",
            *data,
            "--model-dir",
            str(tiny_bert_dir),
            "--max-steps",
            "2",
            "--no-progress",
        ],
    )
    assert baseline.exit_code == 0, baseline.output
    assert train.exit_code == 0, train.output
    client = store_client(tmp_path / "from-env")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert {run.info.run_name: run.data.params["seed"] for run in runs} == {
        "tfidf-baseline": "7",
        "fine-tune": "7",
    }


def test_benchmark_without_a_tracker_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["benchmark", "--run-dir", str(tmp_path), "--tracker", "none"])
    assert result.exit_code == 2
    assert "the tracking overhead needs a tracker" in one_error_line(result)
    assert not any(tmp_path.iterdir())  # refused before anything ran
