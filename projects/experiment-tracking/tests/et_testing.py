"""Helpers of the experiment-tracking tests: free ports, child-process environments, and real
servers (an MLflow server on a sqlite or PostgreSQL backend store) on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

POSTGRES_BIN = Path(os.environ.get("POSTGRES_BIN_DIR", "/usr/lib/postgresql/15/bin"))
TINY_CONFIG = {
    "epochs": 5,
    "batch_size": 16,
    "learning_rate": 3e-3,
    "patience": 10,
    "log_every_steps": 5,
}


def model_data_args(model_dir: Path, data_files, run_dir: Path, tracker: str) -> list[str]:
    """The `train` options that point the CLI at a test model, test data, a run folder."""
    return [
        "--model-dir",
        str(model_dir),
        "--train-file",
        str(data_files[0]),
        "--test-file",
        str(data_files[1]),
        "--run-dir",
        str(run_dir),
        "--tracker",
        tracker,
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """Environment for child Python processes: our sys.path (Pants sandboxes and PEXes set it up
    without PYTHONPATH), one thread each, no tracking server inherited."""
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(extra)
    return env


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"server did not answer {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_process_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@contextmanager
def mlflow_server(backend_store_uri: str, folder: Path) -> Iterator[str]:
    """`python -m mlflow server` (the console script may not be on PATH under Pants)."""
    port = free_port()
    log = folder / "mlflow-server.log"
    (folder / "artifacts").mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with log.open("w") as stream:
        process = subprocess.Popen(
            command,
            stdout=stream,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=folder,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", process, log)
        yield url
    finally:
        stop_process_group(process)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (as the postgres user when we are root); yields its URI."""
    initdb, pg_ctl = POSTGRES_BIN / "initdb", POSTGRES_BIN / "pg_ctl"
    if not (initdb.is_file() and pg_ctl.is_file()):
        pytest.fail(
            f"PostgreSQL server binaries not found in {POSTGRES_BIN} (initdb, pg_ctl): "
            "install them "
            "(Debian: apt-get install postgresql) or set POSTGRES_BIN_DIR; this test does not skip"
        )
    as_postgres: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="et-postgres-"))  # /tmp: readable by the postgres user
    if os.geteuid() == 0:
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    data, log = folder / "data", folder / "postgres.log"
    port = free_port()

    def run(*args: str | Path) -> None:
        completed = subprocess.run(
            [*as_postgres, *map(str, args)], capture_output=True, text=True, timeout=120
        )
        if completed.returncode != 0:
            pytest.fail(f"{Path(args[0]).name} failed: {completed.stdout}{completed.stderr}")

    run(initdb, "-D", data, "-A", "trust", "-U", "postgres")
    run(
        pg_ctl,
        "-D",
        data,
        "-l",
        log,
        "-w",
        "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1",
        "start",
    )
    try:
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres"
        )
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE mlflow")
        connection.close()
        # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; we ship psycopg2.
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        run(pg_ctl, "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def store_client(uri: str | Path):
    """An MLflow client bound to one store for tracking and registry (a run folder or a URI);
    never the process-wide defaults, which other tests move."""
    import mlflow

    if isinstance(uri, Path):
        uri = f"sqlite:///{(uri / 'mlflow.db').resolve()}"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
