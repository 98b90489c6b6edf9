"""Error replies: every error is JSON ``{"detail": "<one line>"}``; invalid JSON is a 400, a
schema violation a 422 that lists the fields (at most ``MAX_LISTED_ERRORS``), anything
unexpected a 500 with the exception's type only (the traceback goes to the log)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

logger = logging.getLogger(__name__)

# Validation errors listed in a reply (a batch of 256 bad texts would otherwise list 256).
MAX_LISTED_ERRORS = 20


def _where(loc: Sequence[Any]) -> str:
    parts = [str(part) for part in loc if part != "body"]
    return ".".join(parts) or "body"


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = str(error.get("msg", "malformed JSON")).removeprefix("Invalid JSON: ")
            return JSONResponse({"detail": f"invalid JSON body: {reason}"}, status_code=400)
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


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, status_code=500)
