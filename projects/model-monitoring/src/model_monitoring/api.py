"""The service's routes and their request models, built from the bundle's schema.

    POST /predict        {"rows": [{feature: value | null, ...}]} -> prediction ids, classes
    POST /labels         {"labels": [{"id": ..., "label": ...}]}  (delayed ground truth; X-API-Key)
    GET  /model          the bundle: version, schema, reference window, registry version
    GET  /health/live    the process answers
    GET  /health/ready   a model is loaded and the prediction log is writable
    GET  /metrics        Prometheus (every worker's values in multi-process mode)

Input is strict: a missing feature, an unknown field, a string or boolean for a number (a number
for a category), NaN or infinity, or a batch over the limit get a 4xx with a message. JSON null is
a missing value; a category the model never saw is served (as missing) and counted.
"""

# No `from __future__ import annotations`: FastAPI reads the request models built in add_routes
# from the endpoint annotations at run time.
import hmac
import os
import uuid
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictInt,
    StrictStr,
    create_model,
)

from model_monitoring.bundle import Bundle, FeatureSpec, model_input
from model_monitoring.metrics import ServiceMetrics
from model_monitoring.monitor import Monitor
from model_monitoring.settings import ENV_PREFIX, ProjectSettings

API_KEY_HEADER = "X-API-Key"
MAX_CATEGORY_CHARS = 200


def _whole_number(value: float | None) -> float | None:
    if value is not None and not float(value).is_integer():
        raise ValueError("must be a whole number (an integer feature)")
    return value


def _field_type(spec: FeatureSpec) -> Any:
    if spec.categorical:
        return Annotated[StrictStr | None, Field(max_length=MAX_CATEGORY_CHARS)]
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


class ServedBundle:
    """The bundle a worker serves: a switch (a new registry version) replaces it whole, one
    attribute write, and a request reads it once, so no reply mixes two models. A new bundle
    must have the same schema (the request models are built from it once)."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        # True while the bundle folder holds another bundle this worker could not switch to.
        self.stale = False


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


def labels_key_check(key: SecretStr | None, metrics: ServiceMetrics) -> Any:
    """The dependency that guards POST /labels: 503 when no key is configured, 401 unless the
    request's X-API-Key equals it (compared in constant time)."""
    expected = key.get_secret_value().encode() if key else b""
    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)

    async def check(given: Annotated[str | None, Depends(header)]) -> None:
        if not expected:
            raise HTTPException(
                503,
                "POST /labels is disabled: no API key is configured "
                f"(set {ENV_PREFIX}LABELS_API_KEY)",
            )
        if given is None or not hmac.compare_digest(given.encode(), expected):
            metrics.client_errors.labels("/labels", "unauthorized").inc()
            raise HTTPException(
                401,
                f"missing or wrong API key (send it in the {API_KEY_HEADER} header)",
                headers={"WWW-Authenticate": "ApiKey"},
            )

    return check


def add_routes(
    app: FastAPI,
    served: ServedBundle,
    settings: ProjectSettings,
    metrics: ServiceMetrics,
    monitor: Monitor,
) -> None:
    bundle = served.bundle  # the schema; every request reads the served bundle afresh
    predict_model, labels_model = request_models(bundle, settings.max_batch, settings.max_labels)
    numeric = [spec.name for spec in bundle.numeric]
    categorical = [spec.name for spec in bundle.categorical]
    classes = bundle.classes
    require_key = labels_key_check(settings.labels_api_key, metrics)

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={400: {"description": "invalid JSON"}, 413: {"description": "body too large"},
                   422: {"description": "the rows do not match the feature schema"}},
    )  # fmt: skip
    async def predict(body: predict_model) -> PredictResponse:  # type: ignore[valid-type]
        rows = body.rows  # type: ignore[attr-defined]
        bundle = served.bundle
        x = np.array([[getattr(row, name) for name in numeric] for row in rows], dtype=float)
        columns = [[getattr(row, name) for row in rows] for name in categorical]
        probability = bundle.pipeline.predict_proba(
            model_input(x, np.array(columns, dtype=object).T if columns else None)
        )[:, 1]
        predicted = (probability >= 0.5).astype(np.int64)
        confidence = np.where(predicted == 1, probability, 1 - probability)
        batch = uuid.uuid4().hex
        ids = [f"{batch}-{index}" for index in range(len(rows))]
        monitor.observe_batch(bundle.version, ids, x, columns, predicted, confidence)
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
        dependencies=[Depends(require_key)],
        responses={401: {"description": "missing or wrong API key"},
                   422: {"description": "unknown class or malformed labels"},
                   503: {"description": "no API key configured: labels are disabled"}},
    )  # fmt: skip
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
        bundle = served.bundle
        return {
            "version": bundle.version,
            "trained_at": bundle.trained_at,
            "target": bundle.target,
            "classes": classes,
            "features": [vars(spec) for spec in bundle.features],
            "reference_window": bundle.reference_window,
            "rebaselined_at": bundle.rebaselined_at,
            # The registry version served (registered_model, version, alias, run_id), or null.
            "registry": bundle.source,
        }

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/health/ready", responses={503: {"description": "not ready"}})
    async def ready() -> JSONResponse:
        log_dir = settings.resolved_log_dir()
        if settings.instrumentation and not os.access(log_dir, os.W_OK):
            return JSONResponse({"status": f"prediction log {log_dir} not writable"}, 503)
        if served.stale:
            return JSONResponse(
                {"status": f"serving {served.bundle.version}, but the bundle folder holds "
                 "another that this worker could not switch to (see its log)"},
                503,
            )  # fmt: skip
        return JSONResponse({"status": "ready", "model_version": served.bundle.version})

    @app.get("/metrics", response_class=Response)
    async def prometheus_metrics(request: Request) -> Response:
        content, content_type = metrics.exposition(request.headers.get("accept"))
        return Response(content, media_type=content_type)
