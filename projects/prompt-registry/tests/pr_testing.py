"""Test helpers: a small HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions and models
API (rule-based answers, so tests know what to expect; adapters served by name with their own
answers; scripted failures), a proxy in front of a real server that can be switched to answer 503
(a registry outage), and synthetic eval reports."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prompt_registry.evaluation import EvalReport, ExampleResult
from roadmap_lab.stats import wilson_interval

CUE_LINE = "positive words:"


def rule_based_answer(prompt: str) -> str:
    """The judge says YES; a prompt asking to name both labels gets both; otherwise 'positive'
    when the prompt holds a positive word (those its "Positive words:" line lists, else love
    and great), else 'negative'."""
    lowered = prompt.lower()
    if "reply with yes or no" in lowered:
        return "YES"
    if "name both labels" in lowered:
        return "positive or negative"
    lines = lowered.splitlines()
    cues = next(
        (line[len(CUE_LINE) :].split() for line in lines if line.startswith(CUE_LINE)), None
    )
    text = "\n".join(line for line in lines if not line.startswith(CUE_LINE))
    positive = any(cue in text for cue in cues or ["love", "great"])
    return "The review is positive" if positive else "negative"


class ChatServer:
    """``POST /v1/chat/completions`` answered by :func:`rule_based_answer` (cut to
    ``max_tokens`` words, then with finish reason ``length``) and ``GET /v1/models`` listing
    the ``served`` model with ``root`` as its weights, as vLLM does; records requests.
    ``adapters`` serves more models by name, each with its own answers (as vLLM serves LoRA
    adapters beside the base: listed with the base as ``parent``); a request for any other
    model gets the base's answers. ``statuses`` scripts the next answers' HTTP statuses (429
    with a short Retry-After, 500); a prompt containing ``fail_when`` is always answered 500."""

    def __init__(
        self,
        root: str = "/models/smollm2",
        served: str = "smollm2",
        adapters: dict[str, Callable[[str], str]] | None = None,
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.fail_when: str | None = None
        self.root, self.served = root, served
        self.adapters = adapters or {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path != "/v1/models":  # vLLM serves the list only
                    self._reply(404, {"error": {"message": "no"}})
                    return
                base = {"id": server.served, "object": "model", "created": int(time.time()),
                        "owned_by": "vllm", "root": server.root, "parent": None}  # fmt: skip
                adapters = [
                    {**base, "id": name, "root": f"/adapters/{name}", "parent": server.served}
                    for name in server.adapters
                ]
                self._reply(200, {"object": "list", "data": [base, *adapters]})

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                with server.lock:
                    server.requests.append(body)
                    status = server.statuses.pop(0) if server.statuses else 200
                if server.fail_when and server.fail_when in prompt:
                    status = 500
                if self.path != "/v1/chat/completions" or status != 200:
                    self._reply(status if status != 200 else 404, {"error": {"message": "no"}})
                    return
                answer = server.adapters.get(body["model"], rule_based_answer)(prompt)
                words = answer.split()
                cut = len(words) > body["max_tokens"]
                self._reply(
                    200,
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {
                                    "role": "assistant",
                                    "content": (
                                        " ".join(words[: body["max_tokens"]]) if cut else answer
                                    ),
                                },
                                "finish_reason": "length" if cut else "stop",
                            }
                        ],
                    },
                )

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("retry-after-ms", "20")
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if "messages" in r]

    @contextmanager
    def running(self) -> Iterator[ChatServer]:
        with serving(self.httpd):
            yield self


@contextmanager
def serving(httpd: ThreadingHTTPServer) -> Iterator[None]:
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


class OutageProxy:
    """Forwards every request to ``target`` (a real MLflow server) until ``down`` is set; then
    answers 503 with a plain-text body, as a load balancer in front of a dead server does."""

    def __init__(self, target: str) -> None:
        self.down = False
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                if proxy.down:
                    data = b"Service Unavailable"
                    self.send_response(503)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                request = urllib.request.Request(
                    target + self.path,
                    data=self.rfile.read(length) if length else None,
                    method=self.command,
                    headers={"Content-Type": self.headers.get("Content-Type", "")},
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, body = response.status, response.read()
                        kind = response.headers.get("Content-Type", "")
                except urllib.error.HTTPError as error:
                    status, body = error.code, error.read()
                    kind = error.headers.get("Content-Type", "")
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[OutageProxy]:
        with serving(self.httpd):
            yield self


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
