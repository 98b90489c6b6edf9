"""The API's request and response models, as the OpenAPI schema documents them.

No ``from __future__ import annotations`` here: pydantic and FastAPI read these annotations at
runtime, and ``predict_request`` builds its model from the settings' limits.
"""

from typing import Annotated, Any, Literal, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

MAX_URI_CHARS = 2048
Model = TypeVar("Model", bound=BaseModel)


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
    generation: int = Field(
        description="the service's model generation: 0 at start, +1 with every reload that "
        "switched all workers"
    )


class WorkerModel(BaseModel):
    """What one uvicorn worker of the service serves, from its own report."""

    pid: int
    generation: int
    name: str
    version: str | None
    uri: str
    loaded_at: str


class ServingInfo(ModelInfo):
    worker_pid: int = Field(description="the worker that answered")
    workers: list[WorkerModel] = Field(description="every live worker of this service")


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
        Field(default=None, description="models:/<name>@<alias> or models:/<name>/<version> "
              "(a folder only under ML_CICD_RELOAD_FOLDERS); null reloads the URI being served "
              "(an alias may have moved)")
    )  # fmt: skip


class ReloadResponse(BaseModel):
    switched: bool
    reason: str | None = Field(default=None, description="why the model did not switch")
    detail: str | None = Field(default=None, description="the reason, for errors")
    model: ModelInfo | None = Field(description="the model serving after the reload")
    workers: list[WorkerModel] = Field(
        default_factory=list, description="what every worker serves after the reload"
    )


class TextsRequest(BaseModel):
    texts: list[str]


def predict_request(max_batch: int, max_text_chars: int) -> type[TextsRequest]:
    """The /predict body: 1 to ``max_batch`` texts of 1 to ``max_text_chars`` characters."""

    class PredictRequest(TextsRequest):
        model_config = ConfigDict(extra="forbid", strict=True)

        texts: Annotated[
            list[Annotated[str, StringConstraints(min_length=1, max_length=max_text_chars)]],
            Field(
                min_length=1,
                max_length=max_batch,
                description=f"1 to {max_batch} reviews, each 1 to {max_text_chars} characters",
            ),
        ]

    return PredictRequest


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI requestBody of a route that parses ``model`` itself (``parse_body``)."""
    return {
        "required": True,
        "content": {"application/json": {"schema": model.model_json_schema()}},
    }


def parse_body(model: type[Model], body: bytes, request: Request) -> Model:
    """``body`` parsed and validated as ``model`` in one pass (pydantic's JSON parser), with
    FastAPI's rules for a body parameter: JSON unless a Content-Type other than
    ``application/json`` or ``application/*+json`` is declared; errors as RequestValidationError
    with locations under "body" (empty: missing; invalid JSON: ``json_invalid``)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    maintype, _, subtype = media_type.partition("/")
    problems: list[dict[str, Any]]
    if not body:
        problems = [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
    elif media_type and not (maintype == "application" and
                             (subtype == "json" or subtype.endswith("+json"))):  # fmt: skip
        problems = [{"type": "content_type", "loc": ("body",),
                     "msg": "the body must be sent as Content-Type: application/json",
                     "input": media_type}]  # fmt: skip
    else:
        try:
            return model.model_validate_json(body)
        except ValidationError as invalid:
            problems = [
                {**e, "loc": ("body", *e["loc"])} for e in invalid.errors(include_url=False)
            ]
    raise RequestValidationError(problems)


def error(description: str, model: type[BaseModel] | Any = ErrorResponse) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry."""
    return {"description": description, "model": model}
