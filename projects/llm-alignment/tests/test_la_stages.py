"""The benchmark's resumable stages: a finished stage is reused by --resume only with the same
settings; an interrupted stage leaves no record; files a stage keeps land beside its record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from llm_alignment.errors import ConfigError
from llm_alignment.stages import StageStore


class Counting:
    """Stage work that counts its calls and keeps one file."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, folder: Path) -> dict[str, Any]:
        self.calls += 1
        (folder / "kept.txt").write_text(f"call {self.calls}")
        return {"value": self.calls}


def test_a_finished_stage_is_reused_with_the_same_settings(tmp_path: Path) -> None:
    store, work = StageStore(tmp_path), Counting()
    first = store.run("dpo-seed0", {"seed": 0}, work, resume=True)
    again = store.run("dpo-seed0", {"seed": 0}, work, resume=True)
    assert work.calls == 1
    assert again == first and again["result"] == {"value": 1}
    assert (tmp_path / "dpo-seed0" / "kept.txt").read_text() == "call 1"
    assert {"conditions", "machine", "finished_at", "seconds"} <= set(first)


def test_without_resume_the_stage_runs_again_and_replaces_its_record(tmp_path: Path) -> None:
    store, work = StageStore(tmp_path), Counting()
    store.run("data-seed0", {"seed": 0}, work, resume=False)
    record = store.run("data-seed0", {"seed": 0}, work, resume=False)
    assert work.calls == 2 and record["result"] == {"value": 2}
    assert store.record("data-seed0") == record


def test_resume_refuses_a_record_made_with_other_settings(tmp_path: Path) -> None:
    store, work = StageStore(tmp_path), Counting()
    store.run("dpo-seed0", {"epochs": 2}, work, resume=True)
    with pytest.raises(ConfigError, match="other settings"):
        store.run("dpo-seed0", {"epochs": 3}, work, resume=True)
    assert work.calls == 1


def test_an_interrupted_stage_leaves_no_record(tmp_path: Path) -> None:
    store = StageStore(tmp_path)

    def interrupted(folder: Path) -> dict[str, Any]:
        (folder / "half.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.run("grpo", {"steps": 40}, interrupted, resume=True)
    assert store.record("grpo") is None
    assert not (tmp_path / "grpo").exists()
    work = Counting()
    assert store.run("grpo", {"steps": 40}, work, resume=True)["result"] == {"value": 1}
