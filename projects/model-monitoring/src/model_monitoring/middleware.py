"""What wraps every request: the request counter and latency histogram, the body size limit
(enforced while the body streams in, so a chunked body without Content-Length is bounded too),
and the error handlers that turn bad input into a counted 4xx with a message (never a 500)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from model_monitoring.metrics import ENDPOINTS, ServiceMetrics

logger = logging.getLogger(__name__)
# pydantic error types -> the reason label of model_client_errors_total
ERROR_REASONS = {
    "missing": "missing_feature",
    "extra_forbidden": "unknown_field",
    "finite_number": "not_finite",
    "too_long": "oversize_batch",
    "too_short": "empty_batch",
    "json_invalid": "invalid_json",
    "value_error": "invalid_value",
    "string_too_long": "invalid_value",
}
TYPE_ERRORS = ("_type", "_parsing")
MAX_LISTED_ERRORS = 20


def endpoint_label(path: str) -> str:
    return path if path in ENDPOINTS else "unmatched"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class RequestRecorder:
    """Counts and times a request. It keeps the labelled children per (endpoint, status): a
    ``labels()`` lookup costs more than the update (a few endpoints times a few statuses, so the
    cache stays small)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        self._series: dict[tuple[str, int], tuple[Any, Any]] = {}

    def record(self, endpoint: str, status: int, seconds: float) -> None:
        series = self._series.get((endpoint, status))
        if series is None:
            labels = (endpoint, str(status))
            series = self.metrics.requests.labels(*labels), self.metrics.latency.labels(*labels)
            self._series[(endpoint, status)] = series
        requests, latency = series
        requests.inc()
        latency.observe(seconds)


class RequestMetricsMiddleware:
    """Counts and times every request by endpoint and status; refuses a body over the limit with
    413, from its Content-Length before reading or, without one, as soon as the streamed bytes
    pass the limit."""

    def __init__(
        self, app: ASGIApp, metrics: ServiceMetrics, max_body_bytes: int, enabled: bool
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.enabled = enabled
        self.recorder = RequestRecorder(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = endpoint_label(scope["path"])
        status = 500  # unless a response starts
        started = time.perf_counter()
        received = 0

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)  # the app answers 413
            return message

        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                response = JSONResponse({"detail": BodyTooLarge(self.max_body_bytes).detail}, 413)
                await response(scope, receive, send_and_record)
            else:
                await self.app(scope, limited_receive, send_and_record)
        finally:
            if status == 413:
                self.metrics.client_errors.labels(endpoint, "body_too_large").inc()
            if self.enabled:
                self.recorder.record(endpoint, status, time.perf_counter() - started)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _where(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc if part != "body") or "body"


def _reason(error_type: str) -> str:
    if error_type in ERROR_REASONS:
        return ERROR_REASONS[error_type]
    if error_type.endswith(TYPE_ERRORS):
        return "wrong_type"
    return "invalid"


def add_error_handlers(app: FastAPI, metrics: ServiceMetrics) -> None:
    """Invalid input: 400 (broken JSON) or 422 naming the fields, counted by reason; anything
    unexpected: a logged 500 without internals."""

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        endpoint = endpoint_label(request.url.path)
        for reason in sorted({_reason(str(error.get("type", ""))) for error in errors}):
            metrics.client_errors.labels(endpoint, reason).inc()
        if any(error.get("type") == "json_invalid" for error in errors):
            return JSONResponse({"detail": "the body is not valid JSON"}, status_code=400)
        listed = [
            {
                "loc": [p if isinstance(p, int) else str(p) for p in error.get("loc", ())],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
            for error in errors[:MAX_LISTED_ERRORS]
        ]
        detail = "; ".join(f"{_where(item['loc'])}: {item['msg']}" for item in listed[:3])
        if len(errors) > 3:
            detail += f" (and {len(errors) - 3} more)"
        return JSONResponse({"detail": detail, "errors": listed}, status_code=422)

    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, status_code=500)

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)
