from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from et_testing import model_data_args, store_client
from experiment_tracking.cli import app
from experiment_tracking.pipeline import run_training
from experiment_tracking.settings import ProjectSettings
from experiment_tracking.tracking import TrackingError, open_tracker
from typer.testing import CliRunner


def read_wandb_records(path: Path):
    """Records of a W&B transaction log (LevelDB log format: 32 KiB blocks of framed chunks)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    position, block, pending = 7, 32768, b""
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        length = int.from_bytes(data[position + 4 : position + 6], "little")
        kind = data[position + 6]
        payload = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 0:
            continue
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def test_settings_read_trackers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPERIMENT_TRACKING_TRACKERS", "mlflow")
    assert ProjectSettings().trackers == ["mlflow"]
    monkeypatch.setenv("EXPERIMENT_TRACKING_TRACKERS", "none")
    assert ProjectSettings().trackers == []
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert ProjectSettings().resolved_tracking_uri() == "http://tracking.example:5000"


def test_unreachable_tracking_server_fails_fast(tmp_path: Path, free_tcp_port: int) -> None:
    settings = ProjectSettings(
        run_dir=tmp_path, tracking_uri=f"http://127.0.0.1:{free_tcp_port}", trackers=["mlflow"]
    )
    # "unreachable": the connection refusal is reported as such, not retried until a timeout.
    with pytest.raises(TrackingError, match="unreachable"):
        open_tracker(settings, "never", {})


def test_cli_reports_an_unreachable_server_in_one_line(
    tmp_path: Path,
    data_files,
    tiny_bert_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    free_tcp_port: int,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_tcp_port}")
    result = CliRunner().invoke(
        app,
        [
            "train",
            *model_data_args(tiny_bert_dir, data_files, tmp_path, tracker="mlflow"),
        ],
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert (
        lines[-1].startswith("error: MLflow tracking server http://127.0.0.1:")
        and "unreachable" in lines[-1]
    )
    assert "Traceback" not in result.output


def test_local_store_and_wandb_offline_hold_the_run(
    tmp_path: Path, tiny_bert_dir: Path, tiny_data, tiny_config
) -> None:
    settings = ProjectSettings(run_dir=tmp_path / "run", trackers=["mlflow", "wandb"])
    report = run_training(
        settings, tiny_config, "local", model_dir=tiny_bert_dir, data=tiny_data, progress=False
    )

    # MLflow: the embedded default store lives in the run folder.
    assert (tmp_path / "run" / "mlflow.db").is_file()
    client = store_client(tmp_path / "run")
    run = client.get_run(report.run_ids["mlflow"])
    assert run.data.params["dataset_sha256"] == tiny_data.sha256
    assert run.data.metrics["test/macro_f1"] == pytest.approx(report.test_metrics["macro_f1"])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location == (tmp_path / "run" / "mlartifacts").resolve().as_uri()
    model = mlflow.pyfunc.load_model(report.model_uri)
    assert list(model.metadata.get_input_schema().input_names()) == ["text"]

    # W&B: offline run files in the run folder, holding the logged metrics.
    run_files = list(
        (tmp_path / "run" / "wandb").glob(f"offline-run-*-{report.run_ids['wandb']}/run-*.wandb")
    )
    assert len(run_files) == 1
    history = []
    for record in read_wandb_records(run_files[0]):
        if record.WhichOneof("record_type") == "history":
            items = {
                item.key or "/".join(item.nested_key): json.loads(item.value_json)
                for item in record.history.item
            }
            if "train/loss" in items:
                history.append((items["_step"], items["train/loss"]))
    expected = [(h["step"], h["loss"]) for h in report.fit.history]
    assert expected  # else the comparisons below prove nothing
    assert [step for step, _ in history] == [step for step, _ in expected]
    assert [loss for _, loss in history] == pytest.approx([loss for _, loss in expected], rel=1e-6)
