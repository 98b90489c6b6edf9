"""The monitored model service (FastAPI): the app factory wires the bundle, the metrics, the
request-path monitor, the middleware (middleware.py), the routes (api.py) and, with
instrumentation on, the drift job thread (drift_job.py) that one worker runs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from model_monitoring.api import add_routes
from model_monitoring.bundle import Bundle, load_bundle
from model_monitoring.drift_job import DriftJobThread, drift_job_thread
from model_monitoring.metrics import DriftMetrics, ServiceMetrics
from model_monitoring.middleware import RequestMetricsMiddleware, add_error_handlers
from model_monitoring.monitor import Monitor
from model_monitoring.settings import ProjectSettings


def create_app(settings: ProjectSettings | None = None) -> FastAPI:
    """The app for the bundle ``settings`` names (an app factory: ``uvicorn --factory``)."""
    settings = settings or ProjectSettings()
    bundle = load_bundle(settings.resolved_bundle_dir())
    # One thread per worker: scale with workers; OpenMP threads of several workers would fight.
    threadpool_limits(1)
    metrics = ServiceMetrics(
        bundle.feature_names, bundle.classes, [spec.name for spec in bundle.categorical]
    )
    _set_model_info(metrics, bundle)
    monitor = Monitor(bundle, settings, metrics)
    drift_thread: DriftJobThread | None = None
    if settings.instrumentation:
        drift_thread = drift_job_thread(settings, DriftMetrics(metrics.registry))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if drift_thread is not None:
            drift_thread.start()
        yield
        if drift_thread is not None:
            drift_thread.stop()
        monitor.close()

    app = FastAPI(
        title="model-monitoring",
        version=bundle.version,
        summary="A monitored binary classifier: predictions, delayed labels, drift metrics",
        lifespan=lifespan,
    )
    app.state.drift_thread = drift_thread
    app.state.bundle = bundle
    add_error_handlers(app, metrics)
    app.add_middleware(
        RequestMetricsMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        enabled=settings.instrumentation,
    )
    add_routes(app, bundle, settings, metrics, monitor)
    return app


def _set_model_info(metrics: ServiceMetrics, bundle: Bundle) -> None:
    metrics.model_info.labels(
        bundle.version,
        bundle.trained_at,
        str(bundle.reference_window.get("rows", "")),
        bundle.rebaselined_at or "",
    ).set(1)
