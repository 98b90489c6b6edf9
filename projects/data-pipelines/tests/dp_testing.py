"""Test helpers: a webhook receiver on 127.0.0.1, output-tree inspection, and a search for local
paths in the values tasks passed each other."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self


class WebhookReceiver:
    """Records the JSON bodies POSTed to it (the pipeline's failure alerts)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                length = int(self.headers.get("Content-Length", "0"))
                receiver.received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/alerts"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def files_under(root: Path) -> list[str]:
    """Every file under ``root`` (relative, sorted); an absent root has none."""
    if not root.exists():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def strings_in(value: Any) -> list[str]:
    """Every string inside ``value`` (nested dicts and lists), keys left out."""
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings_in(item)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in strings_in(item)]
    return [value] if isinstance(value, str) else []


def local_paths(value: Any) -> list[str]:
    """The strings inside ``value`` that are local paths rather than store URIs: anything with a
    slash but no scheme, or naming something on this disk."""
    return [s for s in strings_in(value) if "://" not in s and ("/" in s or Path(s).exists())]


def uris(value: Any) -> list[str]:
    return [s for s in strings_in(value) if "://" in s]
