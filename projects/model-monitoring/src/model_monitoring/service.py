"""The monitored model service (FastAPI).

    POST /predict        {"rows": [{feature: number | null, ...}]} -> prediction ids, classes
    POST /labels         {"labels": [{"id": ..., "label": ...}]}  (delayed ground truth)
    GET  /model          the bundle: version, schema, reference window
    GET  /health/live    the process answers
    GET  /health/ready   a model is loaded and the prediction log is writable
    GET  /metrics        Prometheus (every worker's values in multi-process mode)

Input is strict: a missing feature, an unknown field, a string or boolean for a number, NaN or
infinity, or a batch over the limit get a 4xx with a message, counted by reason in
``model_client_errors_total``. JSON null is a missing value (the pipeline imputes it), counted in
``model_feature_missing_total``. The drift job runs in a background thread of one worker.
"""

# No `from __future__ import annotations`: FastAPI reads the request models built in create_app
# from the endpoint annotations at run time.
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    create_model,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from model_monitoring.bundle import Bundle, FeatureSpec, load_bundle
from model_monitoring.drift_job import DriftJob, DriftJobThread
from model_monitoring.metrics import (
    DriftMetrics,
    ServiceMetrics,
    observe_many,
    observe_summary_many,
)
from model_monitoring.predlog import LABELS, PREDICTIONS, RotatingJsonLines
from model_monitoring.settings import ProjectSettings

logger = logging.getLogger(__name__)
ENDPOINTS = frozenset(
    {"/predict", "/labels", "/model", "/health/live", "/health/ready", "/metrics"}
)
# pydantic error types -> the reason label of model_client_errors_total
ERROR_REASONS = {
    "missing": "missing_feature",
    "extra_forbidden": "unknown_field",
    "finite_number": "not_finite",
    "too_long": "oversize_batch",
    "too_short": "empty_batch",
    "json_invalid": "invalid_json",
    "value_error": "invalid_value",
}
TYPE_ERRORS = ("_type", "_parsing")
MAX_LISTED_ERRORS = 20


def _whole_number(value: float | None) -> float | None:
    if value is not None and not float(value).is_integer():
        raise ValueError("must be a whole number (an integer feature)")
    return value


def _field_type(spec: FeatureSpec) -> Any:
    number = Annotated[float | None, Field(strict=True, allow_inf_nan=False)]
    if spec.type == "int":
        return Annotated[number, AfterValidator(_whole_number)]
    return number


def request_models(bundle: Bundle, max_batch: int, max_labels: int) -> tuple[type, type]:
    """Pydantic models of the predict and labels bodies, built from the bundle's schema."""
    strict = ConfigDict(extra="forbid", strict=True)
    row_fields: dict[str, Any] = {spec.name: (_field_type(spec), ...) for spec in bundle.features}
    row = create_model("Row", __config__=strict, **row_fields)
    predict = create_model(
        "PredictRequest",
        __config__=strict,
        rows=(list[row], Field(min_length=1, max_length=max_batch)),  # type: ignore[valid-type]
    )

    class Label(BaseModel):
        model_config = strict
        id: StrictStr
        label: StrictInt | StrictStr = Field(description=f"a class: {bundle.classes} or 0/1")

    labels = create_model(
        "LabelsRequest",
        __config__=strict,
        labels=(list[Label], Field(min_length=1, max_length=max_labels)),
    )
    return predict, labels


class Prediction(BaseModel):
    id: str
    predicted_class: str
    probability: float = Field(description="probability of the positive class")
    confidence: float = Field(description="probability of the predicted class")


class PredictResponse(BaseModel):
    model_version: str
    predictions: list[Prediction]


class LabelsResponse(BaseModel):
    accepted: int


class Monitor:
    """Everything instrumentation does on the request path, aggregated per batch."""

    def __init__(self, bundle: Bundle, settings: ProjectSettings, metrics: ServiceMetrics) -> None:
        self.enabled = settings.instrumentation
        self.metrics = metrics
        self.bundle = bundle
        self.low = np.array([spec.min for spec in bundle.features])
        self.high = np.array([spec.max for spec in bundle.features])
        features = bundle.feature_names
        self.missing = [metrics.missing.labels(name) for name in features]
        self.out_of_range = [metrics.out_of_range.labels(name) for name in features]
        self.values = [metrics.feature_value.labels(name) for name in features]
        self.predicted = metrics.predicted
        log_dir = settings.resolved_log_dir()
        self.predictions_log = RotatingJsonLines(
            log_dir, PREDICTIONS, settings.log_max_bytes, settings.log_backups
        )
        self.labels_log = RotatingJsonLines(
            log_dir, LABELS, settings.log_max_bytes, settings.log_backups
        )

    def observe_batch(
        self, ids: list[str], x: np.ndarray, predicted: np.ndarray, confidence: np.ndarray
    ) -> None:
        if not self.enabled:
            return
        rows = len(ids)
        missing = np.isnan(x)
        missing_counts = missing.sum(axis=0)
        outside = ((x < self.low) | (x > self.high)).sum(axis=0)  # NaN compares False
        sums = np.nansum(x, axis=0)
        for index in range(x.shape[1]):
            if missing_counts[index]:
                self.missing[index].inc(int(missing_counts[index]))
            if outside[index]:
                self.out_of_range[index].inc(int(outside[index]))
            observe_summary_many(
                self.values[index], rows - int(missing_counts[index]), float(sums[index])
            )
        positives = int(predicted.sum())
        if positives:
            self.predicted[1].inc(positives)
        if rows - positives:
            self.predicted[0].inc(rows - positives)
        observe_many(self.metrics.confidence, confidence)
        self.metrics.batch_rows.observe(rows)
        self.metrics.input_rows.inc(rows)
        inputs = dict(zip(self.bundle.feature_names, x.T.tolist(), strict=True))  # NaN -> null
        self.predictions_log.write(
            {
                "ts": time.time(),
                "model_version": self.bundle.version,
                "ids": ids,
                "inputs": inputs,
                "prediction": predicted.tolist(),
                "confidence": np.round(confidence, 6).tolist(),
            }
        )

    def observe_labels(self, ids: list[str], labels: list[int]) -> None:
        if not self.enabled:
            return
        self.metrics.labels_received.inc(len(ids))
        self.labels_log.write({"ts": time.time(), "ids": ids, "labels": labels})

    def close(self) -> None:
        self.predictions_log.close()
        self.labels_log.close()


class RequestMetricsMiddleware:
    """Counts and times every request by endpoint and status; unknown paths share the endpoint
    label "unmatched" (no label per random path). Body size limit: 413 before reading."""

    def __init__(
        self, app: ASGIApp, metrics: ServiceMetrics, max_body_bytes: int, enabled: bool
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = scope["path"] if scope["path"] in ENDPOINTS else "unmatched"
        status = 500  # unless a response starts
        started = time.perf_counter()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                self.metrics.client_errors.labels(endpoint, "body_too_large").inc()
                response = JSONResponse(
                    {"detail": f"request body larger than {self.max_body_bytes} bytes"}, 413
                )
                await response(scope, receive, send_and_record)
            else:
                await self.app(scope, receive, send_and_record)
        finally:
            if self.enabled:
                self.metrics.requests.labels(endpoint, str(status)).inc()
                self.metrics.latency.labels(endpoint, str(status)).observe(
                    time.perf_counter() - started
                )


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


def create_app(settings: ProjectSettings | None = None) -> FastAPI:
    """The app for the bundle ``settings`` names (an app factory: ``uvicorn --factory``)."""
    settings = settings or ProjectSettings()
    bundle_dir = settings.resolved_bundle_dir()
    bundle = load_bundle(bundle_dir)
    # One thread per worker: scale with workers; OpenMP threads of several workers would fight.
    threadpool_limits(1)
    metrics = ServiceMetrics(bundle.feature_names, bundle.classes)
    monitor = Monitor(bundle, settings, metrics)
    drift_thread: DriftJobThread | None = None
    if settings.instrumentation:
        job = DriftJob(
            bundle_dir,
            settings.resolved_log_dir(),
            DriftMetrics(metrics.registry),
            window_rows=settings.drift_window_rows,
            min_rows=settings.drift_min_rows,
            labelled_window_rows=settings.labelled_window_rows,
            labelled_min_rows=settings.labelled_min_rows,
            pending_label_rows=settings.pending_label_rows,
        )
        drift_thread = DriftJobThread(job, settings.resolved_log_dir(), settings.drift_interval_s)
    metrics.model_info.labels(
        bundle.version,
        bundle.trained_at,
        str(bundle.reference_window.get("rows", "")),
        bundle.rebaselined_at or "",
    ).set(1)
    predict_model, labels_model = request_models(bundle, settings.max_batch, settings.max_labels)
    features = bundle.feature_names
    classes = bundle.classes

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

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        endpoint = request.url.path if request.url.path in ENDPOINTS else "unmatched"
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
    app.add_middleware(
        RequestMetricsMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        enabled=settings.instrumentation,
    )

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={400: {"description": "invalid JSON"}, 413: {"description": "body too large"},
                   422: {"description": "the rows do not match the feature schema"}},
    )  # fmt: skip
    async def predict(body: predict_model) -> PredictResponse:  # type: ignore[valid-type]
        rows = body.rows  # type: ignore[attr-defined]
        x = np.array([[getattr(row, name) for name in features] for row in rows], dtype=float)
        probability = bundle.pipeline.predict_proba(x)[:, 1]
        predicted = (probability >= 0.5).astype(np.int64)
        confidence = np.where(predicted == 1, probability, 1 - probability)
        batch = uuid.uuid4().hex
        ids = [f"{batch}-{index}" for index in range(len(rows))]
        monitor.observe_batch(ids, x, predicted, confidence)
        return PredictResponse(
            model_version=bundle.version,
            predictions=[
                Prediction(
                    id=pred_id,
                    predicted_class=classes[label],
                    probability=round(float(p), 6),
                    confidence=round(float(c), 6),
                )
                for pred_id, label, p, c in zip(
                    ids, predicted.tolist(), probability, confidence, strict=True
                )
            ],
        )

    @app.post(
        "/labels",
        response_model=LabelsResponse,
        status_code=202,
        responses={422: {"description": "unknown class or malformed labels"}},
    )
    async def labels(body: labels_model) -> LabelsResponse:  # type: ignore[valid-type]
        ids, values = [], []
        for item in body.labels:  # type: ignore[attr-defined]
            if isinstance(item.label, int) and item.label in (0, 1):
                value = item.label
            elif isinstance(item.label, str) and item.label in classes:
                value = classes.index(item.label)
            else:
                metrics.client_errors.labels("/labels", "invalid_label").inc()
                raise HTTPException(
                    422, f"label {item.label!r} of {item.id!r} is not one of {classes} or 0/1"
                )
            ids.append(item.id)
            values.append(value)
        monitor.observe_labels(ids, values)
        return LabelsResponse(accepted=len(ids))

    @app.get("/model")
    async def model() -> dict[str, Any]:
        return {
            "version": bundle.version,
            "trained_at": bundle.trained_at,
            "target": bundle.target,
            "classes": classes,
            "features": [vars(spec) for spec in bundle.features],
            "reference_window": bundle.reference_window,
            "rebaselined_at": bundle.rebaselined_at,
        }

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/health/ready", responses={503: {"description": "not ready"}})
    async def ready() -> JSONResponse:
        log_dir = settings.resolved_log_dir()
        if settings.instrumentation and not os.access(log_dir, os.W_OK):
            return JSONResponse({"status": f"prediction log {log_dir} not writable"}, 503)
        return JSONResponse({"status": "ready", "model_version": bundle.version})

    @app.get("/metrics", response_class=Response)
    async def prometheus_metrics(request: Request) -> Response:
        content, content_type = metrics.exposition(request.headers.get("accept"))
        return Response(content, media_type=content_type)

    return app
