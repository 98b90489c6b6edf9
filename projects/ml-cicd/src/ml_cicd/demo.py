"""The demo (the showcase's run): the whole CI/CD loop on this machine, in a fresh local store.

1. A temporary git clone of the committed data; ``retrain`` makes the first champion.
2. The service serves ``models:/<name>@champion`` on 127.0.0.1; a short load.
3. A new data slice is committed in the clone; ``retrain`` validates, trains, compares with the
   champion and promotes it when the gate passes.
4. The service reloads onto the new champion while the load runs: no request may fail.
5. A slice with shuffled labels is committed: the gate must refuse it (the champion stays).

Results and plots go to ``<dist>/ml-cicd/``; the committed benchmark's figures are shown beside
the demo's own, marked as references.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from roadmap_lab.results import (
    ResultsWriter,
    committed_results,
    headline_figure,
    reference_headline,
)
from roadmap_lab.services import ManagedProcess, free_port, python_child_env
from roadmap_lab.stats import wilson_interval

from ml_cicd import PROJECT
from ml_cicd.errors import MlCicdError
from ml_cicd.load import LoadResult, run_load
from ml_cicd.outcome import RetrainOutcome
from ml_cicd.retrain import retrain
from ml_cicd.settings import ProjectSettings, ValidationRules
from ml_cicd.slices import SLICES_FOLDER, read_slices
from ml_cicd.training import bundled_training_rows

logger = logging.getLogger(__name__)

DEMO_MODEL = "ml-cicd-demo-classifier"
NOISE_ROWS = 900
# Share of requests that may fail while the service switches models (zero observed failures meet
# it only when enough requests were sent: the Wilson bound of 0 in n is about 3.84 / n).
RELOAD_FAILURE_TARGET = "< 0.001"
RELOAD_TIMEOUT_S = 120.0


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise MlCicdError(f"git {' '.join(args)} failed: {done.stderr.strip()[:300]}")
    return done.stdout.strip()


def _commit(repo: Path, message: str) -> None:
    _git(repo, "-c", "user.name=ml-cicd demo", "-c", "user.email=demo@localhost",
         "commit", "-q", "-m", message)  # fmt: skip


def commit_slice(repo: Path, name: str, frame: Any, message: str) -> str:
    """Write a slice into the clone's data folder and commit it; returns the commit."""
    path = repo / SLICES_FOLDER / name
    frame.loc[:, ["text", "label"]].to_csv(path, index=False)
    _git(repo, "add", str(path.relative_to(repo)))
    _commit(repo, message)
    return _git(repo, "rev-parse", "--short", "HEAD")


def clone_data(data_dir: Path, folder: Path) -> Path:
    """A temporary git repository holding a copy of the committed data."""
    repo = folder / "data"
    shutil.copytree(data_dir, repo)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _commit(repo, "committed data")
    return repo


def new_rows(repo: Path) -> tuple[Any, Any]:
    """Bundled reviews none of the clone's slices hold: (a clean slice, a shuffled-label slice)."""
    known = {text for item in read_slices(repo) for text in item.frame["text"]}
    rows = bundled_training_rows().sample(frac=1, random_state=1).reset_index(drop=True)
    rows = rows[~rows["text"].isin(known)].reset_index(drop=True)
    noise = rows.iloc[:NOISE_ROWS].copy()
    noise["label"] = noise["label"].sample(frac=1, random_state=2).to_numpy()
    return rows.iloc[NOISE_ROWS:], noise


def _reload(base_url: str, api_key: str, model_uri: str) -> dict[str, Any]:
    import httpx

    reply = httpx.post(
        f"{base_url}/admin/reload",
        json={"model_uri": model_uri},
        headers={"X-API-Key": api_key},
        timeout=RELOAD_TIMEOUT_S,
    )
    return {"status": reply.status_code, **reply.json()}


def _load_during_reload(
    base_url: str, api_key: str, model_uri: str, seconds: float
) -> tuple[LoadResult, dict[str, Any], float]:
    """Traffic for at least ``seconds``; the reload starts a third of the way in, and the traffic
    goes on for a third of ``seconds`` after the reload's reply (on a busy machine the reload
    can outlast the planned window, and the new version must be seen answering). Returns the
    load, the reload's reply and when (seconds into the load) the reload was sent."""
    holder: dict[str, LoadResult] = {}
    stop = threading.Event()
    thread = threading.Thread(
        target=lambda: holder.setdefault(
            "load", run_load(base_url, seconds + RELOAD_TIMEOUT_S, concurrency=4, stop=stop)
        )
    )
    began = time.monotonic()
    thread.start()
    time.sleep(seconds / 3)
    sent_at = time.monotonic() - began
    try:
        reply = _reload(base_url, api_key, model_uri)
        time.sleep(max(seconds / 3, seconds - (time.monotonic() - began)))
    finally:
        stop.set()
        thread.join()
    return holder["load"], reply, sent_at


def _figures(writer: ResultsWriter, load: LoadResult, sent_at: float, outcomes: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    bad = [s for s in load.samples if s.status != 200]
    versions = sorted({s.model_version for s in load.samples if s.status == 200}, key=str)
    for version in versions:
        served = [s for s in load.samples if s.status == 200 and s.model_version == version]
        ax.scatter(
            [s.started for s in served],
            [s.latency_s * 1000 for s in served],
            s=4,
            label=f"200 from version {version}",
        )
    if bad:
        ax.scatter(
            [s.started for s in bad],
            [s.latency_s * 1000 for s in bad],
            s=12,
            c="red",
            label="failed",
        )
    ax.axvline(sent_at, color="black", linestyle="--", label="reload sent")
    ax.set_xlabel("seconds")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"/predict during the reload: {len(load.samples)} requests, {len(bad)} failed")
    ax.legend(loc="upper right")
    writer.save_figure(fig, "reload_latency")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(outcomes)
    values = [_macro_f1(outcomes[n]) for n in names]
    colors = ["tab:green" if outcomes[n].status == "promoted" else "tab:red" for n in names]
    ax.bar(names, values, color=colors)
    ax.set_ylim(min(values) - 0.05, max(values) + 0.03)
    ax.set_ylabel("held-out macro-F1")
    ax.set_title("retrain per data commit (green: promoted, red: refused)")
    writer.save_figure(fig, "retrain_decisions")
    plt.close(fig)


def _macro_f1(outcome: RetrainOutcome) -> float:
    if outcome.challenger_metrics is None:
        raise MlCicdError(f"the retrain trained nothing: {outcome.reason}")
    return float(outcome.challenger_metrics["macro_f1"])


def run_demo(settings: ProjectSettings, command: str, load_seconds: float = 8.0) -> Path:
    """Run the demo; returns the results.json path."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    settings = settings.model_copy(update={"registered_model": DEMO_MODEL})
    if settings.uses_local_store() and settings.run_dir.exists():
        shutil.rmtree(settings.run_dir)
    settings.run_dir.mkdir(parents=True, exist_ok=True)

    def lap(name: str, since: float) -> float:
        timings[name] = round(time.monotonic() - since, 1)
        return time.monotonic()

    with tempfile.TemporaryDirectory(prefix="ml-cicd-demo-") as scratch:
        mark = time.monotonic()
        repo = clone_data(settings.data_dir, Path(scratch))
        run = settings.model_copy(update={"data_dir": repo})
        rules = ValidationRules()
        outcomes: dict[str, RetrainOutcome] = {}
        reports = settings.dist_dir / PROJECT / "reports"
        outcomes["committed data"] = retrain(run, rules, report_path=reports / "1-initial.md")
        if outcomes["committed data"].status != "promoted":
            raise MlCicdError(
                f"the first retrain was not promoted: {outcomes['committed data'].reason}"
            )
        mark = lap("first_retrain", mark)

        api_key = secrets.token_urlsafe(24)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = python_child_env(
            ML_CICD_MODEL_URI=f"models:/{DEMO_MODEL}@champion",
            MLFLOW_TRACKING_URI=settings.resolved_tracking_uri(),
            ML_CICD_API_KEY=api_key,
            ML_CICD_RUN_DIR=str(settings.run_dir),
        )
        command_line = [
            sys.executable,
            "-m",
            "ml_cicd",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        with ManagedProcess(
            command_line,
            name="ml-cicd service",
            env=env,
            log_path=settings.run_dir / "service.log",
            ready=f"{base_url}/health/ready",
            startup_timeout_s=120,
        ) as _service:
            mark = lap("service_start", mark)
            before = run_load(base_url, load_seconds, concurrency=4)
            mark = lap("load", mark)

            clean, noise = new_rows(repo)
            commit = commit_slice(repo, "0002-reviews.csv", clean, "data: 0002 reviews")
            outcomes[f"+0002 ({commit})"] = retrain(
                run, rules, report_path=reports / "2-added-slice.md"
            )
            second = outcomes[f"+0002 ({commit})"]
            mark = lap("second_retrain", mark)

            during, reply, sent_at = _load_during_reload(
                base_url, api_key, f"models:/{DEMO_MODEL}@champion", load_seconds
            )
            mark = lap("reload_under_load", mark)

            commit = commit_slice(
                repo, "0003-shuffled-labels.csv", noise, "data: 0003 (bad labels)"
            )
            outcomes[f"+0003 ({commit})"] = retrain(
                run, rules, report_path=reports / "3-bad-labels.md"
            )
            third = outcomes[f"+0003 ({commit})"]
            lap("third_retrain", mark)

    writer = ResultsWriter(PROJECT, settings.dist_dir, command)
    _figures(writer, during, sent_at, outcomes)
    committed = committed_results(PROJECT)
    served_version = (reply.get("model") or {}).get("version")
    answered_by_new = [s.started for s in during.samples if s.model_version == served_version]
    sent = len(during.samples)
    headline = [
        # None failing is an observation, not a proof: the verdict reads the share's upper bound.
        headline_figure(
            "failed requests during the reload",
            during.failed / sent if sent else None,
            "share of requests",
            baseline=sent,
            baseline_unit="requests sent",
            target=RELOAD_FAILURE_TARGET,
            interval=wilson_interval(during.failed, sent) if sent else None,
            digits=6,
            failed=during.failed,
        ),
        {
            "name": "gate: added slice",
            "value": second.status,
            "unit": "",
            "baseline": None,
            "target": None,
        },
        {
            "name": "gate: shuffled-label slice",
            "value": third.status,
            "unit": "",
            "baseline": None,
            "target": None,
        },
        {
            "name": "macro-F1 of the promoted model",
            "value": round(_macro_f1(second), 4),
            "unit": "",
            "baseline": round(_macro_f1(outcomes["committed data"]), 4),
            "target": None,
        },
    ]
    if committed:
        headline += reference_headline(committed)
    return writer.write(
        {
            "headline": headline,
            "load_before_reload": before.summary(),
            "load_during_reload": during.summary(),
            "reload": {
                "sent_at_s": round(sent_at, 2),
                "first_answer_of_new_version_s": (
                    round(min(answered_by_new), 2) if answered_by_new else None
                ),
                "reply": reply,
                "served_version": served_version,
            },
            "retrains": {name: o.as_dict() for name, o in outcomes.items()},
            "reports": sorted(str(p) for p in reports.glob("*.md")),
            "timings_s": {**timings, "total": round(time.monotonic() - started, 1)},
        }
    )
