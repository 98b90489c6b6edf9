"""Test helpers: a small HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions API
(rule-based answers, so tests know what to expect), and synthetic eval reports."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prompt_registry.evaluation import EvalReport, ExampleResult
from roadmap_lab.stats import wilson_interval


def rule_based_answer(prompt: str) -> str:
    """'positive' for reviews that love something, else 'negative'; the judge says YES."""
    lowered = prompt.lower()
    if "reply with yes or no" in lowered:
        return "YES"
    return "The review is positive" if "love" in lowered or "great" in lowered else "negative"


class ChatServer:
    """``POST /v1/chat/completions`` answered by :func:`rule_based_answer`; records requests.
    ``fail_next`` makes the next requests answer HTTP 500."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    failing = server.fail_next > 0
                    server.fail_next -= int(failing)
                if self.path != "/v1/chat/completions" or failing:
                    self._reply(500 if failing else 404, {"error": {"message": "no"}})
                    return
                prompt = body["messages"][-1]["content"]
                self._reply(
                    200,
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {
                                    "role": "assistant",
                                    "content": rule_based_answer(prompt),
                                },
                                "finish_reason": "stop",
                            }
                        ],
                    },
                )

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @contextmanager
    def running(self) -> Iterator[ChatServer]:
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()
            thread.join()


def report(passes: list[bool], label: str = "v") -> EvalReport:
    """An eval report with the given per-example verdicts (ids e0, e1, ...)."""
    return EvalReport(
        prompt="p",
        label=label,
        digest=label,
        version=None,
        provider="test",
        examples=[
            ExampleResult(f"e{i}", f"{label} output {i}", passed, {})
            for i, passed in enumerate(passes)
        ],
        pass_interval=wilson_interval(sum(passes), len(passes)),
        scorer_pass_rates={},
        cache_hits=0,
        model_calls=len(passes),
        seconds=0.0,
    )
