"""roadmap_lab.services: child processes (readiness, fail-fast, timeouts, process-group stops) with
tiny Python children; then the real launchers (marked slow): PostgreSQL, Prometheus,
Alertmanager, uvicorn. mlflow_server is exercised by experiment-tracking's tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import services_testing
from roadmap_lab import services
from roadmap_lab.services import (
    ManagedProcess,
    PostgresCluster,
    ServiceError,
    alertmanager,
    free_port,
    log_tail,
    postgres_cluster,
    prometheus,
    python_child_env,
    signal_process_group,
    stop_process_group,
    uvicorn_app,
)
from roadmap_lab.testing.pytest_plugin import ServiceStarter


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def wait_for_file(path: Path, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while not (path.is_file() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} not written within {timeout_s} s"
        time.sleep(0.05)
    return path.read_text()


# --- Small helpers -----------------------------------------------------------------------------


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_python_child_env_hands_our_sys_path_and_extras_to_the_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = "import os, roadmap_lab.services; print(os.environ['EXTRA'])"
    completed = subprocess.run(
        python(code), env=python_child_env(EXTRA="yes"), capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "yes"
    monkeypatch.delenv("PATH")
    assert python_child_env()["PATH"] == services.DEFAULT_PATH


def test_a_pex_child_gets_neither_our_python_path_nor_our_pex_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PEX_ROOT", "/somewhere")
    monkeypatch.setenv("PYTHONPATH", "/ours")
    monkeypatch.setenv("KEPT", "1")
    env = services.pex_child_env(EXTRA="yes")
    assert "PYTHONPATH" not in env and not any(name.startswith("PEX_") for name in env)
    assert (env["KEPT"], env["EXTRA"]) == ("1", "yes") and env["PATH"]


def test_importing_services_loads_nothing_beyond_the_standard_library() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import roadmap_lab.services\n"
        "print(sorted(name for name in set(sys.modules) - before\n"
        "             if name.split('.')[0] not in sys.stdlib_module_names | {'roadmap_lab'}))\n"
    )
    completed = subprocess.run(
        python(code), env=python_child_env(), capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "[]"


def test_log_tail_gives_the_last_lines_or_says_there_is_no_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {n}\n" for n in range(100)))
    assert log_tail(log, lines=3) == "line 97\nline 98\nline 99\n"
    assert log_tail(log).count("\n") == 40
    assert log_tail(tmp_path / "missing.log") == "(no log)"


# --- ManagedProcess: readiness -------------------------------------------------------------------


def http_server(tmp_path: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
            "--directory", str(tmp_path)]  # fmt: skip


def test_ready_by_http_url_then_stopped_by_sigterm(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "hello.txt").write_text("hi")
    server = ManagedProcess(
        http_server(tmp_path, port),
        name="http.server",
        log_path=tmp_path / "http.log",
        ready=f"http://127.0.0.1:{port}/hello.txt",
    )
    with server:
        assert server.running
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=5) as answer:
            assert answer.read() == b"hi"
    assert not server.running
    assert server.poll() == -signal.SIGTERM
    assert server.stop() == -signal.SIGTERM  # a second stop only reports


def test_ready_by_tcp_port(tmp_path: Path) -> None:
    port = free_port()
    with ManagedProcess(
        http_server(tmp_path, port), name="http.server", log_path=tmp_path / "http.log", ready=port
    ) as server:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        assert server.running


def test_ready_by_callable_waits_until_it_is_true(tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    code = f"import time; time.sleep(0.5); open({str(marker)!r}, 'w').write('x'); time.sleep(60)"
    child = ManagedProcess(
        python(code), name="sleeper", log_path=tmp_path / "child.log", ready=marker.is_file
    )
    child.start()
    try:
        waited = child.wait_ready()
        assert marker.is_file()
        assert waited >= 0.4
    finally:
        child.stop()


def test_a_child_that_dies_during_start_fails_fast_with_its_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    log.write_text("a line from an earlier run\n")
    code = "import sys; print('bad config: no such key', flush=True); sys.exit(3)"
    child = ManagedProcess(
        python(code), name="broken", log_path=log, ready=free_port(), startup_timeout_s=60
    )
    # "exited with code 3": the exit is noticed, not waited out until the startup timeout.
    with pytest.raises(ServiceError, match="broken exited with code 3") as error, child:
        pass
    assert "bad config: no such key" in str(error.value)
    assert "earlier run" not in str(error.value)


def test_a_child_not_ready_in_time_is_stopped_and_the_error_has_its_log(tmp_path: Path) -> None:
    code = "import time; print('still loading', flush=True); time.sleep(60)"
    child = ManagedProcess(
        python(code),
        name="slow starter",
        log_path=tmp_path / "child.log",
        ready=free_port(),
        startup_timeout_s=0.5,
    )
    child.start()
    with pytest.raises(ServiceError, match="slow starter not ready after 0.5 s") as error:
        child.wait_ready()
    assert "still loading" in str(error.value)
    assert child.poll() == -signal.SIGTERM


def test_ctrl_c_while_waiting_stops_the_child(tmp_path: Path) -> None:
    def interrupted() -> bool:
        raise KeyboardInterrupt

    child = ManagedProcess(
        python("import time; time.sleep(60)"),
        name="sleeper",
        log_path=tmp_path / "child.log",
        ready=interrupted,
    )
    with pytest.raises(KeyboardInterrupt), child:
        pass
    assert child.poll() == -signal.SIGTERM
    assert not signal_process_group(child.pid, 0)  # nothing left in its group


def test_start_errors_are_service_errors(tmp_path: Path) -> None:
    missing = ManagedProcess(
        [str(tmp_path / "no-such-program")], name="ghost", log_path=tmp_path / "g.log"
    )
    with pytest.raises(ServiceError, match="not started"):
        missing.wait_ready()
    with pytest.raises(ServiceError, match="cannot start ghost"):
        missing.start()
    assert missing.stop() is None
    twice = ManagedProcess(python("pass"), name="once", log_path=tmp_path / "once.log")
    twice.start()
    with pytest.raises(ServiceError, match="once already started"):
        twice.start()
    twice.stop()


# --- Process groups -----------------------------------------------------------------------------


def test_a_child_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"open({str(marker)!r}, 'w').write('x')\n"
        "time.sleep(60)\n"
    )
    child = ManagedProcess(
        python(code),
        name="stubborn",
        log_path=tmp_path / "child.log",
        ready=marker.is_file,
        stop_grace_s=0.5,
    )
    with child:
        pass
    assert child.poll() == -signal.SIGKILL  # SIGTERM ignored: killed once the grace ran out


def leader_with_a_stubborn_grandchild(grandchild_pid: Path) -> list[str]:
    """A leader that starts a grandchild ignoring SIGTERM (it outlives the leader: only the
    group SIGKILL ends it), which writes its pid to ``grandchild_pid``."""
    grandchild = (
        "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"open({str(grandchild_pid)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    return python(
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(60)"
    )


def test_stop_leaves_no_grandchild_behind(tmp_path: Path) -> None:
    grandchild_pid = tmp_path / "grandchild.pid"
    with ManagedProcess(
        leader_with_a_stubborn_grandchild(grandchild_pid),
        name="leader",
        log_path=tmp_path / "leader.log",
        ready=grandchild_pid.is_file,
        stop_grace_s=5,
    ) as child:
        pid = int(wait_for_file(grandchild_pid))
        os.kill(pid, 0)  # alive while the leader runs
    assert child.poll() == -signal.SIGTERM
    with pytest.raises(ProcessLookupError):  # killed, and reaped by init before stop returned
        os.kill(pid, 0)
    assert not signal_process_group(child.pid, 0)


def test_stop_process_group_of_a_bare_pid_kills_the_group_but_leaves_the_leader_to_its_parent(
    tmp_path: Path,
) -> None:
    grandchild_pid = tmp_path / "grandchild.pid"
    process = subprocess.Popen(
        leader_with_a_stubborn_grandchild(grandchild_pid), start_new_session=True
    )
    pid = int(wait_for_file(grandchild_pid))
    started = time.monotonic()
    assert stop_process_group(process.pid, grace_s=5) is None
    # No wait for the unreaped leader's own reaping (it is ours, not init's).
    assert time.monotonic() - started < services.REAP_WAIT_S
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert process.wait(timeout=5) == -signal.SIGTERM  # still ours to reap
    assert not signal_process_group(process.pid, signal.SIGTERM)


def test_stop_process_group_uses_the_given_signal(tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *_: sys.exit(7))\n"
        f"open({str(marker)!r}, 'w').write('x')\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen(python(code), start_new_session=True)
    wait_for_file(marker)
    assert stop_process_group(process, grace_s=5, stop_signal=signal.SIGINT) == 7


# --- Launcher errors without servers -------------------------------------------------------------


def test_missing_monitoring_binaries_name_their_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with (
        pytest.raises(ServiceError, match="install the Debian package prometheus "),
        prometheus({}, [], tmp_path / "prometheus"),
    ):
        pass
    with (
        pytest.raises(ServiceError, match="install the Debian package prometheus-alertmanager"),
        alertmanager({}, tmp_path / "alertmanager"),
    ):
        pass


def test_postgres_binaries_newest_major_or_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POSTGRES_BIN_DIR", raising=False)
    monkeypatch.setattr(services, "POSTGRES_INSTALL_ROOT", tmp_path / "postgresql")
    for major in ("9", "15", "16"):
        (tmp_path / "postgresql" / major / "bin").mkdir(parents=True)
        (tmp_path / "postgresql" / major / "bin" / "initdb").touch()
    assert services.postgres_bin_dir() == tmp_path / "postgresql" / "16" / "bin"
    monkeypatch.setenv("POSTGRES_BIN_DIR", str(tmp_path / "postgresql" / "15" / "bin"))
    assert services.postgres_bin_dir() == tmp_path / "postgresql" / "15" / "bin"
    monkeypatch.setenv("POSTGRES_BIN_DIR", str(tmp_path))
    with pytest.raises(ServiceError, match="holds no initdb"):
        services.postgres_bin_dir()
    monkeypatch.delenv("POSTGRES_BIN_DIR")
    monkeypatch.setattr(services, "POSTGRES_INSTALL_ROOT", tmp_path / "none")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceError, match="apt-get install postgresql"):
        services.postgres_bin_dir()


def test_an_app_factory_must_be_importable(tmp_path: Path) -> None:
    def local_factory() -> None:
        return None

    with (
        pytest.raises(ServiceError, match="must be a module-level name"),
        uvicorn_app(local_factory, tmp_path),
    ):
        pass


# --- Real servers --------------------------------------------------------------------------------


@pytest.mark.slow
def test_postgres_cluster_creates_a_database_and_answers_psql(postgres: PostgresCluster) -> None:
    uri = postgres.create_database("roadmap")
    assert uri == f"postgresql://postgres@127.0.0.1:{postgres.port}/roadmap"
    assert postgres.uri("roadmap", driver="postgresql+psycopg2").startswith(
        "postgresql+psycopg2://"
    )
    postgres.psql("CREATE TABLE runs (name text); INSERT INTO runs VALUES ('a'), ('b')", "roadmap")
    assert postgres.psql("SELECT count(*), current_database() FROM runs", "roadmap") == "2|roadmap"
    assert postgres.version.split(".")[0] == postgres.bin_dir.parent.name
    with pytest.raises(ServiceError, match="psql failed: .*no_such_table"):
        postgres.psql("SELECT * FROM no_such_table", "roadmap")


@pytest.mark.slow
def test_postgres_cluster_shuts_down_fast_and_cleanly_and_removes_its_folder() -> None:
    with postgres_cluster() as cluster:
        postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
        # As root the group leader is runuser and the postmaster its child, in the same group.
        assert (postmaster == cluster.process.pid) == (os.geteuid() != 0)
    assert cluster.process.poll() == 0  # a clean fast shutdown, not the SIGKILL fallback
    with pytest.raises(ProcessLookupError):
        os.kill(postmaster, 0)
    assert not signal_process_group(cluster.process.pid, 0)
    assert not cluster.data_dir.parent.exists()


PROMETHEUS_RULES = """\
groups:
  - name: roadmap-lab
    interval: 1s
    rules:
      - record: roadmap:up:sum
        expr: sum(up)
      - alert: AlwaysFiring
        expr: vector(1)
"""


@pytest.mark.slow
def test_prometheus_scrapes_itself_loads_rules_and_answers_queries(
    tmp_path: Path, start_service: ServiceStarter, free_tcp_port: int
) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(PROMETHEUS_RULES)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "self", "static_configs": [{"targets": [f"127.0.0.1:{free_tcp_port}"]}]}
        ],
    }
    server = start_service(prometheus, config, [rules], tmp_path / "prometheus", port=free_tcp_port)
    assert server.url == f"http://127.0.0.1:{free_tcp_port}"
    assert server.version.count(".") == 2
    groups = get_json(server.url + "/api/v1/rules")["data"]["groups"]
    assert [group["name"] for group in groups] == ["roadmap-lab"]
    assert [rule["name"] for rule in groups[0]["rules"]] == ["roadmap:up:sum", "AlwaysFiring"]

    def query(expression: str) -> list[Any]:
        url = f"{server.url}/api/v1/query?query={urllib.parse.quote(expression)}"
        return get_json(url)["data"]["result"]

    deadline = time.monotonic() + 30
    while not (query('up{job="self"}') and query("roadmap:up:sum")):
        assert time.monotonic() < deadline, "no scrape and no recorded rule within 30 s"
        time.sleep(0.5)
    assert query('up{job="self"}')[0]["value"][1] == "1"
    assert query("roadmap:up:sum")[0]["value"][1] == "1"


@pytest.mark.slow
def test_alertmanager_accepts_an_alert_and_lists_it(
    tmp_path: Path, start_service: ServiceStarter
) -> None:
    config = {"route": {"receiver": "nowhere"}, "receivers": [{"name": "nowhere"}]}
    server = start_service(alertmanager, config, tmp_path / "alertmanager")
    alert = [{"labels": {"alertname": "DiskFull", "severity": "page"}}]
    request = urllib.request.Request(
        server.url + "/api/v2/alerts",
        data=json.dumps(alert).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    listed = get_json(server.url + "/api/v2/alerts")
    assert [a["labels"] for a in listed] == [{"alertname": "DiskFull", "severity": "page"}]
    assert server.version.startswith("0.")


@pytest.mark.slow
def test_uvicorn_serves_an_app_by_import_string(tmp_path: Path) -> None:
    with uvicorn_app("services_testing:app", tmp_path) as url:
        answer = get_json(url + "/runs")
    assert answer["path"] == "/runs"
    assert answer["pid"] != os.getpid()


@pytest.mark.slow
def test_uvicorn_serves_an_app_factory_with_the_given_environment(
    tmp_path: Path, start_service: ServiceStarter
) -> None:
    url = start_service(
        uvicorn_app,
        services_testing.create_app,
        tmp_path,
        env={services_testing.GREETING_VARIABLE: "from the factory"},
    )
    assert get_json(url + "/")["greeting"] == "from the factory"
    log = next(tmp_path.glob("uvicorn-*.log")).read_text()
    assert "services_testing:create_app" in log and "--factory" in log
