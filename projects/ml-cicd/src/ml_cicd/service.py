"""The HTTP service: classifies reviews (great / other) with an MLflow pyfunc model.

    POST /predict        {"texts": [...]} -> labels and p(great), and which model answered
    GET  /model          the serving model: name, version, alias, data version, metrics
    GET  /health/live    200 while the process runs
    GET  /health/ready   200 with the model once one is loaded, else 503
    GET  /metrics        Prometheus
    POST /admin/reload   {"model_uri": ...} with X-API-Key: load beside the serving model, switch
                         only when it loads and passes a smoke prediction

Every error is JSON ``{"detail": "<one line>"}`` (validation errors add ``errors``), and each
route documents its error statuses in the OpenAPI schema. ``create_app(settings)`` builds the app;
``app_from_env`` is the uvicorn factory (settings from ``ML_CICD_*``); ``run_server`` starts
uvicorn, with Prometheus multi-process mode when it runs several workers.

No ``from __future__ import annotations`` here: FastAPI reads the request models that
``create_app`` defines (their limits come from the settings) from the handlers' annotations.
"""

import asyncio
import logging
import os
import secrets
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ml_cicd.errors import MlCicdError
from ml_cicd.model import predict_labels
from ml_cicd.serving import (
    LoadedModel,
    ModelHolder,
    ReloadResult,
    check_model_uri,
    load_model,
    served_model_uri,
)
from ml_cicd.settings import ENV_PREFIX, ServiceSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

APP_FACTORY = "ml_cicd.service:app_from_env"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
API_KEY_HEADER = "X-API-Key"
NO_MODEL = "no model loaded yet"
MAX_URI_CHARS = 2048
# Validation errors listed in a reply (a batch of 256 bad texts would otherwise list 256).
MAX_LISTED_ERRORS = 20
# Threads that run predictions: the GIL-bound model gains nothing from more, and requests beyond
# them queue, still under the prediction timeout.
PREDICT_THREADS = max(2, min(4, os.cpu_count() or 1))
# uvicorn waits this long past the prediction timeout for in-flight requests at SIGTERM.
SHUTDOWN_GRACE_S = 5.0
RELOAD_OUTCOMES = ("switched", "failed", "busy", "timeout")
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


# --- API schema -----------------------------------------------------------------------------------


class ModelReference(BaseModel):
    name: str
    version: str | None = Field(description="registry version; null for a model folder")
    alias: str | None
    data_version: str | None = Field(description="sha256 of the training data's slices")


class ModelInfo(ModelReference):
    uri: str
    metrics: dict[str, float] = Field(description="held-out metrics recorded with the model")
    model_type: str | None
    run_id: str | None
    model_uuid: str | None
    loaded_at: str = Field(description="UTC, ISO 8601")


class Prediction(BaseModel):
    label: Literal["great", "other"]
    p_great: float = Field(ge=0, le=1)


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model: ModelReference


class LiveResponse(BaseModel):
    status: Literal["alive"]


class ReadyResponse(BaseModel):
    status: Literal["ready"]
    model: ModelInfo


class ErrorResponse(BaseModel):
    detail: str


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    detail: str
    errors: list[FieldError]


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model_uri: Annotated[str, StringConstraints(min_length=1, max_length=MAX_URI_CHARS)] | None = (
        Field(default=None, description="models:/<name>@<alias>, models:/<name>/<version> or a "
              "model folder; null reloads the URI being served (an alias may have moved)")
    )  # fmt: skip


class ReloadResponse(BaseModel):
    switched: bool
    reason: str | None = Field(default=None, description="why the model did not switch")
    detail: str | None = Field(default=None, description="the reason, for errors")
    model: ModelInfo | None = Field(description="the model serving after the reload")


def _error(description: str, model: type[BaseModel] | Any = ErrorResponse) -> dict[str, Any]:
    return {"description": description, "model": model}


# --- Metrics --------------------------------------------------------------------------------------


class ServiceMetrics:
    """The service's Prometheus metrics in a registry of their own (several apps may live in one
    process, e.g. in tests). With PROMETHEUS_MULTIPROC_DIR set (several uvicorn workers), the
    values go to files there and ``exposition`` combines every worker's."""

    LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
    BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
    P_GREAT_BUCKETS = tuple(round(0.1 * step, 1) for step in range(1, 11))

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "mlcicd_http_requests_total",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "mlcicd_http_request_duration_seconds",
            "HTTP request latency by route, method and status",
            ["route", "method", "status"],
            buckets=self.LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_progress = Gauge(
            "mlcicd_http_requests_in_progress",
            "HTTP requests being served",
            ["route", "method"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.predictions = Counter(
            "mlcicd_predictions_total", "Predicted labels", ["label"], registry=registry
        )
        self.batch_size = Histogram(
            "mlcicd_predict_batch_size",
            "Texts per predict request",
            buckets=self.BATCH_BUCKETS,
            registry=registry,
        )
        self.p_great = Histogram(
            "mlcicd_p_great",
            "Predicted probability of great",
            buckets=self.P_GREAT_BUCKETS,
            registry=registry,
        )
        self.model_info = Gauge(
            "mlcicd_model_info",
            "The model serving now (1); models it replaced (0)",
            ["name", "version", "alias", "data_version", "uri"],
            registry=registry,
            multiprocess_mode="liveall",  # one series per worker: reloads reach one worker
        )
        self.reloads = Counter(
            "mlcicd_model_reloads_total", "Admin reloads by outcome", ["outcome"], registry=registry
        )
        for label in ("great", "other"):
            self.predictions.labels(label)
        for outcome in RELOAD_OUTCOMES:
            self.reloads.labels(outcome)
        if not self.multiprocess:
            ProcessCollector(registry=registry)

    def observe_predictions(self, labels: list[str], p_great: np.ndarray) -> None:
        self.batch_size.observe(len(labels))
        for label in ("great", "other"):
            count = labels.count(label)
            if count:
                self.predictions.labels(label).inc(count)
        for value in p_great:
            self.p_great.observe(float(value))

    def model_switched(self, previous: LoadedModel | None, current: LoadedModel) -> None:
        if previous is not None:
            self.model_info.labels(*self._model_labels(previous)).set(0)
        self.model_info.labels(*self._model_labels(current)).set(1)

    @staticmethod
    def _model_labels(model: LoadedModel) -> tuple[str, ...]:
        return (
            model.name,
            model.version or "",
            model.alias or "",
            model.data_version or "",
            model.uri,
        )

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        if not self.multiprocess:
            return encoder(self.registry), content_type
        from prometheus_client.multiprocess import MultiProcessCollector

        combined = CollectorRegistry()
        MultiProcessCollector(combined)
        return encoder(combined), content_type

    def worker_exited(self) -> None:
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


class RequestMetricsMiddleware:
    """Counts every request by route, method and status and times it; unknown paths share the
    route label "unmatched" (no label per random path)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, routes: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in self.routes else "unmatched"
        method = scope["method"]
        status = 500  # unless a response starts

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_progress = self.metrics.in_progress.labels(route, method)
        in_progress.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            in_progress.dec()
            labels = (route, method, str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - started)


class BodyTooLargeError(HTTPException):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body larger than {max_bytes} bytes")


class BodySizeLimitMiddleware:
    """413 for a body over ``max_bytes``: at once when Content-Length says so, else as soon as the
    streamed body passes the limit (the handler's read raises, FastAPI answers in JSON)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            error = BodyTooLargeError(self.max_bytes)
            response = JSONResponse({"detail": error.detail}, status_code=error.status_code)
            await response(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        await self.app(scope, receive_within_limit, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# --- Errors ---------------------------------------------------------------------------------------


def _where(loc: Sequence[Any]) -> str:
    parts = [str(part) for part in loc if part != "body"]
    return ".".join(parts) or "body"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "malformed JSON")
            position = error.get("loc", ("body", "?"))[-1]
            return JSONResponse(
                {"detail": f"invalid JSON body: {reason} at position {position}"}, status_code=400
            )
    listed = [
        {
            "loc": [part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in errors[:MAX_LISTED_ERRORS]
    ]
    detail = "; ".join(f"{_where(item['loc'])}: {item['msg']}" for item in listed[:3])
    if len(errors) > 3:
        detail += f" (and {len(errors) - 3} more)"
    return JSONResponse({"detail": detail, "errors": listed}, status_code=422)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, status_code=500)


# --- The app --------------------------------------------------------------------------------------


class _Workers:
    """Thread pools for the blocking work, started and stopped with the app's lifespan."""

    def __init__(self) -> None:
        self.predict: ThreadPoolExecutor | None = None
        self.reload: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self.predict = ThreadPoolExecutor(PREDICT_THREADS, thread_name_prefix="predict")
        self.reload = ThreadPoolExecutor(1, thread_name_prefix="reload")

    def stop(self) -> None:
        for pool in (self.predict, self.reload):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self.predict = self.reload = None


async def _in_thread(pool: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any) -> T:
    if pool is None:
        raise HTTPException(503, "the service is not running (starting or shutting down)")
    return await asyncio.wrap_future(pool.submit(fn, *args))


def _admin_guard(api_key: SecretStr | None) -> Callable[[str | None], None]:
    expected = api_key.get_secret_value().encode() if api_key is not None else b""
    scheme = APIKeyHeader(
        name=API_KEY_HEADER, auto_error=False, description="the service's ML_CICD_API_KEY"
    )

    def require_admin(key: str | None = Security(scheme)) -> None:
        if not expected:
            raise HTTPException(503, "admin endpoints are disabled: no ML_CICD_API_KEY configured")
        if not key:
            raise HTTPException(401, f"missing {API_KEY_HEADER} header")
        if not secrets.compare_digest(key.encode(), expected):
            raise HTTPException(401, f"wrong {API_KEY_HEADER}")

    return require_admin


def _info(model: LoadedModel | None) -> ModelInfo | None:
    return ModelInfo.model_validate(model.info()) if model is not None else None


def create_app(settings: ServiceSettings) -> FastAPI:
    """The service for ``settings``; the model loads in the lifespan (startup fails with the
    reason when it does not load) and is released at shutdown."""
    holder = ModelHolder(load_model)
    metrics = ServiceMetrics()
    workers = _Workers()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        workers.start()
        try:
            try:
                uri = await _in_thread(workers.reload, served_model_uri, settings)
                model = await _in_thread(workers.reload, load_model, uri, settings.tracking_uri)
            except MlCicdError as error:
                logger.error("the service cannot start: %s", error)
                raise
            holder.install(model)
            metrics.model_switched(None, model)
            yield
        finally:
            workers.stop()
            holder.release()
            metrics.worker_exited()
            logger.info("model released")

    app = FastAPI(
        title="ml-cicd review classifier",
        version="1.0.0",
        description="Classifies reviews as great or other with an MLflow pyfunc model.",
        lifespan=lifespan,
    )
    app.state.holder = holder
    app.state.metrics = metrics
    app.state.settings = settings
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)

        texts: Annotated[
            list[
                Annotated[str, StringConstraints(min_length=1, max_length=settings.max_text_chars)]
            ],
            Field(
                min_length=1,
                max_length=settings.max_batch,
                description=f"1 to {settings.max_batch} reviews, each 1 to "
                f"{settings.max_text_chars} characters",
            ),
        ]

    body_errors: dict[int | str, dict[str, Any]] = {
        400: _error("the body is not valid JSON"),
        413: _error(f"the body is larger than {settings.max_body_bytes} bytes"),
        422: _error("the body does not match the schema", ValidationErrorResponse),
    }

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={
            **body_errors,
            503: _error("no model loaded yet"),
            504: _error(f"the prediction took longer than {settings.predict_timeout_s:g} s"),
        },
        summary="Classify a batch of reviews",
    )
    async def predict(body: PredictRequest) -> PredictResponse:
        model = holder.current  # this request uses this model to the end, whatever reloads do
        if model is None:
            raise HTTPException(503, NO_MODEL)
        try:
            p_great = await asyncio.wait_for(
                _in_thread(workers.predict, model.p_great, body.texts), settings.predict_timeout_s
            )
        except TimeoutError:
            raise HTTPException(
                504, f"the prediction took longer than {settings.predict_timeout_s:g} s"
            ) from None
        values = np.asarray(p_great, dtype=float)
        if values.shape != (len(body.texts),) or not np.all((values >= 0) & (values <= 1)):
            raise HTTPException(500, "the model returned no valid probability for each text")
        labels = predict_labels(values)
        metrics.observe_predictions(labels, values)
        return PredictResponse(
            predictions=[
                Prediction.model_validate({"label": label, "p_great": float(p)})
                for label, p in zip(labels, values, strict=True)
            ],
            model=ModelReference.model_validate(model.reference()),
        )

    @app.get(
        "/model",
        response_model=ModelInfo,
        responses={503: _error(NO_MODEL)},
        summary="The serving model",
    )
    async def model_info() -> ModelInfo:
        info = _info(holder.current)
        if info is None:
            raise HTTPException(503, NO_MODEL)
        return info

    @app.get("/health/live", response_model=LiveResponse, summary="Liveness")
    async def live() -> LiveResponse:
        return LiveResponse(status="alive")

    @app.get(
        "/health/ready",
        response_model=ReadyResponse,
        responses={503: _error(NO_MODEL)},
        summary="Readiness: a model is loaded",
    )
    async def ready() -> ReadyResponse:
        info = _info(holder.current)
        if info is None:
            raise HTTPException(503, NO_MODEL)
        return ReadyResponse(status="ready", model=info)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus exposition",
                "content": {"text/plain": {}, "application/openmetrics-text": {}},
            }
        },
        summary="Prometheus metrics",
    )
    async def prometheus_metrics(request: Request) -> Response:
        content, content_type = metrics.exposition(request.headers.get("accept"))
        return Response(content, media_type=content_type)

    def reload_reply(status: int, result: ReloadResult) -> JSONResponse:
        body = ReloadResponse(
            switched=False, reason=result.reason, detail=result.reason, model=_info(result.model)
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=status)

    @app.post(
        "/admin/reload",
        response_model=ReloadResponse,
        dependencies=[Depends(_admin_guard(settings.api_key))],
        responses={
            400: body_errors[400],
            401: _error(f"missing or wrong {API_KEY_HEADER}"),
            409: _error("another reload is running; the model did not switch", ReloadResponse),
            413: body_errors[413],
            422: _error(
                "the body does not match the schema, or the new model failed to load or its "
                "smoke prediction (the old model keeps serving)",
                ValidationErrorResponse | ReloadResponse,
            ),
            503: _error("admin endpoints are disabled: no API key configured"),
            504: _error(
                f"loading took longer than {settings.reload_timeout_s:g} s; the old model keeps "
                "serving",
                ReloadResponse,
            ),
        },
        summary="Load a model beside the serving one and switch when it works",
    )
    async def reload(body: ReloadRequest | None = None) -> Any:
        current = holder.current
        uri = (body.model_uri if body is not None else None) or (
            current.uri if current is not None else settings.model_uri
        )
        if not uri:  # nothing was ever loaded, no URI configured: the default folder
            uri = await _in_thread(workers.reload, served_model_uri, settings)
        ticket = holder.begin_reload(uri)
        if ticket is None:
            metrics.reloads.labels("busy").inc()
            return reload_reply(
                409, ReloadResult(False, "another reload is running; try again later", current)
            )
        if workers.reload is None:
            holder.abandon(ticket)
            raise HTTPException(503, "the service is shutting down")
        future = workers.reload.submit(holder.run_reload, ticket, settings.tracking_uri)
        waiting = asyncio.wrap_future(future)
        try:
            # shield: a timeout must not cancel the queued load, which releases the reload lock.
            result = await asyncio.wait_for(asyncio.shield(waiting), settings.reload_timeout_s)
        except TimeoutError:
            if not holder.abandon(ticket):
                metrics.reloads.labels("timeout").inc()
                reason = (
                    f"loading {uri} took longer than {settings.reload_timeout_s:g} s; "
                    "the old model keeps serving"
                )
                return reload_reply(504, ReloadResult(False, reason, holder.current))
            result = await waiting  # it switched just before the deadline
        if not result.switched:
            metrics.reloads.labels("failed").inc()
            return reload_reply(422, result)
        metrics.reloads.labels("switched").inc()
        assert result.model is not None
        metrics.model_switched(current, result.model)
        return ReloadResponse(switched=True, model=_info(result.model))

    routes = frozenset(getattr(route, "path", "") for route in app.routes)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics, routes=routes)  # outermost
    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory (``ml_cicd.service:app_from_env``): settings from ``ML_CICD_*``."""
    from roadmap_lab.logs import setup_logging

    settings = ServiceSettings()
    setup_logging(settings.log_level)
    return create_app(settings)


# --- Running it -----------------------------------------------------------------------------------


def settings_environment(settings: ServiceSettings) -> dict[str, str | None]:
    """``settings`` as ``ML_CICD_*`` variables (None: unset it), so that uvicorn workers, which
    import the app factory afresh, build the same settings."""
    variables: dict[str, str | None] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        variables[f"{ENV_PREFIX}{name.upper()}"] = None if value is None else str(value)
    if settings.tracking_uri:
        variables["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    return variables


def run_server(
    settings: ServiceSettings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1
) -> None:
    """Serve until SIGTERM / Ctrl-C (in-flight requests finish first). Checks the model URI
    first (ModelLoadError: one line) and trains the default model once when it is missing.

    With ``workers > 1``: Prometheus multi-process mode in a fresh folder under ``run_dir``,
    removed afterwards. An admin reload reaches the one worker that receives it."""
    import uvicorn

    if workers < 1:
        raise ValueError("workers must be at least 1")
    if settings.model_uri:
        check_model_uri(settings.model_uri, settings.tracking_uri)
    else:
        served_model_uri(settings)  # train once here, not in every worker
    for name, value in settings_environment(settings).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    metrics_dir: Path | None = None
    if workers > 1:
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        metrics_dir = Path(tempfile.mkdtemp(prefix="prometheus-multiproc-", dir=settings.run_dir))
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
    else:
        os.environ.pop(MULTIPROC_ENV, None)
    # uvicorn shuts down gracefully on SIGTERM / SIGINT, then raises the signal again with the
    # handlers it found: these make a clean shutdown return here (exit status 0).
    previous = {sig: signal.signal(sig, _shut_down_already) for sig in SHUTDOWN_SIGNALS}
    try:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            http=NoDelayHttpToolsProtocol,
            access_log=settings.access_log,
            log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=int(settings.predict_timeout_s + SHUTDOWN_GRACE_S),
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with TCP_NODELAY on every connection: with several workers
    uvicorn serves from a socket it shares with them, where Nagle's algorithm stays on and each
    keep-alive reply waited ~40 ms for the client's delayed ACK."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def _shut_down_already(signum: int, frame: FrameType | None) -> None:
    logger.info("%s: the server has shut down", signal.Signals(signum).name)
