"""Start real servers as child processes for tests and demos, wait until they answer, stop them.

Every child runs in its own process group, so stopping it also stops whatever it started:

    with ManagedProcess([...], name="api", log_path=log, ready="http://127.0.0.1:8000/health"):
        ...  # the child answers here; leaving the block stops its whole group

    with postgres_cluster() as cluster:                       # a throwaway PostgreSQL
        uri = cluster.create_database("mlflow")
        with mlflow_server(uri, folder) as url: ...           # python -m mlflow server

The launchers (``postgres_cluster``, ``mlflow_server``, ``prometheus``, ``alertmanager``,
``uvicorn_app``) are context managers that yield once the server is ready and raise
``ServiceError`` with the child's log tail when it is not. Only the standard library is imported
here; YAML loads inside the functions that write configs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from roadmap_lab.errors import LabError

logger = logging.getLogger(__name__)

Probe = Callable[[], bool]
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
LOCALHOST = "127.0.0.1"
POLL_INTERVAL_S = 0.1
PROGRESS_EVERY_S = 15.0
# Killed grandchildren stay zombies, still in their group, until init reaps them: ~1.5 s on our
# machines. stop_process_group waits this long at most for their group to vanish.
REAP_WAIT_S = 5.0
POSTGRES_PACKAGE_HINT = "Debian/Ubuntu: apt-get install postgresql"
# Debian and Ubuntu install each major version side by side: <root>/<major>/bin.
POSTGRES_INSTALL_ROOT = Path("/usr/lib/postgresql")


class ServiceError(LabError):
    """A child did not start, died, or was not ready in time (a missing package, a port in use, a
    bad configuration); the message carries its log tail, so the CLIs show it as one error."""


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that was free a moment ago (the OS picks it; another process may take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def python_child_env(**extra: str) -> dict[str, str]:
    """Environment for child Python processes: this process's ``sys.path`` as PYTHONPATH (Pants
    sandboxes and PEXes set up sys.path without PYTHONPATH), made absolute (a Pants sandbox's
    entries are relative, and the child may run in another folder), a default PATH when there is
    none, then ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(entry) for entry in sys.path if entry)
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(extra)
    return env


def pex_child_env(**extra: str) -> dict[str, str]:
    """Environment for another project's PEX (a loop runs the projects it joins that way): ours
    with a PATH, less this process's Python path and PEX settings (the PEX sets up its own),
    then ``extra``."""
    env = python_child_env(**extra)
    return {k: v for k, v in env.items() if k != "PYTHONPATH" and not k.startswith("PEX_")}


def log_tail(path: Path | str, lines: int = 40, *, offset: int = 0) -> str:
    """The last ``lines`` lines of a log file from byte ``offset`` on, or "(no log)"."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            tail = b"".join(deque(log, maxlen=lines))
    except OSError:
        return "(no log)"
    return tail.decode("utf-8", errors="replace")


# --- Process groups ---------------------------------------------------------------------------


def signal_process_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the process group led by ``pid``; False when the group no longer exists."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True


def stop_process_group(
    process_or_pid: subprocess.Popen[Any] | int,
    grace_s: float,
    stop_signal: int = signal.SIGTERM,
) -> int | None:
    """Stop the group led by a child: ``stop_signal``, up to ``grace_s`` for the leader to exit,
    then SIGKILL to the group in any case (grandchildren that outlived the leader die too); returns
    once the group is gone (waiting at most ``REAP_WAIT_S`` for init to reap killed orphans).

    Returns the exit code of a ``Popen`` (reaped here), None for a bare pid (not reaped here: its
    parent, e.g. a ``multiprocessing.Process``, still owns it)."""
    bare_pid = isinstance(process_or_pid, int)
    pid = process_or_pid if isinstance(process_or_pid, int) else process_or_pid.pid
    if not _exited(process_or_pid) and signal_process_group(pid, stop_signal):
        deadline = time.monotonic() + grace_s
        while not _exited(process_or_pid) and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL_S)
        if not _exited(process_or_pid):
            logger.warning("pid %d did not exit within %g s; killing its group", pid, grace_s)
    signal_process_group(pid, signal.SIGKILL)
    returncode = None if isinstance(process_or_pid, int) else process_or_pid.wait()
    deadline = time.monotonic() + REAP_WAIT_S
    while not _group_gone(pid, leader_unreaped=bare_pid):
        if time.monotonic() > deadline:
            logger.warning("process group %d not reaped %g s after SIGKILL", pid, REAP_WAIT_S)
            break
        time.sleep(POLL_INTERVAL_S)
    return returncode


def _group_gone(pgid: int, *, leader_unreaped: bool) -> bool:
    """No process left in the group, zombies included, except an unreaped leader whose parent
    still owns it."""
    if not leader_unreaped:
        return not signal_process_group(pgid, 0)
    return _group_members(pgid) <= {pgid}


def _group_members(pgid: int) -> set[int]:
    members = set()
    with contextlib.suppress(FileNotFoundError):  # no /proc: nothing to wait for
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    # After "(comm) ": state, ppid, process group, ...
                    fields = stat.read().rpartition(b")")[2].split()
            except OSError:  # exited meanwhile
                continue
            if int(fields[2]) == pgid:
                members.add(int(entry.name))
    return members


def _exited(process_or_pid: subprocess.Popen[Any] | int) -> bool:
    if not isinstance(process_or_pid, int):
        return process_or_pid.poll() is not None
    try:
        os.kill(process_or_pid, 0)
        with open(f"/proc/{process_or_pid}/stat", "rb") as stat:
            # A zombie has exited; only its parent can reap it. The state follows "(comm) ".
            return stat.read().rpartition(b")")[2].split()[0] == b"Z"
    except ProcessLookupError:
        return True
    except OSError:  # no /proc: the process exists, so count it as running
        return False


# --- Readiness probes: any Callable[[], bool] ---------------------------------------------------


def http_probe(url: str, status: int = 200) -> Probe:
    """Ready when a GET of ``url`` answers with ``status``."""

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == status)
        except urllib.error.HTTPError as error:
            return error.code == status
        except (urllib.error.URLError, OSError):
            return False

    return probe


def tcp_probe(host: str, port: int) -> Probe:
    """Ready when ``host:port`` accepts a TCP connection."""

    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    return probe


# --- One child process --------------------------------------------------------------------------


class ManagedProcess:
    """A child in its own process group, its output in ``log_path``; ready when ``ready`` says so.

    ``ready``: None (ready once started), a URL (``http_probe``), a port on 127.0.0.1
    (``tcp_probe``) or any probe. ``env`` is the child's whole environment (default: ours).
    As a context manager it starts and waits on entry and stops on exit; when waiting fails for
    any reason (Ctrl-C included) the child is stopped before the error propagates.
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        name: str,
        log_path: Path,
        ready: str | int | Probe | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        startup_timeout_s: float = 60.0,
        stop_grace_s: float = 10.0,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.argv = [os.fspath(arg) for arg in argv]
        self.name = name
        self.log_path = log_path
        self.probe = _as_probe(ready)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.stop_signal = stop_signal
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._returncode: int | None = None
        self._stopped = False

    @property
    def pid(self) -> int:
        return self._started().pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def poll(self) -> int | None:
        """The exit code, or None while the child runs."""
        return self._started().poll()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines this start of the child wrote (earlier runs in the same log excluded)."""
        return log_tail(self.log_path, lines, offset=self._log_offset)

    def start(self) -> None:
        if self._process is not None:
            raise ServiceError(f"{self.name} already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            log.write(f"$ {shlex.join(self.argv)}\n".encode())
            log.flush()
            logger.info("Starting %s (log %s)", self.name, self.log_path)
            try:
                self._process = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,  # its own group: stop() reaches its children too
                )
            except OSError as error:
                raise ServiceError(f"cannot start {self.name} ({self.argv[0]}): {error}") from None

    def wait_ready(self, timeout_s: float | None = None) -> float:
        """Block until the probe succeeds; return the seconds it took.

        Fails fast when the child exits meanwhile; on timeout stops the child. Both raise
        ServiceError with the log tail."""
        process = self._started()
        timeout_s = self.startup_timeout_s if timeout_s is None else timeout_s
        started = time.monotonic()
        next_note = started + PROGRESS_EVERY_S
        while True:
            code = process.poll()
            if code is not None:
                raise ServiceError(
                    f"{self.name} exited with code {code} before it was ready; last log lines "
                    f"({self.log_path}):\n{self.log_tail()}"
                )
            if self.probe is None or self.probe():
                waited = time.monotonic() - started
                logger.info("%s ready after %.1f s", self.name, waited)
                return waited
            now = time.monotonic()
            if now - started > timeout_s:
                self.stop()
                raise ServiceError(
                    f"{self.name} not ready after {timeout_s:g} s; last log lines "
                    f"({self.log_path}):\n{self.log_tail()}"
                )
            if now >= next_note:
                logger.info("Waiting for %s (%.0f s so far)", self.name, now - started)
                next_note = now + PROGRESS_EVERY_S
            time.sleep(POLL_INTERVAL_S)

    def stop(self, grace_s: float | None = None) -> int | None:
        """Stop the child's group (``stop_signal``, SIGKILL after the grace); its exit code, or
        None when it never started. Stopping twice signals nothing the second time."""
        if self._process is None:
            return None
        if not self._stopped:
            grace = self.stop_grace_s if grace_s is None else grace_s
            self._returncode = stop_process_group(self._process, grace, self.stop_signal)
            # Only now: once the leader is reaped its group id may be reused, so never again.
            self._stopped = True
            logger.info("%s stopped (exit code %s)", self.name, self._returncode)
        return self._returncode

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _started(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise ServiceError(f"{self.name} not started")
        return self._process


def _as_probe(ready: str | int | Probe | None) -> Probe | None:
    if isinstance(ready, str):
        return http_probe(ready)
    if isinstance(ready, int):
        return tcp_probe(LOCALHOST, ready)
    return ready


# --- PostgreSQL ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresCluster:
    """A running throwaway cluster; superuser ``postgres``, trust authentication."""

    host: str
    port: int
    version: str
    bin_dir: Path
    data_dir: Path
    process: ManagedProcess

    def uri(self, database: str = "postgres", driver: str = "postgresql") -> str:
        return f"{driver}://postgres@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through the cluster's own psql; its unaligned, tuples-only output."""
        return self._client(
            "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql
        )

    def create_database(self, name: str, driver: str = "postgresql") -> str:
        """Create database ``name`` (the cluster's createdb); its URI."""
        self._client("createdb", name)
        return self.uri(name, driver)

    def _client(self, program: str, *args: str) -> str:
        connection = ["-h", self.host, "-p", str(self.port), "-U", "postgres"]
        completed = subprocess.run(
            [self.bin_dir / program, *connection, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if completed.returncode != 0:
            raise ServiceError(f"{program} failed: {completed.stderr.strip()}")
        return completed.stdout.strip()


def postgres_bin_dir() -> Path:
    """PostgreSQL's server binaries: POSTGRES_BIN_DIR, else the newest /usr/lib/postgresql/*/bin
    (Debian bookworm ships 15, Ubuntu 24.04 runners 16), else the folder of initdb on PATH."""
    configured = os.environ.get("POSTGRES_BIN_DIR")
    if configured:
        if not (Path(configured) / "initdb").is_file():
            raise ServiceError(f"POSTGRES_BIN_DIR={configured} holds no initdb")
        return Path(configured)
    installed = sorted(POSTGRES_INSTALL_ROOT.glob("*/bin/initdb"), key=_major_version)
    if installed:
        return installed[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise ServiceError(
        "PostgreSQL server binaries (initdb, postgres, pg_isready) not found: "
        f"install them ({POSTGRES_PACKAGE_HINT}) or set POSTGRES_BIN_DIR"
    )


def _major_version(initdb: Path) -> int:
    major = initdb.parent.parent.name
    return int(major) if major.isdigit() else 0


@contextlib.contextmanager
def postgres_cluster(
    *, port: int | None = None, startup_timeout_s: float = 60.0
) -> Iterator[PostgresCluster]:
    """A fresh cluster in a temp folder, served on 127.0.0.1; removed afterwards.

    The server runs in the foreground as a ManagedProcess; as root it runs as the ``postgres``
    user (PostgreSQL refuses root) through runuser, which stays in the same process group."""
    bin_dir = postgres_bin_dir()
    port = port or free_port()
    version = _version([str(bin_dir / "postgres"), "--version"], r"\(PostgreSQL\) (\d+(?:\.\d+)*)")
    folder = Path(tempfile.mkdtemp(prefix="roadmap-lab-postgres-"))  # /tmp: postgres can enter it
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    data_dir = folder / "data"
    try:
        initdb = subprocess.run(
            [*as_postgres, str(bin_dir / "initdb"), "-D", str(data_dir), "-A", "trust",
             "-U", "postgres", "--encoding=UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, timeout=120, cwd=folder,
        )  # fmt: skip
        if initdb.returncode != 0:
            raise ServiceError(f"initdb failed: {initdb.stdout}{initdb.stderr}".strip())
        server = ManagedProcess(
            [*as_postgres, str(bin_dir / "postgres"), "-D", str(data_dir), "-p", str(port),
             "-k", str(folder), "-c", f"listen_addresses={LOCALHOST}",
             # Test speed: nothing here must survive a crash.
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            name=f"PostgreSQL {version}",
            log_path=folder / "postgres.log",
            ready=_pg_isready(bin_dir, port),
            cwd=folder,
            startup_timeout_s=startup_timeout_s,
            stop_grace_s=30.0,
            # PostgreSQL's fast shutdown. runuser blocks SIGINT (SIGTERM would make it SIGKILL
            # postgres 2 s later), so the group signal reaches postgres alone.
            stop_signal=signal.SIGINT,
        )  # fmt: skip
        with server:
            yield PostgresCluster(LOCALHOST, port, version, bin_dir, data_dir, server)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _pg_isready(bin_dir: Path, port: int) -> Probe:
    def probe() -> bool:
        command = [str(bin_dir / "pg_isready"), "-q", "-h", LOCALHOST, "-p", str(port),
                   "-U", "postgres", "-t", "2"]  # fmt: skip
        return subprocess.run(command, capture_output=True, timeout=10).returncode == 0

    return probe


# --- MLflow, Prometheus, Alertmanager, uvicorn --------------------------------------------------


@dataclass(frozen=True)
class HttpService:
    """A running HTTP server: its base URL, version, process and log."""

    url: str
    version: str
    process: ManagedProcess
    log_path: Path


@contextlib.contextmanager
def mlflow_server(
    backend_store_uri: str,
    folder: Path,
    *,
    port: int | None = None,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    python: str | None = None,
) -> Iterator[str]:
    """``python -m mlflow server`` (the console script may not be on PATH under Pants) with
    artifacts in ``folder/artifacts``; yields its URL. ``python`` must have mlflow installed
    (default: this interpreter, with our sys.path); ``env`` adds variables."""
    port = port or free_port()
    (folder / "artifacts").mkdir(parents=True, exist_ok=True)
    url = f"http://{LOCALHOST}:{port}"
    server = ManagedProcess(
        [python or sys.executable, "-m", "mlflow", "server",
         "--backend-store-uri", backend_store_uri,
         "--artifacts-destination", str(folder / "artifacts"),
         "--host", LOCALHOST, "--port", str(port), "--workers", str(workers)],
        name="MLflow server",
        log_path=folder / "mlflow-server.log",
        ready=f"{url}/health",
        env=python_child_env(**(env or {})),
        cwd=folder,
        startup_timeout_s=90.0,
        stop_grace_s=15.0,
    )  # fmt: skip
    with server:
        yield url


@contextlib.contextmanager
def prometheus(
    config: Path | str | Mapping[str, Any],
    rules: Sequence[Path | str],
    folder: Path,
    *,
    port: int | None = None,
) -> Iterator[HttpService]:
    """Prometheus (Debian package ``prometheus``) on 127.0.0.1 with its TSDB in ``folder``.

    ``config`` is a prometheus.yml path or its content as a dict; ``rules`` are rule files, copied
    into ``folder/rules`` and set as the config's ``rule_files``."""
    binary = _binary(["prometheus"], "prometheus")
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    content = dict(_load_yaml(config) if isinstance(config, Path | str) else config)
    (folder / "rules").mkdir(exist_ok=True)
    copies = [folder / "rules" / f"{index}-{Path(rule).name}" for index, rule in enumerate(rules)]
    for rule, copy in zip(rules, copies, strict=True):
        shutil.copyfile(rule, copy)
    content["rule_files"] = [str(copy) for copy in copies]
    config_file = _write_yaml(content, folder / "prometheus.yml")
    with _monitoring_server(
        [binary, f"--config.file={config_file}", f"--storage.tsdb.path={folder / 'data'}",
         f"--web.listen-address={LOCALHOST}:{port}", "--web.enable-lifecycle"],
        name="Prometheus", port=port, log_path=folder / "prometheus.log",
    ) as service:  # fmt: skip
        yield service


@contextlib.contextmanager
def alertmanager(
    config: Path | str | Mapping[str, Any], folder: Path, *, port: int | None = None
) -> Iterator[HttpService]:
    """Alertmanager (Debian package ``prometheus-alertmanager``) on 127.0.0.1, without a cluster
    port; ``config`` is an alertmanager.yml path or its content as a dict."""
    binary = _binary(["prometheus-alertmanager", "alertmanager"], "prometheus-alertmanager")
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config_file = (
        Path(config)
        if isinstance(config, Path | str)
        else _write_yaml(config, folder / "alertmanager.yml")
    )
    with _monitoring_server(
        [binary, f"--config.file={config_file}", f"--storage.path={folder / 'data'}",
         f"--web.listen-address={LOCALHOST}:{port}", "--cluster.listen-address="],
        name="Alertmanager", port=port, log_path=folder / "alertmanager.log",
    ) as service:  # fmt: skip
        yield service


@contextlib.contextmanager
def _monitoring_server(
    argv: list[str], *, name: str, port: int, log_path: Path
) -> Iterator[HttpService]:
    version = _version([argv[0], "--version"], r"version (\d+(?:\.\d+)+)")
    url = f"http://{LOCALHOST}:{port}"
    with ManagedProcess(argv, name=f"{name} {version}", log_path=log_path, ready=f"{url}/-/ready",
                        cwd=log_path.parent) as process:  # fmt: skip
        yield HttpService(url, version, process, log_path)


@contextlib.contextmanager
def uvicorn_app(
    app: str | Callable[..., Any],
    folder: Path,
    *,
    factory: bool = False,
    port: int | None = None,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/",
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """``python -m uvicorn`` serving ``app`` on 127.0.0.1; yields the base URL once
    ``ready_path`` answers 200. ``app`` is an import string ("pkg.module:attr") or a module-level
    app factory (its import string is derived, and ``--factory`` passed); ``env`` adds variables."""
    if callable(app):
        import_string, factory = _import_string(app), True
    else:
        import_string = app
    port = port or free_port()
    url = f"http://{LOCALHOST}:{port}"
    argv = [sys.executable, "-m", "uvicorn", import_string]
    argv += ["--host", LOCALHOST, "--port", str(port)]
    if factory:
        argv.append("--factory")
    if workers > 1:
        argv += ["--workers", str(workers)]
    folder.mkdir(parents=True, exist_ok=True)
    with ManagedProcess(
        [*argv, *extra_args],
        name=f"uvicorn {import_string}",
        log_path=folder / f"uvicorn-{port}.log",
        ready=url + ready_path,
        env=python_child_env(**(env or {})),
        cwd=folder,
    ):
        yield url


def _import_string(factory: Callable[..., Any]) -> str:
    module, qualname = factory.__module__, factory.__qualname__
    if module == "__main__" or "<locals>" in qualname:
        raise ServiceError(
            f"app factory {qualname} must be a module-level name the child can import"
        )
    return f"{module}:{qualname}"


# --- Helpers ------------------------------------------------------------------------------------


def _binary(names: Sequence[str], package: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise ServiceError(
        f"{' / '.join(names)} not found on PATH: install the Debian package {package} "
        f"(apt-get install {package}, or bash build-support/install-system-packages.sh)"
    )


def _version(command: list[str], pattern: str) -> str:
    completed = subprocess.run(command, capture_output=True, text=True, timeout=30)
    match = re.search(pattern, completed.stdout + completed.stderr)
    if completed.returncode != 0 or match is None:
        raise ServiceError(f"`{' '.join(command)}` gave no version: {completed.stderr.strip()}")
    return match.group(1)


def _load_yaml(path: Path | str) -> Mapping[str, Any]:
    import yaml

    content = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(content, dict):
        raise ServiceError(f"{path}: expected a YAML mapping")
    return content


def _write_yaml(content: Mapping[str, Any], path: Path) -> Path:
    import yaml

    # Through JSON first: plain types only (a Path or tuple would be dumped as a Python tag).
    path.write_text(yaml.safe_dump(json.loads(json.dumps(content, default=str))), encoding="utf-8")
    return path
