"""The embedded data source: nannyml's California-housing rows cut into weekly slices and served
over HTTP on 127.0.0.1, with an ETag and a SHA-256 header, and faults to inject on demand.

    GET /slices                      -> JSON list of slice ids (YYYY-MM-DD logical dates)
    GET /slices/<YYYY-MM-DD>.csv     -> the slice (ETag, X-Content-SHA256, Content-Length);
                                        If-None-Match with its ETag -> 304
    GET /health                      -> "ok"

Faults (``FaultSpec``) apply per slice id, to the first ``count`` requests of that slice:
``503`` answers 503, ``reset`` resets the connection, ``truncate`` sends half the body with the
full Content-Length, ``slow`` waits ``delay_s`` before answering, ``trickle`` sends the body in
ten pieces ``delay_s`` apart, ``chunked`` sends it without a Content-Length (chunked transfer
encoding), ``html`` labels it text/html. ``404`` always answers 404; ``corrupt`` always serves a
damaged slice (negative incomes, nulls, duplicate rows, a bad coordinate) and ``changed`` a
slightly different but valid one (an upstream that rewrote a past week), both with a matching
checksum, so only validation or the store's history can catch them. Two more always serve data
that passes validation but changes what a model learns (the MLOps loop's drift): ``inverted``
reports every income on a reversed scale, ``INVERT_MEDINC`` minus it (a persistent upstream
change that a model trained before it misreads: rich blocks look poor and poor ones rich), and
``mislabelled`` shuffles the labels (bad data a retrain learns nothing from).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal, Self, get_args

from roadmap_lab.data import HOUSING_FEATURES

from data_pipelines.settings import FIRST_SLICE_DATE, LAST_SLICE_DATE, SLICE_PERIOD

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

FaultKind = Literal[
    "503", "reset", "truncate", "slow", "trickle", "chunked", "html", "404", "corrupt", "changed",
    "inverted", "mislabelled",
]  # fmt: skip
# Every request, not only the first `count`.
ALWAYS = ("404", "corrupt", "changed", "inverted", "mislabelled")
# `inverted` serves MedInc as this minus it: the data's incomes (0.5-15) stay within the valid
# bounds (0-20) and a week's median moves by less than validation's limit (0.6 of the range).
INVERT_MEDINC = 16.0
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
SLICE_COLUMNS = ["id", *HOUSING_FEATURES, "timestamp", "clf_target"]
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"
SLICE_PATH = re.compile(r"^/slices/(\d{4}-\d{2}-\d{2})\.csv$")


def slice_id(logical_date: datetime | date) -> str:
    return logical_date.strftime("%Y-%m-%d")


def slice_bounds(slice_key: str) -> tuple[datetime, datetime]:
    """The rows of a slice: timestamps in [logical date - 7 days, logical date), naive UTC."""
    end = datetime.strptime(slice_key, "%Y-%m-%d")
    return end - SLICE_PERIOD, end


def embedded_slice_ids() -> list[str]:
    ids, current = [], FIRST_SLICE_DATE
    while current <= LAST_SLICE_DATE:
        ids.append(slice_id(current))
        current += SLICE_PERIOD
    return ids


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FaultSpec:
    kind: FaultKind
    count: int = 1  # first `count` requests of the slice (ALWAYS kinds: every request)
    delay_s: float = 5.0  # `slow`: before answering; `trickle`: between pieces

    @classmethod
    def parse(cls, text: str) -> tuple[str, Self]:
        """``DATE=KIND[:COUNT]``, e.g. ``2021-01-03=503:2`` or ``2021-01-10=corrupt``."""
        key, _, spec = text.partition("=")
        kind, _, count = spec.partition(":")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", key) or kind not in FAULT_KINDS:
            raise ValueError(
                f"fault {text!r}: expected DATE=KIND[:COUNT], KIND one of {', '.join(FAULT_KINDS)}"
            )
        if count and not count.isdigit():
            raise ValueError(f"fault {text!r}: COUNT must be a whole number")
        return key, cls(kind=kind, count=int(count or 1))  # type: ignore[arg-type]


class HousingSlices:
    """The embedded data, cut into weekly CSV slices (bytes are cached: they never change)."""

    def __init__(self, frame: pd.DataFrame | None = None) -> None:
        self._frame = frame
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @cached_property
    def frame(self) -> pd.DataFrame:
        if self._frame is not None:
            return self._frame
        import pandas as pd
        from roadmap_lab.data import load_california_housing

        reference, analysis = load_california_housing()
        rows = pd.concat([reference, analysis], ignore_index=True)
        return rows[SLICE_COLUMNS].sort_values("timestamp", kind="stable").reset_index(drop=True)

    def ids(self) -> list[str]:
        return embedded_slice_ids()

    def csv_bytes(self, key: str) -> bytes | None:
        """The slice as CSV, or None when the embedded data has no such week."""
        if key not in self.ids():
            return None
        with self._lock:
            if key not in self._cache:
                start, end = slice_bounds(key)
                rows = self.frame[
                    (self.frame["timestamp"] >= start) & (self.frame["timestamp"] < end)
                ]
                text = rows.to_csv(index=False, date_format=TIMESTAMP_FORMAT, lineterminator="\n")
                self._cache[key] = text.encode()
            return self._cache[key]

    def corrupt_bytes(self, key: str) -> bytes | None:
        """The slice with the damage a broken upstream export causes; deterministic."""
        import io

        import pandas as pd

        clean = self.csv_bytes(key)
        if clean is None:
            return None
        rows = pd.read_csv(io.BytesIO(clean))
        rows.loc[rows.index[3:6], "MedInc"] = -1.0  # negative incomes
        rows.loc[rows.index[10:12], "HouseAge"] = float("nan")  # nulls
        rows.loc[rows.index[20], "Latitude"] = 91.0  # off the map
        rows = pd.concat([rows, rows.iloc[[30, 31]]], ignore_index=True)  # duplicated rows
        return rows.to_csv(index=False, lineterminator="\n").encode()

    def inverted_bytes(self, key: str) -> bytes | None:
        """The slice after a persistent upstream change: MedInc reported as ``INVERT_MEDINC``
        minus it."""
        return self._edited(key, lambda rows: rows.assign(MedInc=INVERT_MEDINC - rows["MedInc"]))

    def mislabelled_bytes(self, key: str) -> bytes | None:
        """The slice with its labels shuffled (a seeded permutation): valid, but a model trained
        on it learns no relation between the features and the label."""
        import numpy as np

        def shuffle(rows: pd.DataFrame) -> pd.DataFrame:
            labels = np.random.default_rng(0).permutation(rows["clf_target"].to_numpy())
            return rows.assign(clf_target=labels)

        return self._edited(key, shuffle)

    def _edited(self, key: str, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> bytes | None:
        import io

        import pandas as pd

        clean = self.csv_bytes(key)
        if clean is None:
            return None
        rows = edit(pd.read_csv(io.BytesIO(clean)))
        return rows.to_csv(index=False, lineterminator="\n").encode()

    def changed_bytes(self, key: str) -> bytes | None:
        """The slice as an upstream that re-exported it would serve it: one income revised by a
        small amount, still valid, so only the hash differs from what was ingested."""
        clean = self.csv_bytes(key)
        if clean is None:
            return None
        header, first, rest = clean.split(b"\n", 2)
        fields = first.split(b",")
        fields[1] = f"{float(fields[1]) + 0.01:.4f}".encode()  # MedInc
        return b"\n".join([header, b",".join(fields), rest])


@dataclass
class SourceServer:
    """A threaded HTTP server on 127.0.0.1 serving ``slices``; faults keyed by slice id.

    Use as a context manager (starts on entry, stops on exit). ``requests`` counts requests per
    slice id; ``log`` lists (slice id, outcome) in order."""

    slices: HousingSlices = field(default_factory=HousingSlices)
    faults: dict[str, FaultSpec] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    log: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("source server not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def set_faults(self, faults: Mapping[str, FaultSpec]) -> None:
        """Replace the faults and reset the request counts."""
        with self._lock:
            self.faults = dict(faults)
            self.requests.clear()

    def start(self) -> Self:
        _ = self.slices.frame  # load the data first: a first request must not wait for it
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="housing-source", daemon=True
        )
        self._thread.start()
        logger.info("Housing source serving on %s", self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next_request(self, key: str) -> tuple[int, FaultSpec | None]:
        """Count a request of slice ``key``; its 1-based number and the fault that applies."""
        with self._lock:
            self.requests[key] += 1
            number = self.requests[key]
            fault = self.faults.get(key)
        if fault is None:
            return number, None
        if fault.kind in ALWAYS or number <= fault.count:
            return number, fault
        return number, None

    def _record(self, key: str, outcome: str) -> None:
        with self._lock:
            self.log.append((key, outcome))


def _handler_for(source: SourceServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
            logger.debug("source: " + format, *args)

        def do_GET(self) -> None:  # noqa: N802 (stdlib name)
            if self.path == "/health":
                self._send(200, b"ok\n", "text/plain")
                return
            if self.path == "/slices":
                body = json.dumps(source.slices.ids()).encode()
                self._send(200, body, "application/json")
                return
            match = SLICE_PATH.match(self.path)
            if match is None:
                self._send(404, b"unknown path; try /slices\n", "text/plain")
                return
            self._serve_slice(match.group(1))

        def _serve_slice(self, key: str) -> None:
            _, fault = source._next_request(key)
            kind = fault.kind if fault else "ok"
            source._record(key, kind)
            if kind == "404" or source.slices.csv_bytes(key) is None:
                self._send(404, f"no slice {key}\n".encode(), "text/plain")
                return
            if kind == "503":
                self._send(503, b"source busy, try again\n", "text/plain", {"Retry-After": "1"})
                return
            if kind == "reset":
                # SO_LINGER 0: close() sends a TCP RST instead of a FIN.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()
                return
            if kind == "slow" and fault is not None:
                time.sleep(fault.delay_s)
            if kind == "corrupt":
                body = source.slices.corrupt_bytes(key)
            elif kind == "changed":
                body = source.slices.changed_bytes(key)
            elif kind == "inverted":
                body = source.slices.inverted_bytes(key)
            elif kind == "mislabelled":
                body = source.slices.mislabelled_bytes(key)
            else:
                body = source.slices.csv_bytes(key)
            assert body is not None  # checked above
            etag = f'"{sha256_hex(body)}"'
            # The same bytes every time: a repeated request may be answered 304.
            consistent = kind in ("ok", "changed", "inverted", "mislabelled")
            if self.headers.get("If-None-Match") == etag and consistent:
                self._send(304, b"", "text/csv", {"ETag": etag})
                return
            headers = {"ETag": etag, "X-Content-SHA256": sha256_hex(body)}
            if kind == "truncate":
                self._send(200, body, "text/csv", headers, send_bytes=len(body) // 2)
                self.close_connection = True
            elif kind == "trickle" and fault is not None:
                self._trickle(body, headers, fault.delay_s)
            elif kind == "chunked":
                self._send_chunked(body, headers)
            else:
                self._send(200, body, "text/html" if kind == "html" else "text/csv", headers)

        def _trickle(self, body: bytes, headers: Mapping[str, str], delay_s: float) -> None:
            self._send(200, body, "text/csv", headers, send_bytes=0)
            piece = len(body) // 10 + 1
            for start in range(0, len(body), piece):
                time.sleep(delay_s)
                self.wfile.write(body[start : start + piece])
                self.wfile.flush()

        def _send_chunked(self, body: bytes, headers: Mapping[str, str]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Transfer-Encoding", "chunked")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            for start in range(0, len(body), 4096):
                piece = body[start : start + 4096]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str,
            headers: Mapping[str, str] | None = None,
            send_bytes: int | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if status != 304:
                self.wfile.write(body if send_bytes is None else body[:send_bytes])
            self.wfile.flush()

    return Handler


def previous_slice_id(key: str) -> str:
    return slice_id(datetime.strptime(key, "%Y-%m-%d") - SLICE_PERIOD)


def window_slice_ids(key: str, size: int) -> list[str]:
    """The ``size`` slice ids ending at ``key``, oldest first."""
    end = datetime.strptime(key, "%Y-%m-%d")
    return [slice_id(end - timedelta(days=7 * back)) for back in reversed(range(size))]
