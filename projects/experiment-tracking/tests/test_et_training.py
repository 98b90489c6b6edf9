from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from et_testing import TINY_CONFIG, model_data_args, store_client
from experiment_tracking.data import ReviewData
from experiment_tracking.settings import TrainConfig
from experiment_tracking.training import TrainingError, fit
from roadmap_lab.services import python_child_env
from roadmap_lab.testing.tiny_models import synthetic_reviews


def test_overfits_one_batch(tiny_bert_dir: Path, tmp_path: Path) -> None:
    batch = synthetic_reviews(8, seed=5)
    data = ReviewData(
        train=batch, validation=batch, test=batch, source="one batch", sha256="one-batch"
    )
    config = TrainConfig(
        batch_size=8,
        epochs=80,
        learning_rate=3e-3,
        warmup_ratio=0.0,
        eval_every_steps=20,
        patience=100,
        log_every_steps=5,
    )
    result = fit(config, data, tiny_bert_dir, tmp_path, checkpoint=False, progress=False)
    assert result.history[0]["loss"] > 0.5
    assert result.history[-1]["loss"] < 0.05
    assert result.best_validation["accuracy"] == 1.0


def test_same_seed_same_run_other_seed_other_run(
    tiny_bert_dir: Path, tiny_data, tmp_path: Path
) -> None:
    config = TrainConfig(epochs=1, batch_size=16, learning_rate=3e-3, log_every_steps=2)
    first = fit(config, tiny_data, tiny_bert_dir, tmp_path / "a", checkpoint=False, progress=False)
    again = fit(config, tiny_data, tiny_bert_dir, tmp_path / "b", checkpoint=False, progress=False)
    other = fit(
        config.model_copy(update={"seed": 1}),
        tiny_data,
        tiny_bert_dir,
        tmp_path / "c",
        checkpoint=False,
        progress=False,
    )
    losses = [h["loss"] for h in first.history]
    assert losses == [h["loss"] for h in again.history]
    assert losses != [h["loss"] for h in other.history]


def test_early_stopping_when_validation_stops_improving(
    tiny_bert_dir: Path, tiny_data, tmp_path: Path
) -> None:
    config = TrainConfig(epochs=10, batch_size=32, learning_rate=1e-9, patience=2)
    result = fit(config, tiny_data, tiny_bert_dir, tmp_path, checkpoint=False, progress=False)
    assert result.stopped_early
    assert len(result.evaluations) == 3  # the first sets the best, two more without improvement
    assert result.global_step == 3 * len(range(0, len(tiny_data.train), 32))


def test_learns_the_synthetic_task(
    tiny_bert_dir: Path, tiny_data, tmp_path: Path, tiny_config
) -> None:
    result = fit(tiny_config, tiny_data, tiny_bert_dir, tmp_path, checkpoint=False, progress=False)
    assert result.best_validation["macro_f1"] >= 0.95
    assert (result.model_dir / "inference.json").is_file()


def test_resume_refuses_changed_settings(tiny_bert_dir: Path, tiny_data, tmp_path: Path) -> None:
    config = TrainConfig(
        epochs=1, batch_size=16, learning_rate=3e-3, max_steps=4, checkpoint_every_steps=2
    )
    fit(config, tiny_data, tiny_bert_dir, tmp_path, progress=False)
    with pytest.raises(TrainingError, match="batch_size changed"):
        fit(
            config.model_copy(update={"batch_size": 8}),
            tiny_data,
            tiny_bert_dir,
            tmp_path,
            resume=True,
            progress=False,
        )


def _train_command(tiny_bert_dir: Path, data_files, run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "experiment_tracking",
        "train",
        "--run-name",
        "resumable",
        *model_data_args(tiny_bert_dir, data_files, run_dir, tracker="none"),
        "--no-progress",
        "--epochs",
        "30",
        "--max-steps",
        "60",
        "--batch-size",
        "16",
        "--learning-rate",
        "3e-3",
        "--patience",
        "10",
        "--log-every",
        "5",
        "--checkpoint-every",
        "5",
        *extra,
    ]


@pytest.mark.slow
def test_interrupted_run_resumes_where_it_stopped(
    tiny_bert_dir: Path, data_files, tiny_data, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "training" / "resumable" / "checkpoints"
    process = subprocess.Popen(
        _train_command(tiny_bert_dir, data_files, run_dir),
        env=python_child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    # Any complete checkpoint: only the newest ones are kept, so step 5's may be gone already
    # when a loaded machine lets this loop look a moment late.
    while not any(checkpoints.glob("step-*/trainer_state.json")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    assert "interrupted at step" in stderr and "--resume" in stderr
    stopped_at = max(int(p.name.split("-")[1]) for p in checkpoints.glob("step-*"))
    assert 5 <= stopped_at < 60

    resumed = subprocess.run(
        _train_command(tiny_bert_dir, data_files, run_dir, "--resume"),
        env=python_child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    summary = json.loads((run_dir / "training" / "resumable" / "summary.json").read_text())
    assert summary["fit"]["resumed_from_step"] == stopped_at
    assert summary["fit"]["global_step"] == 60

    # The interrupted-and-resumed run ends exactly where an uninterrupted one does.
    config = TrainConfig(
        **{**TINY_CONFIG, "epochs": 30, "max_steps": 60, "checkpoint_every_steps": 5}
    )
    reference = fit(
        config, tiny_data, tiny_bert_dir, tmp_path / "reference", checkpoint=False, progress=False
    )
    assert len(reference.history) == 60 // TINY_CONFIG["log_every_steps"]
    assert [round(h["loss"], 5) for h in summary["fit"]["history"]] == [
        round(h["loss"], 5) for h in reference.history
    ]
    assert summary["fit"]["best_validation"] == pytest.approx(reference.best_validation)


@pytest.mark.slow
def test_two_processes_with_torchrun(tiny_bert_dir: Path, data_files, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        # torchrun binds a free port itself: a port chosen here and freed could be taken by a
        # test running beside this one before the rendezvous binds it.
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "experiment_tracking",
        "train",
        "--run-name",
        "ddp",
        *model_data_args(tiny_bert_dir, data_files, run_dir, tracker="mlflow"),
        "--no-progress",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--learning-rate",
        "3e-3",
    ]
    completed = subprocess.run(
        command,
        env=python_child_env(OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = json.loads((run_dir / "training" / "ddp" / "summary.json").read_text())
    fit_summary = summary["fit"]
    assert fit_summary["world_size"] == 2
    assert fit_summary["distributed_type"] == "MULTI_CPU"
    # Each process saw half of every global batch: 270 rows / (16 x 2) -> 9 steps per epoch.
    assert fit_summary["global_step"] == 2 * 9
    assert fit_summary["samples_seen"] >= 2 * 270

    client = store_client(run_dir)
    run = client.get_run(summary["run_ids"]["mlflow"])
    assert run.data.params["world_size"] == "2"
    assert run.info.status == "FINISHED"
