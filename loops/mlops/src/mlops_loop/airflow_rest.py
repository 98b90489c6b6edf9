"""A small client of Airflow's REST API (v2, served by the api-server): a bearer token for a user
of the auth manager (POST /auth/token, fetched again once when a request answers 401), DAG runs
listed by state or end date, and runs triggered with a conf. The loop speaks HTTP to Airflow and
imports none of it: the DAG it triggers belongs to data-pipelines."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from mlops_loop.errors import AirflowRefused, AirflowUnavailable

ACTIVE_STATES = ("queued", "running")
PAGE = 100


@dataclass(frozen=True)
class DagRun:
    run_id: str
    state: str
    conf: dict[str, Any]
    queued_at: datetime | None
    end_date: datetime | None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> DagRun:
        return cls(
            run_id=str(data["dag_run_id"]),
            state=str(data["state"]),
            conf=dict(data.get("conf") or {}),
            queued_at=parse_time(data.get("queued_at")),
            end_date=parse_time(data.get("end_date")),
        )


def parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


class AirflowClient:
    """Thread-safe: the receiver's requests share one token."""

    def __init__(self, base_url: str, username: str, password: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self.timeout_s = timeout_s
        self._token: str | None = None
        self._token_lock = threading.Lock()

    def runs(
        self, dag_id: str, *, states: Iterable[str] = (), ended_after: datetime | None = None
    ) -> list[DagRun]:
        """Runs of ``dag_id`` in one of ``states`` and/or that ended at or after
        ``ended_after`` (the newest first, at most 100)."""
        params: list[tuple[str, str]] = [("limit", str(PAGE)), ("order_by", "-id")]
        params += [("state", state) for state in states]
        if ended_after is not None:
            params.append(("end_date_gte", ended_after.isoformat()))
        reply = self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params=params)
        return [DagRun.from_api(run) for run in reply["dag_runs"]]

    def trigger(
        self, dag_id: str, run_id: str, conf: dict[str, Any], logical_date: datetime | None
    ) -> DagRun:
        """A run of ``dag_id``; ``logical_date`` None: a run without one (the DAG decides what
        data it covers)."""
        when = None if logical_date is None else logical_date.isoformat()
        body = {"dag_run_id": run_id, "logical_date": when, "conf": conf}
        return DagRun.from_api(self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body=body))

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        token = self._current_token()
        response = self._send(method, path, params=params, body=body, headers=_bearer(token))
        if response.status_code == 401:
            # Expired, or the api-server's signing key changed: log in again, once.
            self._forget(token)
            token = self._current_token()
            response = self._send(method, path, params=params, body=body, headers=_bearer(token))
        return _json(method, path, response)

    def _current_token(self) -> str:
        with self._token_lock:
            if self._token is None:
                response = self._send("POST", "/auth/token", body=self._credentials)
                reply = _json("POST", "/auth/token", response)
                self._token = str(reply["access_token"])
            return self._token

    def _forget(self, token: str) -> None:
        with self._token_lock:
            if self._token == token:
                self._token = None

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        url = f"{self.base_url}{path}"
        try:
            return requests.request(
                method, url, params=params, json=body, headers=headers, timeout=self.timeout_s
            )
        except requests.RequestException as error:
            raise AirflowUnavailable(f"{method} {url}: {error}") from error


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _json(method: str, path: str, response: requests.Response) -> Any:
    what = f"{method} {path}: HTTP {response.status_code}: {response.text[:300]}"
    if response.status_code >= 500:
        raise AirflowUnavailable(what)
    if response.status_code >= 400:
        raise AirflowRefused(what)
    return response.json()
