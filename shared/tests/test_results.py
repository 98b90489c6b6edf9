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
    BenchmarkConditions,
    BusyMachineError,
    ResultsWriter,
    Target,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    committed_results,
    ensure_quiet_machine,
    find_repo_root,
    headline_figure,
    invocation,
    parse_target,
    process_tree_cpu_seconds,
    project_folder,
    publish_benchmark,
    reference_headline,
    verdict,
)
from roadmap_lab.stats import Interval, poisson_rate

HEADLINE = {"name": "macro-F1", "value": 0.79, "unit": "", "baseline": 0.73, "target": ">= 0.75"}
# What ResultsWriter stores for it: no interval, so no verdict but "unverified".
WRITTEN = {**HEADLINE, "verdict": "unverified"}
QUIET = {"conditions": {"cores": 2, "load_average_before": [0.5, 0.4, 0.3]}}


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
    assert results["headline"] == [WRITTEN]
    assert results["plots"] == ["loss.png"]
    assert (path.parent / "loss.png").read_bytes().startswith(b"\x89PNG")
    measured_at = datetime.fromisoformat(results["measured_at"])
    assert measured_at.tzinfo is not None
    assert abs((datetime.now(UTC) - measured_at).total_seconds()) < 60
    assert {"cpu_model", "cores", "memory_gb", "gpu"} <= set(results["machine"])


def test_results_writer_keeps_caller_values(tmp_path: Path) -> None:
    path = ResultsWriter("p", tmp_path, "cmd").write(
        {"status": "failed", "machine": {"gpu": "H100"}}
    )
    results = json.loads(path.read_text())
    assert results["status"] == "failed"
    assert results["machine"] == {"gpu": "H100"}
    assert results["headline"] == [] and results["plots"] == []


def test_headline_missing_keys_is_a_clear_error(tmp_path: Path) -> None:
    writer = ResultsWriter("p", tmp_path, "cmd")
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


def test_results_need_the_command_that_produced_them(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="command that produced them"):
        ResultsWriter("p", tmp_path).write({"headline": [HEADLINE]})
    path = ResultsWriter("p", tmp_path, "python -m p demo").write({"headline": [HEADLINE]})
    assert json.loads(path.read_text())["command"] == "python -m p demo"


def test_invocation_records_the_module_and_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["/some/where/cli.pex", "benchmark", "--repeats", "3"])
    assert invocation("llm_serving") == "python -m llm_serving benchmark --repeats 3"
    assert invocation("p", ["demo", "a b"]) == "python -m p demo 'a b'"


def _fake_checkout(root: Path, project: str) -> Path:
    (root / "projects" / project / "benchmarks").mkdir(parents=True)
    (root / "pants.toml").write_text("")
    return root


def test_benchmark_results_go_to_dist_and_are_published_only_when_asked(tmp_path: Path) -> None:
    repo = _fake_checkout(tmp_path / "repo", "proj")
    writer = ResultsWriter("proj", tmp_path / "dist", "python -m proj benchmark", kind="benchmark")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    writer.save_figure(fig, "speed")
    plt.close(fig)
    path = writer.write({"headline": [HEADLINE], **QUIET})
    assert path == tmp_path / "dist" / "proj" / "benchmark" / "results.json"
    committed = repo / "projects" / "proj" / "benchmarks"
    assert list(committed.iterdir()) == []  # writing never touches the committed copy

    published = publish_benchmark(path, repo_root=repo)
    assert published == committed / "results.json"
    assert published.read_bytes() == path.read_bytes()
    assert (committed / "speed.png").read_bytes() == (path.parent / "speed.png").read_bytes()


def test_a_loop_publishes_into_its_folder_under_loops(tmp_path: Path) -> None:
    repo = _fake_checkout(tmp_path / "repo", "other")
    (repo / "loops" / "mlops" / "benchmarks").mkdir(parents=True)
    path = ResultsWriter("mlops-loop", tmp_path / "dist", "c", kind="benchmark").write(QUIET)
    assert publish_benchmark(path, repo_root=repo) == repo / "loops/mlops/benchmarks/results.json"
    assert project_folder("mlops-loop") == "loops/mlops"
    assert project_folder("model-monitoring") == "projects/model-monitoring"


def test_publish_refuses_a_project_that_is_not_in_the_checkout(tmp_path: Path) -> None:
    repo = _fake_checkout(tmp_path / "repo", "other")
    path = ResultsWriter("proj", tmp_path / "dist", "c", kind="benchmark").write(QUIET)
    with pytest.raises(ValueError, match="no project folder"):
        publish_benchmark(path, repo_root=repo)


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ({}, "record no conditions"),
        ({"conditions": {"cores": 2, "load_average_before": [2.5, 1, 1]}}, "busy machine"),
    ],
)
def test_publish_refuses_results_from_a_busy_or_unknown_machine(
    tmp_path: Path, conditions: dict, message: str
) -> None:
    repo = _fake_checkout(tmp_path / "repo", "proj")
    path = ResultsWriter("proj", tmp_path / "dist", "c", kind="benchmark").write(conditions)
    with pytest.raises(BusyMachineError, match=message):
        publish_benchmark(path, repo_root=repo)
    assert list((repo / "projects" / "proj" / "benchmarks").iterdir()) == []


@pytest.mark.parametrize(
    ("target", "low", "high", "expected"),
    [
        (">= 2", 2.0, 3.0, "met"),
        (">= 2", 1.99, 3.0, "within noise"),
        (">= 2", 1.0, 1.99, "missed"),
        ("> 0.5", 0.5, 0.7, "within noise"),
        ("> 0.5", 0.51, 0.7, "met"),
        ("> 0.5", 0.3, 0.5, "missed"),
        ("< 5", -6.2, 3.9, "met"),
        ("< 5", 4.0, 6.9, "within noise"),
        ("< 5", 5.0, 6.9, "missed"),
        ("<= 1", 0.2, 1.0, "met"),
        ("<= 1", 1.01, 1.5, "missed"),
    ],
)
def test_the_verdict_comes_from_the_whole_interval(
    target: str, low: float, high: float, expected: str
) -> None:
    assert verdict(target, {"low": low, "high": high}) == expected


def test_no_interval_is_unverified_and_no_target_no_verdict() -> None:
    assert verdict(">= 2", None) == "unverified"
    assert verdict(None, {"low": 1, "high": 2}) is None


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [
        (">= 30", None, Target(">=", 30.0)),
        ("< 5", "s", Target("<", 5.0)),
        (">1.5", None, Target(">", 1.5)),
        (">= -1e-3", None, Target(">=", -0.001)),
        (">= 30 tok/s", "tok/s", Target(">=", 30.0)),
    ],
)
def test_targets_are_one_sided_comparisons(text: str, unit: str | None, expected: Target) -> None:
    assert parse_target(text, unit) == expected


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("detected", None),
        ("reported", None),
        ("== 1", None),
        ("30", None),
        (">= 30 per batch", "tok/s"),
        ("", None),
    ],
)
def test_words_are_not_targets(text: str, unit: str | None) -> None:
    with pytest.raises(ValueError, match="is not a comparison"):
        parse_target(text, unit)


def test_a_headline_figure_takes_its_value_from_the_interval_and_computes_its_verdict() -> None:
    ratio = Interval(2.31, 2.05, 2.6, 0.95, "paired ratio (t on log ratios)", 5)
    item = headline_figure("throughput", None, "x", target=">= 2", interval=ratio, digits=2)
    assert item["value"] == 2.31 and item["verdict"] == "met"
    assert item["interval"] == {
        "low": 2.05,
        "high": 2.6,
        "confidence": 0.95,
        "method": "paired ratio (t on log ratios)",
        "n": 5,
    }
    assert headline_figure("cold start", 12.0, "s", target="< 60")["verdict"] == "unverified"


def test_a_stored_interval_is_rounded_outward_so_rounding_never_earns_met() -> None:
    just_short = Interval(2.2, 1.9995, 2.4001, 0.95, "paired ratio (t on log ratios)", 5)
    item = headline_figure("throughput", None, "x", target=">= 2", interval=just_short, digits=3)
    assert (item["interval"]["low"], item["interval"]["high"]) == (1.999, 2.401)
    assert item["verdict"] == "within noise"
    p99 = Interval(0.9, 0.8, 1.0004, 0.95, "paired ratio (t on log ratios)", 5)
    assert headline_figure("p99", None, "x", target="<= 1", interval=p99, digits=3)["verdict"] == (
        "within noise"
    )


def test_a_short_replay_cannot_earn_met_by_seeing_nothing() -> None:
    # 0 false alerts in 10 minutes: the exact upper bound is ~22 per hour.
    short = headline_figure(
        "false alerts",
        None,
        "per hour",
        target="< 1",
        interval=poisson_rate(0, 10 / 60, unit="per hour"),
    )
    long = headline_figure(
        "false alerts",
        None,
        "per hour",
        target="< 1",
        interval=poisson_rate(0, 10, unit="per hour"),
    )
    assert short["value"] == 0 and short["verdict"] == "within noise"
    assert long["verdict"] == "met"


def test_the_writer_refuses_a_hand_written_verdict(tmp_path: Path) -> None:
    claimed = {**HEADLINE, "verdict": "met"}  # no interval: the rule says unverified
    with pytest.raises(ValueError, match="never by hand"):
        ResultsWriter("p", tmp_path, "cmd").write({"headline": [claimed]})
    with pytest.raises(ValueError, match="is not a comparison"):
        ResultsWriter("p", tmp_path, "cmd").write({"headline": [{**HEADLINE, "target": "all"}]})


def test_conditions_record_load_and_cpu_of_measured_processes() -> None:
    conditions = BenchmarkConditions()
    sum(range(3_000_000))
    conditions.add_cpu("server", 1.5)
    conditions.add_cpu("server", 0.5)
    recorded = conditions.finish()
    assert recorded["cores"] >= 1 and len(recorded["load_average_before"]) == 3
    assert recorded["cpu_seconds"]["server"] == 2.0
    assert recorded["cpu_seconds"]["benchmark process (with reaped children)"] > 0


def test_process_tree_cpu_counts_a_busy_child() -> None:
    import subprocess
    import sys

    # The child burns 0.5 s of CPU by its own clock, says so, then waits.
    burn = (
        "import time\nwhile time.process_time() < 0.5: pass\n" "print('burnt', flush=True)\ninput()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "burnt\n"
        # /proc counts in clock ticks (10 ms): allow a tick or two below the child's own clock.
        assert 0.45 <= process_tree_cpu_seconds(child.pid) < 5
    finally:
        child.kill()
        child.wait()


def test_find_repo_root_walks_up_from_a_subfolder(tmp_path: Path) -> None:
    repo = _fake_checkout(tmp_path / "repo", "proj")
    assert find_repo_root(repo / "projects" / "proj" / "benchmarks") == repo.resolve()
    with pytest.raises(ValueError, match="not inside a Roadmap Lab checkout"):
        find_repo_root(tmp_path)


def test_committed_results_are_found_on_sys_path_not_in_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = tmp_path / "pex-root"
    folder = shipped / "projects" / "proj" / "benchmarks"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"project": "proj", "headline": []}))
    decoy = tmp_path / "cwd" / "projects" / "proj" / "benchmarks"
    decoy.mkdir(parents=True)
    (decoy / "results.json").write_text(json.dumps({"project": "decoy"}))
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr("sys.path", [str(tmp_path / "elsewhere"), str(shipped)])
    assert committed_results("proj") == {"project": "proj", "headline": []}
    monkeypatch.setattr("sys.path", ["", str(tmp_path / "elsewhere")])
    assert committed_results("proj") is None


def test_reference_headline_marks_each_figure_with_its_date() -> None:
    committed = {"measured_at": "2026-11-26T10:36:38+00:00", "headline": [HEADLINE]}
    assert reference_headline(committed) == [
        {**HEADLINE, "reference": True, "measured_at": "2026-11-26T10:36:38+00:00"}
    ]


def test_publishing_needs_a_quiet_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("roadmap_lab.results.load_average", lambda: [2.5, 1.0, 0.5])
    with pytest.raises(BusyMachineError, match="load average 2.50 exceeds the 2 cores"):
        ensure_quiet_machine()
    monkeypatch.setattr("roadmap_lab.results.load_average", lambda: [1.9, 1.0, 0.5])
    ensure_quiet_machine()
    assert BenchmarkConditions().finish()["quiet"] is True
