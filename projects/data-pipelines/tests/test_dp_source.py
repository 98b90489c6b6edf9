"""The embedded source: slices with checksums, ETag revalidation, and every injected fault."""

from __future__ import annotations

import hashlib

import pytest
import requests
from data_pipelines.source import FaultSpec, SourceServer, embedded_slice_ids

KEY = "2021-02-14"


def test_serves_weekly_slices_with_checksum_and_etag(source: SourceServer) -> None:
    assert requests.get(f"{source.url}/slices", timeout=5).json() == embedded_slice_ids()
    response = requests.get(f"{source.url}/slices/{KEY}.csv", timeout=5)
    digest = hashlib.sha256(response.content).hexdigest()
    assert response.status_code == 200
    assert response.headers["X-Content-SHA256"] == digest
    assert response.headers["ETag"] == f'"{digest}"'
    assert response.content.startswith(b"id,MedInc,")
    assert len(response.content.splitlines()) == 168 + 1  # 24 rows a day, a header

    again = requests.get(
        f"{source.url}/slices/{KEY}.csv", headers={"If-None-Match": f'"{digest}"'}, timeout=5
    )
    assert again.status_code == 304


def test_unknown_slice_is_404(source: SourceServer) -> None:
    assert requests.get(f"{source.url}/slices/1999-01-03.csv", timeout=5).status_code == 404


def test_first_requests_fail_then_succeed(source: SourceServer) -> None:
    source.set_faults({KEY: FaultSpec("503", count=2)})
    codes = [
        requests.get(f"{source.url}/slices/{KEY}.csv", timeout=5).status_code for _ in range(3)
    ]
    assert codes == [503, 503, 200]


def test_reset_and_truncate_break_the_transfer(source: SourceServer) -> None:
    source.set_faults({KEY: FaultSpec("reset")})
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{source.url}/slices/{KEY}.csv", timeout=5)
    source.set_faults({KEY: FaultSpec("truncate")})
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{source.url}/slices/{KEY}.csv", timeout=5)
    assert requests.get(f"{source.url}/slices/{KEY}.csv", timeout=5).status_code == 200


def test_corrupt_slice_has_a_matching_checksum(source: SourceServer) -> None:
    source.set_faults({KEY: FaultSpec("corrupt")})
    response = requests.get(f"{source.url}/slices/{KEY}.csv", timeout=5)
    assert response.status_code == 200
    assert response.headers["X-Content-SHA256"] == hashlib.sha256(response.content).hexdigest()
    assert b"-1.0" in response.content


def test_fault_spec_parsing() -> None:
    assert FaultSpec.parse("2021-02-14=503:2") == ("2021-02-14", FaultSpec("503", 2))
    assert FaultSpec.parse("2021-02-14=corrupt") == ("2021-02-14", FaultSpec("corrupt", 1))
    for bad in ("2021-02-14", "2021-02-14=teapot", "yesterday=503", "2021-02-14=503:x"):
        with pytest.raises(ValueError, match="fault"):
            FaultSpec.parse(bad)


def test_changed_chunked_and_html_faults(source: SourceServer) -> None:
    clean = requests.get(f"{source.url}/slices/{KEY}.csv", timeout=5)
    source.set_faults({KEY: FaultSpec("changed")})
    changed = requests.get(
        f"{source.url}/slices/{KEY}.csv",
        headers={"If-None-Match": clean.headers["ETag"]},
        timeout=5,
    )
    assert changed.status_code == 200  # a new body: the old ETag no longer matches
    assert changed.content != clean.content
    assert changed.headers["X-Content-SHA256"] == hashlib.sha256(changed.content).hexdigest()
    assert len(changed.content.splitlines()) == len(clean.content.splitlines())
    source.set_faults({KEY: FaultSpec("chunked")})
    chunked = requests.get(f"{source.url}/slices/{KEY}.csv", timeout=5)
    assert "Content-Length" not in chunked.headers and chunked.content == clean.content
    source.set_faults({KEY: FaultSpec("html")})
    html = requests.get(f"{source.url}/slices/{KEY}.csv", timeout=5)
    assert html.headers["Content-Type"] == "text/html"
