"""The best-model folder is replaced without a moment in which no complete copy exists."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from experiment_tracking import training
from experiment_tracking.settings import TrainConfig
from experiment_tracking.training import _save_model_folder, replace_folder, restore_folder


def folder_with(path: Path, content: str) -> Path:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_text(content)
    return path


def test_replace_folder_swaps_in_the_new_folder_and_cleans_up(tmp_path: Path) -> None:
    dest = folder_with(tmp_path / "best-model", "old")
    replace_folder(folder_with(tmp_path / "staging", "new"), dest)
    assert (dest / "model.safetensors").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-model"]


def test_a_crash_between_the_renames_keeps_the_old_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = folder_with(tmp_path / "best-model", "old")
    staging = folder_with(tmp_path / "staging", "new")
    real_replace = os.replace
    calls: list[Any] = []

    def dies_on_the_second_rename(source: Any, target: Any) -> None:
        calls.append(source)
        if len(calls) == 2:
            raise OSError("killed")
        real_replace(source, target)

    monkeypatch.setattr(training.os, "replace", dies_on_the_second_rename)
    with pytest.raises(OSError, match="killed"):
        replace_folder(staging, dest)
    monkeypatch.undo()
    assert not dest.exists()
    assert (tmp_path / ".best-model.previous" / "model.safetensors").read_text() == "old"

    restore_folder(dest)  # what the next fit() does first
    assert (dest / "model.safetensors").read_text() == "old"
    assert not (tmp_path / ".best-model.previous").exists()


class _Accelerator:
    is_main_process = True

    def wait_for_everyone(self) -> None:
        pass

    def unwrap_model(self, model: Any) -> Any:
        return model


class _ModelThatDiesWhileSaving:
    def save_pretrained(self, folder: Path, safe_serialization: bool) -> None:
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_text("half")
        raise KeyboardInterrupt  # stopped in the middle of writing the weights


def test_an_interrupted_save_leaves_the_old_model_untouched(tmp_path: Path) -> None:
    dest = folder_with(tmp_path / "best-model", "old")
    with pytest.raises(KeyboardInterrupt):
        _save_model_folder(
            _Accelerator(), _ModelThatDiesWhileSaving(), object(), dest, TrainConfig()
        )
    assert (dest / "model.safetensors").read_text() == "old"
