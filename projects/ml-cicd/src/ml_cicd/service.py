"""The HTTP service: classifies reviews (great / other) with an MLflow pyfunc model.

    POST /predict        {"texts": [...]} -> labels and p(great), and which model answered
    GET  /model          the serving model (name, version, alias, data version, metrics) and
                         what every worker of the service serves
    GET  /health/live    200 while the process runs
    GET  /health/ready   200 with the model once one is loaded, else 503
    GET  /metrics        Prometheus
    POST /admin/reload   {"model_uri": ...} with X-API-Key: load in every worker beside the
                         serving model, switch all only when all load it and pass a smoke test

``create_app(settings)`` puts the parts together (``ml_cicd.api``: schema, routes, middleware,
metrics, the bounded prediction queue; ``reloads.py``: the model holder and the reloads);
``app_from_env`` is the uvicorn factory (settings from ``ML_CICD_*``); ``run_server`` starts
uvicorn with the workers' shared folder and, with several workers, Prometheus multi-process
mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import SecretStr
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ml_cicd.api.error_replies import unexpected_error, validation_error
from ml_cicd.api.metrics import MULTIPROC_ENV, ServiceMetrics
from ml_cicd.api.middleware import BodySizeLimitMiddleware, RequestMetricsMiddleware
from ml_cicd.api.predict_queue import PredictionQueue
from ml_cicd.api.routes import Service, add_routes
from ml_cicd.errors import MlCicdError
from ml_cicd.reloads import POLL_S, ModelHolder, Reloader
from ml_cicd.serving import check_model_uri, load_model, served_model_uri
from ml_cicd.settings import ENV_PREFIX, ServiceSettings
from ml_cicd.worker_group import WorkerGroup

logger = logging.getLogger(__name__)

APP_FACTORY = "ml_cicd.service:app_from_env"
# Threads that run predictions: the GIL-bound model gains nothing from more, and requests beyond
# them queue (up to settings.max_pending_predictions), still under the prediction timeout.
PREDICT_THREADS = max(2, min(4, os.cpu_count() or 1))
# uvicorn waits this long past the prediction timeout for in-flight requests at SIGTERM.
SHUTDOWN_GRACE_S = 5.0
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def create_app(settings: ServiceSettings) -> FastAPI:
    """The service for ``settings``; the model loads in the lifespan (startup fails with the
    reason when it does not load) and is released at shutdown."""
    metrics = ServiceMetrics()
    reloader = Reloader(
        ModelHolder(),
        WorkerGroup(settings.workers_dir),
        load_model,
        settings.tracking_uri,
        on_switch=metrics.model_switched,
    )
    service = Service(
        settings,
        reloader,
        metrics,
        PredictionQueue(PREDICT_THREADS, settings.max_pending_predictions),
    )
    app = FastAPI(
        title="ml-cicd review classifier",
        version="1.0.0",
        description="Classifies reviews as great or other with an MLflow pyfunc model.",
        lifespan=_lifespan(service),
    )
    app.state.service = service
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)
    add_routes(app, service)
    routes = frozenset(getattr(route, "path", "") for route in app.routes)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics, routes=routes)  # outermost
    return app


def _lifespan(service: Service):  # noqa: ANN202 (FastAPI's lifespan type)
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.predictions.start()
        service.reload_pool = pool = ThreadPoolExecutor(1, thread_name_prefix="reload")
        loop = asyncio.get_running_loop()
        following: asyncio.Task[None] | None = None
        try:
            try:
                uri = await loop.run_in_executor(pool, served_model_uri, service.settings)
                await loop.run_in_executor(pool, service.reloader.start, uri)
            except MlCicdError as error:
                logger.error("the service cannot start: %s", error)
                raise
            if service.reloader.group.shared:
                following = asyncio.create_task(_follow(service, pool))
            yield
        finally:
            if following is not None:
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await following
            service.predictions.stop()
            pool.shutdown(wait=False, cancel_futures=True)
            service.reload_pool = None
            service.reloader.stop()
            service.metrics.worker_exited()
            logger.info("model released")

    return lifespan


async def _follow(service: Service, pool: ThreadPoolExecutor) -> None:
    """Act on every change of the workers' shared state (reloads.py), in the reload thread."""
    loop = asyncio.get_running_loop()
    group = service.reloader.group
    while True:
        await asyncio.sleep(POLL_S)
        if group.state_changed():
            try:
                await loop.run_in_executor(pool, service.reloader.follow)
            except Exception:  # keep following; the next change may work
                logger.exception("could not follow the workers' shared state")


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
        elif isinstance(value, list):  # pydantic-settings reads lists as JSON
            value = json.dumps([str(item) for item in value])
        variables[f"{ENV_PREFIX}{name.upper()}"] = None if value is None else str(value)
    if settings.tracking_uri:  # the registry is the tracking server, for MLflow's calls too
        variables["MLFLOW_TRACKING_URI"] = variables["MLFLOW_REGISTRY_URI"] = settings.tracking_uri
    return variables


def run_server(
    settings: ServiceSettings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1
) -> None:
    """Serve until SIGTERM / Ctrl-C (in-flight requests finish first). Checks the model URI
    first (ModelLoadError: one line) and trains the default model once when it is missing.

    The workers share a fresh folder under ``run_dir`` to switch models together (reloads.py);
    with ``workers > 1`` also Prometheus multi-process mode in another; both removed afterwards."""
    import uvicorn

    if workers < 1:
        raise ValueError("workers must be at least 1")
    if settings.model_uri:
        check_model_uri(settings.model_uri, settings.tracking_uri)
    else:
        served_model_uri(settings)  # train once here, not in every worker
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    workers_dir = Path(tempfile.mkdtemp(prefix="workers-", dir=settings.run_dir))
    settings = settings.model_copy(update={"workers_dir": workers_dir})
    for name, value in settings_environment(settings).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    metrics_dir: Path | None = None
    if workers > 1:
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
        for folder in (workers_dir, metrics_dir):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)


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
