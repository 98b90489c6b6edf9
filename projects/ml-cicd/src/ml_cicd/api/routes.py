"""The routes: predict, model info, health, metrics and the admin reload, each documenting its
error statuses in the OpenAPI schema.

No ``from __future__ import annotations`` here: FastAPI reads the request models (built from the
settings' limits) from the handlers' annotations at runtime.
"""

import asyncio
import json
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

from ml_cicd.api.metrics import ServiceMetrics
from ml_cicd.api.predict_queue import NotRunning, PredictionQueue, QueueFull
from ml_cicd.api.schema import (
    LiveResponse,
    ModelInfo,
    PredictResponse,
    ReadyResponse,
    ReloadRequest,
    ReloadResponse,
    ServingInfo,
    ValidationErrorResponse,
    WorkerModel,
    error,
    json_body,
    parse_body,
    predict_request,
)
from ml_cicd.errors import ModelLoadError
from ml_cicd.model import predict_labels
from ml_cicd.reloads import Reloader, ReloadResult
from ml_cicd.serving import LoadedModel, configured_model_uri, reload_source_problem
from ml_cicd.settings import ServiceSettings

API_KEY_HEADER = "X-API-Key"
NO_MODEL = "no model loaded yet"
NOT_RUNNING = "the service is not running (starting or shutting down)"
# Seconds a shed request is asked to wait: a prediction takes milliseconds, so the queue of
# one worker drains well within it.
RETRY_AFTER_S = 1


@dataclass
class Service:
    """What the routes share; the lifespan (service.py) starts and stops the thread pools."""

    settings: ServiceSettings
    reloader: Reloader
    metrics: ServiceMetrics
    predictions: PredictionQueue
    reload_pool: ThreadPoolExecutor | None = field(default=None)

    @property
    def model(self) -> LoadedModel | None:
        return self.reloader.holder.current


def add_routes(app: FastAPI, service: Service) -> None:
    _add_predict(app, service)
    _add_model_info(app, service)
    _add_metrics(app, service)
    _add_reload(app, service)


def _body_errors(settings: ServiceSettings) -> dict[int | str, dict[str, Any]]:
    return {
        400: error("the body is not valid JSON"),
        413: error(f"the body is larger than {settings.max_body_bytes} bytes"),
        422: error("the body does not match the schema", ValidationErrorResponse),
    }


def _add_predict(app: FastAPI, service: Service) -> None:
    settings, metrics = service.settings, service.metrics
    request_model = predict_request(settings.max_batch, settings.max_text_chars)
    timeout_s = settings.predict_timeout_s
    shed_headers = {"Retry-After": str(RETRY_AFTER_S)}

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={
            **_body_errors(settings),
            503: {
                **error(
                    "no model loaded yet, or the prediction queue is full (then at once, with "
                    "Retry-After: try again, or another replica)"
                ),
                "headers": {
                    "Retry-After": {"description": "seconds", "schema": {"type": "string"}}
                },
            },
            504: error(f"the prediction took longer than {timeout_s:g} s"),
        },
        openapi_extra={"requestBody": json_body(request_model)},
        summary="Classify a batch of reviews",
    )
    async def predict(request: Request) -> Response:
        # The body is parsed and validated in one pass by pydantic (``parse_body``) and the reply
        # written as JSON directly: the same checks and errors as FastAPI's body parameter and
        # response model, at a fraction of their CPU per request.
        texts = parse_body(request_model, await request.body(), request).texts
        model = service.model  # this request uses this model to the end, whatever reloads do
        if model is None:
            raise HTTPException(503, NO_MODEL)
        try:
            p_great = await service.predictions.run(timeout_s, model.p_great, texts)
        except QueueFull:
            metrics.shed.inc()
            raise HTTPException(
                503,
                f"busy: {service.predictions.capacity} predictions already waiting or running; "
                f"retry after {RETRY_AFTER_S} s",
                headers=shed_headers,
            ) from None
        except NotRunning:
            raise HTTPException(503, NOT_RUNNING) from None
        except TimeoutError:
            raise HTTPException(504, f"the prediction took longer than {timeout_s:g} s") from None
        values = np.asarray(p_great, dtype=float)
        if values.shape != (len(texts),) or not np.all((values >= 0) & (values <= 1)):
            raise HTTPException(500, "the model returned no valid probability for each text")
        labels = predict_labels(values)
        metrics.observe_predictions(labels, values)
        reply = {
            "predictions": [
                {"label": label, "p_great": p}
                for label, p in zip(labels, values.tolist(), strict=True)
            ],
            "model": model.reference(),
        }
        return Response(json.dumps(reply), media_type="application/json")


def _info(model: LoadedModel | None) -> ModelInfo | None:
    return ModelInfo.model_validate(model.info()) if model is not None else None


def _workers(service: Service) -> list[WorkerModel]:
    """Every live worker's report (a few small files: read in the event loop)."""
    return [WorkerModel.model_validate(report) for report in service.reloader.workers()]


def _add_model_info(app: FastAPI, service: Service) -> None:
    @app.get(
        "/model",
        response_model=ServingInfo,
        responses={503: error(NO_MODEL)},
        summary="The serving model, and what every worker of the service serves",
    )
    async def model_info() -> ServingInfo:
        model = service.model
        if model is None:
            raise HTTPException(503, NO_MODEL)
        return ServingInfo.model_validate(
            {**model.info(), "worker_pid": service.reloader.group.pid, "workers": _workers(service)}
        )

    @app.get("/health/live", response_model=LiveResponse, summary="Liveness")
    async def live() -> LiveResponse:
        return LiveResponse(status="alive")

    @app.get(
        "/health/ready",
        response_model=ReadyResponse,
        responses={503: error(NO_MODEL)},
        summary="Readiness: a model is loaded",
    )
    async def ready() -> ReadyResponse:
        info = _info(service.model)
        if info is None:
            raise HTTPException(503, NO_MODEL)
        return ReadyResponse(status="ready", model=info)


def _add_metrics(app: FastAPI, service: Service) -> None:
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
        content, content_type = service.metrics.exposition(request.headers.get("accept"))
        return Response(content, media_type=content_type)


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


def _add_reload(app: FastAPI, service: Service) -> None:
    settings, metrics, reloader = service.settings, service.metrics, service.reloader
    timeout_s = settings.reload_timeout_s

    def reply(result: ReloadResult) -> JSONResponse:
        body = ReloadResponse(
            switched=result.switched,
            reason=result.reason,
            detail=result.reason if not result.switched else None,
            model=_info(result.model),
            workers=_workers(service),
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=result.status)

    @app.post(
        "/admin/reload",
        response_model=ReloadResponse,
        dependencies=[Depends(_admin_guard(settings.api_key))],
        responses={
            400: _body_errors(settings)[400],
            401: error(f"missing or wrong {API_KEY_HEADER}"),
            409: error("another reload is running; the model did not switch", ReloadResponse),
            413: _body_errors(settings)[413],
            422: error(
                "the body does not match the schema, the URI is not one a reload may load "
                "(models:/ only, or a folder under ML_CICD_RELOAD_FOLDERS), or the new model "
                "failed to load or its smoke prediction in some worker (every worker keeps the "
                "old model)",
                ValidationErrorResponse | ReloadResponse,
            ),
            503: error("admin endpoints are disabled: no API key configured"),
            504: error(
                f"the reload took longer than {timeout_s:g} s; unless the reply says the switch "
                "is committed, every worker keeps the old model",
                ReloadResponse,
            ),
        },
        summary="Load a model in every worker beside the serving one; switch all when all work",
    )
    async def reload(body: ReloadRequest | None = None) -> Any:
        current = service.model
        uri = (body.model_uri if body is not None else None) or (
            current.uri if current is not None else configured_model_uri(settings)
        )
        try:
            refused = reload_source_problem(uri, settings)
        except ModelLoadError as problem:
            refused = str(problem)
        if refused is not None:
            metrics.reloads.labels("failed").inc()
            return reply(ReloadResult(422, refused, current))
        ticket = reloader.begin(uri, timeout_s)
        if ticket is None:
            metrics.reloads.labels("busy").inc()
            return reply(ReloadResult(409, "another reload is running; try again later", current))
        if service.reload_pool is None:
            reloader.group.unlock()
            raise HTTPException(503, NOT_RUNNING)
        waiting = asyncio.wrap_future(service.reload_pool.submit(reloader.lead, ticket))
        try:
            # shield: a timeout must not cancel the reload, which releases the reload lock.
            result = await asyncio.wait_for(asyncio.shield(waiting), timeout_s)
        except TimeoutError:
            if not reloader.abandon(ticket):
                metrics.reloads.labels("timeout").inc()
                reason = (
                    f"loading {uri} took longer than {timeout_s:g} s; the old model keeps serving"
                )
                return reply(ReloadResult(504, reason, service.model))
            result = await waiting  # it committed just before the deadline
        outcome = {200: "switched", 504: "timeout"}.get(result.status, "failed")
        metrics.reloads.labels(outcome).inc()
        return reply(result)
