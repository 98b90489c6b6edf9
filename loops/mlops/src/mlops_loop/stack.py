"""The loop's stack on 127.0.0.1, every part a real server, the projects reached only through
their command lines (their PEXes), HTTP and the MLflow registry:

- data-pipelines' ``deploy`` (its PEX): the source with this run's scenarios, PostgreSQL, the
  MLflow server and Airflow (api-server, scheduler, dag-processor, LocalExecutor) running
  housing_pipeline unscheduled, registering every model and gating ``@champion``;
- the bootstrap: one run of the DAG without a logical date trains the history's first week and
  becomes the first champion (the gate's floor);
- this loop's receiver (uvicorn) and Alertmanager with the loop's routing, both on the clock;
- model-monitoring's ``serve`` (its PEX) serving ``models:/housing-classifier@champion`` and
  following the alias, and Prometheus with model-monitoring's committed rules, both scaled to
  the clock by model-monitoring's own ``scaled-config``.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
import yaml
from roadmap_lab.housing_model import CHAMPION, DOES_NOT_EXIST, REGISTERED_MODEL
from roadmap_lab.services import (
    ManagedProcess,
    alertmanager,
    free_port,
    pex_child_env,
    prometheus,
    uvicorn_app,
)

from mlops_loop.airflow_rest import AirflowClient, DagRun, dag_runs, trigger_run
from mlops_loop.alert_routing import alertmanager_config
from mlops_loop.errors import MlopsLoopError
from mlops_loop.settings import RETRAIN_ALERTS, LoopSettings

T = TypeVar("T")
ENDPOINTS_FILE = "endpoints.json"  # what data-pipelines' deploy writes once it is ready
# Airflow's first start (migrations, three processes) takes minutes on a loaded 2-core machine.
DEPLOY_TIMEOUT_S = 600.0
RUN_TIMEOUT_S = 300.0


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float, poll_s: float = 0.5) -> T:
    """Poll ``probe`` until it returns something truthy; that value (MlopsLoopError on timeout)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(poll_s)
    raise MlopsLoopError(f"timed out after {timeout_s:g} s waiting for {what}")


def pex(path: Path) -> list[str]:
    """The command that runs the PEX at ``path`` with this interpreter (same Python version)."""
    if not path.is_file():
        raise MlopsLoopError(
            f"{path} not found: build it with `./pants package projects/data-pipelines:cli "
            "projects/model-monitoring:cli` (or point MLOPS_LOOP_DATA_PIPELINES_PEX / "
            "MLOPS_LOOP_MODEL_MONITORING_PEX at it)"
        )
    return [sys.executable, str(path.resolve())]


class Registry:
    """The MLflow registry through its REST API (reads only: the gate's writes belong to
    data-pipelines)."""

    def __init__(self, url: str, name: str = REGISTERED_MODEL) -> None:
        self.url = url.rstrip("/")
        self.name = name

    def champion(self) -> dict[str, Any] | None:
        """The version ``@champion`` names (tags as a dict), or None when the registry says the
        model does not exist or has no such alias (read from its aliases, as
        ``roadmap_lab.housing_model.alias_version`` does); other errors are raised."""
        reply = self._get("registered-models/get", name=self.name)
        if reply is None:
            return None
        aliases = {a["alias"]: a["version"] for a in reply["registered_model"].get("aliases", [])}
        if CHAMPION not in aliases:
            return None
        version = self._get("model-versions/get", name=self.name, version=aliases[CHAMPION])
        if version is None:
            raise MlopsLoopError(f"{self.name}@{CHAMPION} names a version that does not exist")
        return _version(version["model_version"])

    def _get(self, path: str, **params: Any) -> dict[str, Any] | None:
        """A registry answer, or None for its "does not exist"."""
        reply = requests.get(f"{self.url}/api/2.0/mlflow/{path}", params=params, timeout=10)
        if reply.status_code == 404 and DOES_NOT_EXIST in reply.text:
            return None
        reply.raise_for_status()
        answer: dict[str, Any] = reply.json()
        return answer

    def versions(self) -> list[dict[str, Any]]:
        """Every version of the model (tags as a dict), oldest first."""
        reply = self._get("model-versions/search", filter=f"name='{self.name}'", max_results=1000)
        found = [_version(v) for v in (reply or {}).get("model_versions", [])]
        return sorted(found, key=lambda v: int(v["version"]))


def _version(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "tags": {t["key"]: t["value"] for t in data.get("tags", [])}}


@dataclass
class LoopStack:
    """The running stack: where each part answers, and the processes whose CPU a benchmark
    reads."""

    folder: Path
    settings: LoopSettings
    endpoints: dict[str, Any]
    airflow: AirflowClient
    registry: Registry
    receiver_url: str
    alertmanager_url: str
    prometheus_url: str
    service_url: str
    labels_api_key: str
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def dag_id(self) -> str:
        return str(self.endpoints["dag_id"])

    @property
    def source_url(self) -> str:
        return str(self.endpoints["source_url"])

    def retrain_alerts(self) -> list[dict[str, Any]]:
        """Prometheus' retrain alerts, pending or firing."""
        reply = requests.get(f"{self.prometheus_url}/api/v1/alerts", timeout=10)
        reply.raise_for_status()
        alerts: list[dict[str, Any]] = reply.json()["data"]["alerts"]
        return [a for a in alerts if a["labels"].get("alertname") in RETRAIN_ALERTS]

    def served(self) -> dict[str, Any]:
        """The service's /model: ``registry`` names the version it serves."""
        reply = requests.get(f"{self.service_url}/model", timeout=10)
        reply.raise_for_status()
        served: dict[str, Any] = reply.json()
        return served

    def alert_runs(self) -> list[DagRun]:
        """The DAG's runs the receiver triggered, oldest first."""
        runs = [r for r in dag_runs(self.airflow, self.dag_id) if r.run_id.startswith("alert__")]
        return sorted(runs, key=lambda r: r.run_id)

    def finished_run(self, run_id: str, timeout_s: float = RUN_TIMEOUT_S) -> DagRun:
        def done() -> DagRun | None:
            runs = [r for r in dag_runs(self.airflow, self.dag_id) if r.run_id == run_id]
            return runs[0] if runs and runs[0].state in ("success", "failed") else None

        return wait_for(f"run {run_id} to finish", done, timeout_s)


def deploy_faults(start_week: str, drift: str, weeks: int = 8) -> dict[str, str]:
    """The source's scenarios: the first week as it is, every later week (``weeks`` of them)
    ``drift`` (data-pipelines' ``inverted`` or ``mislabelled``)."""
    from datetime import date, timedelta

    first = date.fromisoformat(start_week)
    return {(first + timedelta(days=7 * n)).isoformat(): drift for n in range(1, weeks + 1)}


@contextlib.contextmanager
def loop_stack(
    settings: LoopSettings, folder: Path, faults: Mapping[str, str]
) -> Iterator[LoopStack]:
    """Start the stack in ``folder`` (the source serving ``faults``: week -> scenario), bootstrap
    the first champion, and yield it; stop everything on exit."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        pids: dict[str, int] = {}
        endpoints = _deploy(stack, settings, folder / "pipeline", faults, pids)
        password = Path(endpoints["airflow_password_file"]).read_text(encoding="utf-8").strip()
        airflow = AirflowClient(
            endpoints["airflow_url"], endpoints["airflow_username"], password, timeout_s=30
        )
        registry = Registry(endpoints["tracking_uri"])
        bootstrap(airflow, endpoints["dag_id"], registry)
        token_file = folder / "webhook-token"
        token_file.write_text(secrets.token_urlsafe(24), encoding="utf-8")
        token_file.chmod(0o600)
        receiver_url = stack.enter_context(
            uvicorn_app(
                "mlops_loop.receiver:create_app", folder / "receiver", factory=True,
                ready_path="/health",
                env={"MLOPS_LOOP_WEBHOOK_TOKEN_FILE": str(token_file),
                     "MLOPS_LOOP_AIRFLOW_URL": endpoints["airflow_url"],
                     "MLOPS_LOOP_AIRFLOW_PASSWORD": password,
                     "MLOPS_LOOP_DAG_ID": endpoints["dag_id"],
                     "MLOPS_LOOP_CLOCK": str(settings.clock),
                     "MLOPS_LOOP_COOLDOWN_S": str(settings.cooldown_s)},
            )
        )  # fmt: skip
        routing = settings.model_copy(
            update={"receiver_url": receiver_url, "webhook_token_file": token_file}
        )
        manager = stack.enter_context(
            alertmanager(alertmanager_config(routing), folder / "alertmanager")
        )
        labels_api_key = secrets.token_urlsafe(24)
        service_url = _serve(stack, settings, folder / "service", endpoints, labels_api_key, pids)
        server = _prometheus(stack, settings, folder, service_url, manager.url)
        pids.update(alertmanager=manager.process.pid, prometheus=server.process.pid)
        yield LoopStack(
            folder=folder,
            settings=settings,
            endpoints=endpoints,
            airflow=airflow,
            registry=registry,
            receiver_url=receiver_url,
            alertmanager_url=manager.url,
            prometheus_url=server.url,
            service_url=service_url,
            labels_api_key=labels_api_key,
            pids=pids,
        )


def _deploy(
    stack: contextlib.ExitStack,
    settings: LoopSettings,
    folder: Path,
    faults: Mapping[str, str],
    pids: dict[str, int],
) -> dict[str, Any]:
    """data-pipelines' deployment, held by its own process until we stop it."""
    folder.mkdir(parents=True, exist_ok=True)
    endpoints_file = folder / ENDPOINTS_FILE
    endpoints_file.unlink(missing_ok=True)
    argv = [*pex(settings.data_pipelines_pex), "deploy", "--folder", str(folder),
            "--start-date", settings.start_week, "--window-slices", "1"]  # fmt: skip
    for week, kind in sorted(faults.items()):
        argv += ["--fault", f"{week}={kind}"]
    process = ManagedProcess(
        argv, name="data-pipelines deploy", log_path=folder / "deploy.log",
        ready=endpoints_file.is_file, cwd=folder, startup_timeout_s=DEPLOY_TIMEOUT_S,
        # It stops Airflow, MLflow and PostgreSQL itself on SIGTERM; give it the time.
        stop_grace_s=90.0,
        env=pex_child_env(
            DATA_PIPELINES_RETRIES="1", DATA_PIPELINES_RETRY_DELAY_S="1",
            # A challenger must beat the champion beyond noise: the lower bound of its macro-F1
            # gain at least this (a model no better, e.g. the same answers, is refused).
            DATA_PIPELINES_GATE_MARGIN=str(settings.gate_margin),
        ),
    )  # fmt: skip
    stack.enter_context(process)
    pids["pipeline (Airflow, MLflow, PostgreSQL, source)"] = process.pid
    endpoints: dict[str, Any] = json.loads(endpoints_file.read_text(encoding="utf-8"))
    return endpoints


def bootstrap(airflow: AirflowClient, dag_id: str, registry: Registry) -> dict[str, Any]:
    """The first champion: a run without a logical date trains the history's first week, and
    the gate's floor promotes it (no champion yet). An error when no champion results."""
    from datetime import UTC, datetime

    run_id = f"bootstrap__{datetime.now(UTC):%Y%m%dT%H%M%S}"
    trigger_run(airflow, dag_id, run_id, {"trigger": "mlops-loop bootstrap"})

    def done() -> DagRun | None:
        runs = [r for r in dag_runs(airflow, dag_id) if r.run_id == run_id]
        return runs[0] if runs and runs[0].state in ("success", "failed") else None

    run = wait_for("the bootstrap run", done, RUN_TIMEOUT_S)
    champion = registry.champion()
    if run.state != "success" or champion is None:
        raise MlopsLoopError(
            f"the bootstrap run {run_id} ended {run.state} and @champion is "
            f"{'unset' if champion is None else champion['version']}: see the Airflow task logs"
        )
    return champion


def _serve(
    stack: contextlib.ExitStack,
    settings: LoopSettings,
    folder: Path,
    endpoints: Mapping[str, Any],
    labels_api_key: str,
    pids: dict[str, int],
) -> str:
    """model-monitoring's service on ``@champion``: its drift job and registry poll on the
    clock (production: every 15 s and 30 s), one worker."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    folder.mkdir(parents=True, exist_ok=True)
    process = ManagedProcess(
        [*pex(settings.model_monitoring_pex), "serve", "--registered-model", REGISTERED_MODEL,
         "--port", str(port), "--run-dir", str(folder)],
        name="model-monitoring serve", log_path=folder / "serve.log",
        ready=f"{url}/health/ready", cwd=folder, startup_timeout_s=180.0,
        env=pex_child_env(
            MODEL_MONITORING_TRACKING_URI=str(endpoints["tracking_uri"]),
            # MLflow resolves models:/ downloads through its process-wide registry URI, which
            # the service does not set from its own setting: give it the same server.
            MLFLOW_TRACKING_URI=str(endpoints["tracking_uri"]),
            MODEL_MONITORING_LABELS_API_KEY=labels_api_key,
            MODEL_MONITORING_DRIFT_INTERVAL_S=str(settings.wall_seconds(15.0)),
            MODEL_MONITORING_REGISTRY_POLL_S=str(settings.wall_seconds(30.0)),
            MODEL_MONITORING_BUNDLE_CHECK_S="0.2",
        ),
    )  # fmt: skip
    stack.enter_context(process)
    pids["model-monitoring service"] = process.pid
    return url


def _prometheus(
    stack: contextlib.ExitStack, settings: LoopSettings, folder: Path, service_url: str,
    alertmanager_url: str,
) -> Any:  # fmt: skip
    """Prometheus with model-monitoring's committed configuration and rules, scaled to the clock
    by model-monitoring's ``scaled-config`` (its own scaling: no copy of it here)."""
    scaled = folder / "scaled"
    written = subprocess.run(
        [*pex(settings.model_monitoring_pex), "scaled-config", "--clock", f"{settings.clock:g}",
         "--output", str(scaled), "--service", urllib.parse.urlsplit(service_url).netloc,
         "--alertmanager", urllib.parse.urlsplit(alertmanager_url).netloc],
        env=pex_child_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if written.returncode != 0:
        raise MlopsLoopError(f"model-monitoring scaled-config failed: {written.stderr[-1000:]}")
    config = yaml.safe_load((scaled / "prometheus.yml").read_text(encoding="utf-8"))
    rules = [scaled / name for name in config.pop("rule_files")]
    return stack.enter_context(prometheus(config, rules, folder / "prometheus"))
