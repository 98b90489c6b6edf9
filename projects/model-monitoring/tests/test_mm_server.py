"""The service as it runs in production (`serve`, two uvicorn workers) on a real socket: a chunked
body without Content-Length is cut off at the limit, and SIGTERM lets a request already in flight
finish before the workers exit."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mm_testing import payload, reference_rows
from roadmap_lab.services import ManagedProcess, free_port, python_child_env

pytestmark = pytest.mark.slow
MAX_BODY = 4096


@pytest.fixture
def server(bundle_dir: Path, tmp_path: Path) -> Iterator[tuple[ManagedProcess, int]]:
    port = free_port()
    env = python_child_env(
        MODEL_MONITORING_BUNDLE_DIR=str(bundle_dir),
        MODEL_MONITORING_RUN_DIR=str(tmp_path / "run"),
        MODEL_MONITORING_MAX_BODY_BYTES=str(MAX_BODY),
        MODEL_MONITORING_GRACEFUL_SHUTDOWN_S="20",
    )
    argv = [sys.executable, "-m", "model_monitoring", "serve", "--port", str(port),
            "--workers", "2"]  # fmt: skip
    with ManagedProcess(argv, name="serve", log_path=tmp_path / "serve.log", env=env,
                        ready=f"http://127.0.0.1:{port}/health/ready",
                        startup_timeout_s=120) as process:  # fmt: skip
        yield process, port


def exchange(port: int, head: bytes, body_parts: list[bytes]) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head)
        for part in body_parts:
            connection.sendall(part)
        return read_response(connection)


def read_response(connection: socket.socket) -> bytes:
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = [line for line in lines if line.lower().startswith(b"content-length")]
        if length and len(body) >= int(length[0].split(b":")[1]):
            break
    return received


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_a_chunked_body_is_cut_off_at_the_limit(server: tuple[ManagedProcess, int]) -> None:
    _, port = server
    head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    reply = exchange(port, head, [chunk(b" " * 1000) for _ in range(8)])  # 8,000 bytes > 4,096
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"larger than 4096 bytes" in reply


def test_sigterm_lets_the_request_in_flight_finish(server: tuple[ManagedProcess, int]) -> None:
    process, port = server
    body = json.dumps(payload(reference_rows(5))).encode()
    head = (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head + body[:10])  # the request is in flight: half its body sent
        time.sleep(0.5)
        signal_sent = time.monotonic()
        os.kill(process.pid, signal.SIGTERM)  # uvicorn's supervisor; it stops its workers
        time.sleep(1.0)  # the workers are shutting down meanwhile
        connection.sendall(body[10:])
        reply = read_response(connection)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
    assert len(json.loads(reply.partition(b"\r\n\r\n")[2])["predictions"]) == 5
    while process.poll() is None and time.monotonic() - signal_sent < 30:
        time.sleep(0.2)
    assert process.poll() == 0, process.log_tail()
    with pytest.raises(OSError):  # no longer listening
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
