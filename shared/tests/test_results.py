from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from roadmap_lab.results import (
    ResultsWriter,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)

HEADLINE = {"name": "macro-F1", "value": 0.79, "unit": "", "baseline": 0.73, "target": ">= 0.75"}


def test_atomic_write_text_creates_folders_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "out.txt"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert os.listdir(path.parent) == ["out.txt"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_serialisation_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    atomic_write_json(path, {"ok": 1})
    with pytest.raises(TypeError, match="not JSON serialisable"):
        atomic_write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert os.listdir(tmp_path) == ["results.json"]


def test_failure_during_write_removes_temp_and_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.bin"
    atomic_write_bytes(path, b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.bin"]


def test_atomic_write_json_handles_numpy_values(tmp_path: Path) -> None:
    import numpy as np

    atomic_write_json(
        tmp_path / "r.json", {"f1": np.float32(0.5), "counts": np.arange(3), "dir": tmp_path}
    )
    assert json.loads((tmp_path / "r.json").read_text()) == {
        "f1": 0.5,
        "counts": [0, 1, 2],
        "dir": str(tmp_path),
    }


def test_results_writer_output_schema(tmp_path: Path) -> None:
    writer = ResultsWriter("demo-project", tmp_path / "dist")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert writer.save_figure(fig, "loss") == "loss.png"
    plt.close(fig)

    path = writer.write({"headline": [HEADLINE], "command": "demo run", "details": {"epochs": 2}})

    assert path == tmp_path / "dist" / "demo-project" / "results.json"
    results = json.loads(path.read_text())
    assert results["project"] == "demo-project"
    assert results["status"] == "ok"
    assert results["command"] == "demo run"
    assert results["details"] == {"epochs": 2}
    assert results["headline"] == [HEADLINE]
    assert results["plots"] == ["loss.png"]
    assert (path.parent / "loss.png").read_bytes().startswith(b"\x89PNG")
    measured_at = datetime.fromisoformat(results["measured_at"])
    assert measured_at.tzinfo is not None
    assert abs((datetime.now(UTC) - measured_at).total_seconds()) < 60
    assert {"cpu_model", "cores", "memory_gb", "gpu"} <= set(results["machine"])


def test_results_writer_keeps_caller_values(tmp_path: Path) -> None:
    path = ResultsWriter("p", tmp_path).write({"status": "failed", "machine": {"gpu": "H100"}})
    results = json.loads(path.read_text())
    assert results["status"] == "failed"
    assert results["machine"] == {"gpu": "H100"}
    assert results["headline"] == [] and results["plots"] == []


def test_headline_missing_keys_is_a_clear_error(tmp_path: Path) -> None:
    writer = ResultsWriter("p", tmp_path)
    incomplete = {"name": "tok/s", "value": 780}
    with pytest.raises(
        ValueError, match=r"headline\[1\] \(tok/s\) is missing unit, baseline, target"
    ):
        writer.write({"headline": [HEADLINE, incomplete]})
    with pytest.raises(ValueError, match="must be a list"):
        writer.write({"headline": HEADLINE})
    assert not (tmp_path / "p" / "results.json").exists()


def test_figure_name_must_be_a_file_name(tmp_path: Path) -> None:
    fig = plt.figure()
    with pytest.raises(ValueError, match="plain file name"):
        ResultsWriter("p", tmp_path).save_figure(fig, "../escape")
    plt.close(fig)
