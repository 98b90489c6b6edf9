"""A small client of Airflow 3's REST API (v2, served by the api-server), for whoever drives a
running Airflow over HTTP (data-pipelines' CLI and benchmark, the MLOps loop's alert receiver):
a bearer token for a user of the auth manager (POST /auth/token, fetched again once when a
request answers 401: expired, or the api-server's signing key changed), DAG runs triggered,
listed and awaited. Thread-safe: callers' threads share one token.

Failures fail closed, in two kinds: ``AirflowUnavailable`` (no answer, or 5xx: worth retrying)
and ``AirflowRefused`` (4xx: bad credentials, an unknown DAG, a body it rejects). Timeouts are
generous by default: on a loaded 2-core machine the api-server has taken longer than 10 s to
answer one request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

import requests

from roadmap_lab.errors import LabError

T = TypeVar("T")
FINISHED_STATES = ("success", "failed")
ACTIVE_STATES = ("queued", "running")
PAGE = 100
POLL_S = 0.5


class AirflowApiError(LabError):
    """Airflow's REST API failed; the message names the request and the answer."""


class AirflowUnavailable(AirflowApiError):
    """The api-server could not be reached or answered 5xx: worth trying again later."""


class AirflowRefused(AirflowApiError):
    """The api-server answered 4xx (bad credentials, an unknown DAG, a body it rejects): a
    setting to fix, not a transient fault."""


def parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float) -> T:
    """Poll ``probe`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(POLL_S)
    raise AirflowApiError(f"timed out after {timeout_s:g} s waiting for {what}")


class AirflowClient:
    def __init__(self, base_url: str, username: str, password: str, timeout_s: float = 60.0):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._credentials = {"username": username, "password": password}
        self._token: str | None = None
        self._token_lock = threading.Lock()

    # --- runs ------------------------------------------------------------------------------

    def trigger(
        self,
        dag_id: str,
        logical_date: datetime | None,
        *,
        run_id: str | None = None,
        conf: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create a run of ``dag_id`` (the api-server names it unless ``run_id`` is given)."""
        body: dict[str, Any] = {
            "logical_date": logical_date.isoformat() if logical_date else None
        }
        if run_id is not None:
            body["dag_run_id"] = run_id
        if conf is not None:
            body["conf"] = conf
        return dict(self.request("POST", f"/dags/{dag_id}/dagRuns", body=body))

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def dag_runs(
        self,
        dag_id: str,
        *,
        states: Iterable[str] = (),
        ended_after: datetime | None = None,
        order_by: str = "-id",
    ) -> list[dict[str, Any]]:
        """Runs of ``dag_id`` (at most 100, in ``order_by`` order: the newest first by default),
        only those in one of ``states`` and/or that ended at or after ``ended_after``."""
        params: list[tuple[str, str]] = [("limit", str(PAGE)), ("order_by", order_by)]
        params += [("state", state) for state in states]
        if ended_after is not None:
            params.append(("end_date_gte", ended_after.isoformat()))
        reply = self.request("GET", f"/dags/{dag_id}/dagRuns", params=params)
        return list(reply["dag_runs"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float) -> dict[str, Any]:
        """The run once it succeeded or failed."""

        def finished() -> dict[str, Any] | None:
            run = self.dag_run(dag_id, run_id)
            return run if run["state"] in FINISHED_STATES else None

        return wait_for(f"{dag_id} run {run_id}", finished, timeout_s)

    # --- requests --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """``method`` on ``/api/v2{path}``; the JSON answer."""
        url = f"{self.base_url}/api/v2{path}"
        token = self._current_token()
        response = self._send(method, url, params=params, body=body, token=token)
        if response.status_code == 401:
            self._forget(token)
            token = self._current_token()
            response = self._send(method, url, params=params, body=body, token=token)
        return _json(method, url, response)

    def _current_token(self) -> str:
        with self._token_lock:
            if self._token is None:
                url = f"{self.base_url}/auth/token"
                response = self._send("POST", url, body=self._credentials)
                self._token = str(_json("POST", url, response)["access_token"])
            return self._token

    def _forget(self, token: str) -> None:
        with self._token_lock:
            if self._token == token:
                self._token = None

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            return requests.request(
                method, url, params=params, json=body, headers=headers, timeout=self.timeout_s
            )
        except requests.RequestException as error:
            raise AirflowUnavailable(f"{method} {url}: {error}") from error


def _json(method: str, url: str, response: requests.Response) -> Any:
    what = f"{method} {url}: HTTP {response.status_code}: {response.text[:500]}"
    if response.status_code >= 500:
        raise AirflowUnavailable(what)
    if response.status_code >= 400:
        raise AirflowRefused(what)
    return response.json()
