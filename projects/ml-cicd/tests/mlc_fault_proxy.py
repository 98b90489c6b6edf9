"""An HTTP proxy in front of a real server, in the test process, that answers chosen requests
with an error instead of forwarding them: a registry that refuses (403) or breaks (500) on some
endpoints while the rest works."""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass(frozen=True)
class Fault:
    """Answer ``status`` to requests whose method is ``method`` and whose path matches ``path``."""

    method: str
    path: str  # a regular expression, searched in the path
    status: int

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and re.search(self.path, path) is not None


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self.upstream_host, self.upstream_port = target.hostname or "127.0.0.1", target.port or 80
        self.faults: list[Fault] = []
        self.answered: list[tuple[str, str, int]] = []  # (method, path, status) of every fault
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's names)
                proxy.handle(self)

            do_POST = do_PATCH = do_PUT = do_DELETE = do_GET  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        path = request.path.split("?", 1)[0]
        fault = next((f for f in self.faults if f.matches(request.command, path)), None)
        if fault is not None:
            self.answered.append((request.command, path, fault.status))
            message = f'{{"error_code": "FAULT_INJECTED", "message": "injected {fault.status}"}}'
            self._reply(request, fault.status, [("Content-Type", "application/json")],
                        message.encode())  # fmt: skip
            return
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
            connection.request(request.command, request.path, body=body, headers=headers)
            answer = connection.getresponse()
            content = answer.read()
            kept = [(k, v) for k, v in answer.getheaders()
                    if k.lower() not in HOP_BY_HOP | {"content-length"}]  # fmt: skip
            self._reply(request, answer.status, kept, content)
        except OSError as error:  # the upstream is down: what a gateway answers
            self._reply(request, 502, [("Content-Type", "text/plain")], str(error).encode())
        finally:
            connection.close()

    @staticmethod
    def _reply(
        request: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        request.send_response(status)
        for name, value in headers:
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    @contextmanager
    def running(self) -> Iterator[FaultProxy]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=10)
