"""One HTTP download, checked before anything downstream reads it: the status, the content type,
the declared length (refused at once when over the size cap) and a SHA-256 header; then the body
is streamed to a local file with the size cap enforced as it arrives and one deadline over the
whole body; last, its length and SHA-256 against the headers. Worth a retry (TransientError):
HTTP 5xx and 429, timeouts, resets, a truncated or damaged body, a missed deadline. Not
(PermanentError): any other status, a wrong content type, no checksum, a body over the cap."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_pipelines.errors import PermanentError, TransientError

if TYPE_CHECKING:
    from data_pipelines.settings import ProjectSettings

CHUNK_BYTES = 65_536
CSV_TYPES = ("text/csv", "application/csv")
SHA256_HEX_LENGTH = 64


@dataclass(frozen=True)
class Download:
    """A checked body in ``path`` (status 200), or ``not_modified`` (304 to If-None-Match)."""

    not_modified: bool
    path: Path | None = None
    sha256: str | None = None
    size: int = 0


def download(
    url: str, target: Path, settings: ProjectSettings, if_none_match: str | None = None
) -> Download:
    """GET ``url`` into the local file ``target``; ``if_none_match``: the SHA-256 already held."""
    import requests
    import urllib3  # pants: no-infer-dep (requests' own dependency; raw reads raise its errors)

    headers = {"Accept-Encoding": "identity"}
    if if_none_match:
        headers["If-None-Match"] = f'"{if_none_match}"'
    deadline = time.monotonic() + settings.download_deadline_s
    try:
        with requests.get(
            url, headers=headers, stream=True, timeout=settings.request_timeout_s
        ) as response:
            if response.status_code == 304 and if_none_match:
                return Download(not_modified=True)
            _check_status(url, response)
            declared, claimed = _check_headers(url, response.headers, settings)
            digest, size = _stream(url, response.raw, target, settings, deadline)
    except (requests.Timeout, urllib3.exceptions.ReadTimeoutError) as error:
        raise TransientError(f"GET {url}: timed out ({error.__class__.__name__})") from error
    except (
        requests.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.ProtocolError,
    ) as error:
        raise TransientError(f"GET {url}: connection failed ({error})") from error
    if declared is not None and size != declared:
        raise TransientError(f"GET {url}: truncated, {size} of {declared} bytes")
    if digest != claimed:
        raise TransientError(f"GET {url}: checksum mismatch (damaged in transit)")
    return Download(not_modified=False, path=target, sha256=digest, size=size)


def _check_status(url: str, response: Any) -> None:
    status = response.status_code
    if status >= 500 or status == 429:
        raise TransientError(f"GET {url}: HTTP {status} {response.reason}")
    if status != 200:
        raise PermanentError(f"GET {url}: HTTP {status} {response.reason}")


def _check_headers(url: str, headers: Any, settings: ProjectSettings) -> tuple[int | None, str]:
    """The declared length (None: not declared) and the claimed SHA-256, both checked."""
    content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type not in CSV_TYPES:
        raise PermanentError(f"GET {url}: content type {content_type or 'none'!r}, not CSV")
    declared = headers.get("Content-Length")
    if declared is not None:
        if not declared.isdigit():
            raise PermanentError(f"GET {url}: bad Content-Length {declared!r}")
        if int(declared) > settings.max_payload_bytes:
            raise PermanentError(
                f"GET {url}: declares {declared} bytes, over the {settings.max_payload_bytes}-byte"
                " cap"
            )
    claimed = headers.get("X-Content-SHA256") or headers.get("ETag", "").removeprefix("W/")
    claimed = claimed.strip('"').lower()
    if len(claimed) != SHA256_HEX_LENGTH:
        raise PermanentError(
            f"GET {url}: no SHA-256 (X-Content-SHA256 or ETag) to check the payload against"
        )
    return (int(declared) if declared is not None else None), claimed


def _stream(
    url: str, raw: Any, target: Path, settings: ProjectSettings, deadline: float
) -> tuple[str, int]:
    """Copy the body to ``target`` as it arrives (each read returns what one receive brought, so
    the deadline is checked at least once per ``request_timeout_s``); its SHA-256 and size."""
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        while chunk := raw.read1(CHUNK_BYTES):
            size += len(chunk)
            if size > settings.max_payload_bytes:
                raise PermanentError(
                    f"GET {url}: over the {settings.max_payload_bytes}-byte cap after {size} "
                    "bytes; stopped reading"
                )
            if time.monotonic() > deadline:
                raise TransientError(
                    f"GET {url}: body not complete within the {settings.download_deadline_s:g} s"
                    f" deadline ({size} bytes so far)"
                )
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), size
