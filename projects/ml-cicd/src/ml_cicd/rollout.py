"""Roll the service's replicas onto the registry's new champion, one replica at a time:
``POST /admin/reload`` with ``{"model_uri": null}`` (each replica re-resolves the URI it serves,
``models:/<name>@champion``), and the reply must say that every worker of that replica switched
to the expected version. The first replica that fails stops the rollout: the ones after it keep
their model, and the error names what was done.

Standard library only, so that the retrain workflow's deploy job runs it with a bare ``python3``
(nothing to install) as ``python -m ml_cicd.rollout``; the project's CLI has it as ``rollout``.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

API_KEY_HEADER = "X-API-Key"
# A reload loads and smoke-tests the model in every worker of the replica.
RELOAD_TIMEOUT_S = 300.0


class RolloutError(Exception):
    """A replica refused or failed the reload, or serves another version than expected."""


@dataclass(frozen=True)
class ReplicaRollout:
    url: str
    version: str | None
    workers: int


def replica_urls(text: str) -> list[str]:
    """Replica base URLs from a list separated by whitespace or commas."""
    return [url.rstrip("/") for url in re.split(r"[\s,]+", text) if url]


def roll_out(
    replicas: list[str],
    api_key: str,
    expected_version: str | None = None,
    timeout_s: float = RELOAD_TIMEOUT_S,
) -> list[ReplicaRollout]:
    """Reload each replica in turn; RolloutError at the first one that does not serve
    ``expected_version`` (when given) in every worker afterwards."""
    if not replicas:
        raise RolloutError("no replicas to roll out to")
    if not api_key:
        raise RolloutError("no API key: set ML_CICD_API_KEY to the replicas' admin key")
    done: list[ReplicaRollout] = []
    for url in replicas:
        try:
            done.append(_reload(url, api_key, expected_version, timeout_s))
        except RolloutError as error:
            rolled = ", ".join(r.url for r in done) or "none"
            raise RolloutError(f"{error} (rolled out before it: {rolled})") from None
    return done


def _reload(url: str, api_key: str, expected: str | None, timeout_s: float) -> ReplicaRollout:
    status, body = _post(f"{url}/admin/reload", {"model_uri": None}, api_key, timeout_s)
    if status != 200:
        reason = body.get("reason") or body.get("detail") or body
        raise RolloutError(f"{url}: the reload answered {status}: {reason}")
    versions = {worker.get("version") for worker in body.get("workers", [])}
    if not versions:
        raise RolloutError(f"{url}: the reload reply lists no workers")
    if expected is not None and versions != {expected}:
        raise RolloutError(
            f"{url}: its workers serve version(s) {sorted(map(str, versions))}, not {expected}"
        )
    return ReplicaRollout(url, versions.pop(), len(body["workers"]))


def _post(
    url: str, body: dict[str, Any], api_key: str, timeout_s: float
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", API_KEY_HEADER: api_key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            return reply.status, _json(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, _json(error.read())
    except (urllib.error.URLError, OSError) as error:
        raise RolloutError(f"{url}: no answer ({error})") from None


def _json(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {"detail": raw[:300].decode(errors="replace")}
    return parsed if isinstance(parsed, dict) else {"detail": parsed}


def main(argv: list[str] | None = None) -> int:
    """``python -m ml_cicd.rollout --replicas "URL URL" [--expect-version N]``, the key from
    ML_CICD_API_KEY: one line per replica, exit 1 at the first failure."""
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(prog="python -m ml_cicd.rollout", description=__doc__)
    parser.add_argument("--replicas", required=True, help="base URLs, space or comma separated")
    parser.add_argument("--expect-version", help="the registry version every worker must serve")
    args = parser.parse_args(argv)
    try:
        rolled = roll_out(
            replica_urls(args.replicas), os.environ.get("ML_CICD_API_KEY", ""), args.expect_version
        )
    except RolloutError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for replica in rolled:
        print(f"{replica.url}: {replica.workers} worker(s) serve version {replica.version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
