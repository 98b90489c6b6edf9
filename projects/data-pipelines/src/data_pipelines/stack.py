"""Airflow as a deployment runs it, as child processes on 127.0.0.1 (the Celery and backfill
tests and the benchmark start it here; docker-compose.yml runs the same shape in containers):
the metadata DB on PostgreSQL, the api-server, scheduler and dag-processor, and either the
LocalExecutor or the CeleryExecutor with a Redis broker and one Celery worker per queue, each
with its own hostname, log-server port and scratch folder, at concurrency 1. One admin user of
the simple auth manager, with a password made here (no default secret)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from roadmap_lab.airflow_api import AirflowApiError, wait_for
from roadmap_lab.results import process_tree_cpu_seconds
from roadmap_lab.services import ManagedProcess, ServiceError, free_port, python_child_env

from data_pipelines.airflow_api import AirflowApi
from data_pipelines.names import PIPELINE_DAG_ID, REPORT_DAG_ID
from data_pipelines.runner import airflow_env

REDIS_PACKAGE = "redis-server"
ADMIN = "admin"
# Generous: on a loaded 2-core machine Airflow's processes take minutes to start.
STARTUP_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class RedisServer:
    url: str
    pid: int  # for its CPU-seconds


@contextlib.contextmanager
def redis_server(folder: Path, port: int | None = None) -> Iterator[RedisServer]:
    """Redis (Debian package redis-server) on 127.0.0.1, nothing persisted."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError(f"redis-server not found on PATH: apt-get install {REDIS_PACKAGE}")
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
            "no", "--dir", str(folder), "--daemonize", "no"]  # fmt: skip
    with ManagedProcess(argv, name="Redis", log_path=folder / "redis.log",
                        ready=_redis_ping(port), cwd=folder) as process:  # fmt: skip
        yield RedisServer(f"redis://127.0.0.1:{port}/0", process.pid)


def _redis_ping(port: int) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return probe


@dataclass(frozen=True)
class Worker:
    """One Celery worker: the queue it serves, the name its task instances record, its log
    server's port and its scratch folder."""

    queue: str
    hostname: str
    log_port: int
    scratch_dir: Path


@dataclass
class AirflowStack:
    url: str
    api: AirflowApi
    password: str  # of the admin user
    env: dict[str, str]
    workers: list[Worker]
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU-seconds so far of each process and its children (read before and after)."""
        return {name: process_tree_cpu_seconds(p.pid) for name, p in self.processes.items()}


def celery_workers(folder: Path, queues: Sequence[str]) -> list[Worker]:
    return [
        Worker(queue, f"worker-{queue}", free_port(), folder / f"scratch-{queue}")
        for queue in queues
    ]


@contextlib.contextmanager
def airflow_stack(
    folder: Path,
    database_uri: str,
    pipeline: Mapping[str, str],
    *,
    broker_url: str | None = None,
    workers: Sequence[Worker] = (),
) -> Iterator[AirflowStack]:
    """Airflow on ``database_uri`` (postgresql+psycopg2://...): the LocalExecutor, or with a
    ``broker_url`` the CeleryExecutor and ``workers``. ``pipeline`` holds the DATA_PIPELINES_*
    settings every process sees (a worker's scratch and hostname are its own)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(18)
    passwords = folder / "passwords.json"
    passwords.write_text(json.dumps({ADMIN: password}))
    os.chmod(passwords, 0o600)
    env = python_child_env(
        **airflow_env(folder / "home", database_uri),
        **executor_env(database_uri, broker_url),
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{ADMIN}:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{url}/execution/",
        AIRFLOW__CORE__HOSTNAME_CALLABLE="data_pipelines.tasks.worker_hostname",
        AIRFLOW__API__BASE_URL=url,
        AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
        # Every process signs and checks task tokens with the same key.
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
        **pipeline,
    )
    _migrate(env, folder)
    with contextlib.ExitStack() as stack:
        processes: dict[str, ManagedProcess] = {}

        def start(
            name: str, args: list[str], extra: Mapping[str, str], ready: str | int | None
        ) -> None:
            process = ManagedProcess(
                [sys.executable, "-m", "airflow", *args], name=name,
                log_path=folder / "logs" / f"{name}.log", ready=ready, env={**env, **extra},
                cwd=folder, startup_timeout_s=STARTUP_TIMEOUT_S, stop_grace_s=20.0,
            )  # fmt: skip
            processes[name] = stack.enter_context(process)

        start("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], {}, f"{url}/api/v2/monitor/health")  # fmt: skip
        start("scheduler", ["scheduler"], {}, None)
        start("dag-processor", ["dag-processor"], {}, None)
        for worker in workers:
            worker.scratch_dir.mkdir(parents=True, exist_ok=True)
            start(
                worker.hostname,
                ["celery", "worker", "--queues", worker.queue, "--concurrency", "1",
                 "--celery-hostname", f"{worker.hostname}@%h"],
                {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker.log_port),
                 "DATA_PIPELINES_SCRATCH_DIR": str(worker.scratch_dir),
                 "DATA_PIPELINES_WORKER_HOSTNAME": worker.hostname},
                worker.log_port,
            )  # fmt: skip
        api = AirflowApi(url, ADMIN, password, timeout_s=60.0)
        wait_for("both DAGs parsed", lambda: _dags_parsed(api), STARTUP_TIMEOUT_S)
        yield AirflowStack(url, api, password, env, list(workers), processes)


def executor_env(database_uri: str, broker_url: str | None) -> dict[str, str]:
    if broker_url is None:
        return {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}
    # Celery's results in the metadata DB (its SQLAlchemy backend: db+<the DB's URL>; the URL
    # names its driver, psycopg2: SQLAlchemy 2.1 takes plain postgresql:// for psycopg 3).
    backend = f"db+{database_uri}"
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": backend,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
    }


def _migrate(env: Mapping[str, str], folder: Path) -> None:
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=dict(env), cwd=folder, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if migrate.returncode != 0:
        raise ServiceError(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}"
                           f"{migrate.stderr[-2000:]}")  # fmt: skip


def _dags_parsed(api: AirflowApi) -> bool:
    try:
        dag_ids = (PIPELINE_DAG_ID, REPORT_DAG_ID)
        return all(api.request("GET", f"/dags/{dag_id}") for dag_id in dag_ids)
    except AirflowApiError:
        return False
