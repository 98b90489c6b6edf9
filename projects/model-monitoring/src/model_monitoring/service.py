"""The monitored model service (FastAPI): the app factory wires the bundle, the metrics, the
request-path monitor, the middleware (middleware.py), the routes (api.py), with
instrumentation on, the drift job thread (drift_job.py) that one worker runs, and, serving a
registry model, the registry follower (one worker) and every worker's bundle watcher
(registry.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from model_monitoring.api import ServedBundle, add_routes
from model_monitoring.bundle import Bundle, bundle_identity, load_bundle
from model_monitoring.drift_job import DriftJobThread, drift_job_thread
from model_monitoring.errors import ModelMonitoringError
from model_monitoring.metrics import DriftMetrics, ServiceMetrics
from model_monitoring.middleware import RequestMetricsMiddleware, add_error_handlers
from model_monitoring.monitor import Monitor
from model_monitoring.settings import ProjectSettings


def create_app(settings: ProjectSettings | None = None) -> FastAPI:
    """The app for the bundle ``settings`` names (an app factory: ``uvicorn --factory``)."""
    settings = settings or ProjectSettings()
    identity = bundle_identity(settings.resolved_bundle_dir())  # before loading: see BundleWatcher
    bundle = load_bundle(settings.resolved_bundle_dir())
    # One thread per worker: scale with workers; OpenMP threads of several workers would fight.
    threadpool_limits(1)
    metrics = ServiceMetrics(
        bundle.feature_names, bundle.classes, [spec.name for spec in bundle.categorical]
    )
    _set_model_info(metrics, bundle)
    monitor = Monitor(bundle, settings, metrics)
    served = ServedBundle(bundle)
    threads: list[Any] = []
    if settings.instrumentation:
        threads.append(drift_job_thread(settings, DriftMetrics(metrics.registry)))
    if settings.registered_model:
        threads += _registry_threads(settings, served, monitor, metrics, identity)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for thread in threads:
            thread.start()
        yield
        for thread in threads:
            thread.stop()
        monitor.close()

    app = FastAPI(
        title="model-monitoring",
        version=bundle.version,
        summary="A monitored binary classifier: predictions, delayed labels, drift metrics",
        lifespan=lifespan,
    )
    app.state.drift_thread = next((t for t in threads if isinstance(t, DriftJobThread)), None)
    app.state.served = served
    add_error_handlers(app, metrics)
    app.add_middleware(
        RequestMetricsMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        enabled=settings.instrumentation,
    )
    add_routes(app, served, settings, metrics, monitor)
    return app


def _registry_threads(
    settings: ProjectSettings,
    served: ServedBundle,
    monitor: Monitor,
    metrics: ServiceMetrics,
    identity: str | None,
) -> list[Any]:
    """The follower (it polls only in the worker that holds its lock) and this worker's
    watcher, which switches to each new bundle of the same schema."""
    from model_monitoring.registry import BundleWatcher, RegistryFollower

    def switch(new: Bundle) -> None:
        old = served.bundle
        if _schema(new) != _schema(old):
            raise ModelMonitoringError(
                f"bundle {new.version} has another schema than the served {old.version}"
            )
        served.bundle = new
        served.stale = False
        monitor.use(new)
        _set_model_info(metrics, new, replaced=old)

    def switch_failed() -> None:
        served.stale = True
        metrics.bundle_switch_failures.inc()

    return [
        RegistryFollower(settings, metrics.registry_poll_failures.inc),
        BundleWatcher(settings, switch, switch_failed, identity),
    ]


def _schema(bundle: Bundle) -> tuple[Any, ...]:
    specs = tuple((spec.name, spec.type, tuple(spec.categories or ())) for spec in bundle.features)
    return specs, tuple(bundle.classes)


def _model_info_labels(bundle: Bundle) -> tuple[str, ...]:
    source = bundle.source or {}
    return (
        bundle.version,
        bundle.trained_at,
        str(bundle.reference_window.get("rows", "")),
        bundle.rebaselined_at or "",
        source.get("registered_model", ""),
        source.get("version", ""),
    )


def _set_model_info(
    metrics: ServiceMetrics, bundle: Bundle, replaced: Bundle | None = None
) -> None:
    if replaced is not None:
        metrics.model_info.labels(*_model_info_labels(replaced)).set(0)
    metrics.model_info.labels(*_model_info_labels(bundle)).set(1)
