"""Fuzzing the service from its own OpenAPI schema (schemathesis, in process through ASGI): valid
and invalid bodies, headers and methods for every operation; every reply must be documented
(status, content type, body schema) and none may be a 5xx.

The admin key is a random secret that schemathesis cannot know: /admin/reload is fuzzed for its
auth and validation answers and never loads a model from a generated URI. The last test checks
that at least MIN_REQUESTS requests went out in all."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from ml_cicd.service import create_app
from ml_cicd.settings import ServiceSettings
from pydantic import SecretStr

pytestmark = pytest.mark.slow

MIN_REQUESTS = 500
# Generated examples per operation in the fuzzing phase; the examples and coverage phases add
# their own cases. The GET operations take no input: few distinct requests exist for them.
MAX_EXAMPLES = 250
REQUESTS_SENT: Counter[str] = Counter()

# Built at import: schemathesis parametrizes from a schema it has at collection time (its lazy
# fixture-based loader fails under pytest 9). No model URI: the lifespan trains the embedded
# default model into run_dir, as a first start does.
# Named here, made by the first start (nothing to clean up when the module is only collected).
RUN_DIR = Path(tempfile.gettempdir()) / f"ml-cicd-fuzz-{os.getpid()}-{secrets.token_hex(4)}"
# Hypothesis keeps caches in ./.hypothesis unless told otherwise: not in the working folder.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(RUN_DIR / "hypothesis"))
SETTINGS = ServiceSettings(
    model_uri=None,
    run_dir=RUN_DIR,
    api_key=SecretStr(secrets.token_urlsafe(24)),
    max_batch=16,
    max_text_chars=500,
    max_body_bytes=64 * 1024,
)
APP = create_app(SETTINGS)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
# Reproducible in CI, and no example database written into the working folder.
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")


@pytest.fixture(scope="module", autouse=True)
def _serving() -> Iterator[None]:
    try:
        with TestClient(APP):  # runs the lifespan: the model loads, and is released afterwards
            yield
    finally:
        shutil.rmtree(RUN_DIR, ignore_errors=True)


@schema.parametrize()
def test_every_reply_is_documented_and_never_a_server_error(case: Any) -> None:
    REQUESTS_SENT[f"{case.method} {case.path}"] += 1
    response = case.call_and_validate()
    assert response.status_code < 500, response.text


def test_fuzzing_sent_enough_requests() -> None:
    assert sum(REQUESTS_SENT.values()) >= MIN_REQUESTS, dict(REQUESTS_SENT)
    assert {"POST /predict", "POST /admin/reload", "GET /model"} <= set(REQUESTS_SENT)
    # The default model was trained on the first start.
    assert (RUN_DIR / "model" / "MLmodel").is_file()
