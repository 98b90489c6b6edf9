"""The loop's Alertmanager configuration: the committed loops/mlops/alertmanager.yml (production
timings), rendered for a run with the settings' timings divided by the clock, the receiver's URL
and the file of the bearer token Alertmanager sends."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml
from roadmap_lab.prometheus_time import format_duration, parse_duration

from mlops_loop.errors import MlopsLoopError
from mlops_loop.settings import LoopSettings

LOOP_DIR = "loops/mlops"
CONFIG_FILE = "alertmanager.yml"
RECEIVER = "retrain-pipeline"
WEBHOOK_PATH = "/alerts"
TIMINGS = ("group_wait", "group_interval", "repeat_interval")


def loop_file(relative: str) -> Path:
    """A committed file of the loop's folder: a Pants resource found on sys.path as
    ``loops/mlops/...`` (PEXes, test sandboxes), or beside src/ in a checkout."""
    candidates = [Path(entry) / LOOP_DIR for entry in sys.path if entry]
    candidates.append(Path(__file__).resolve().parents[2])
    for folder in candidates:
        if (folder / relative).is_file():
            return (folder / relative).resolve()
    raise MlopsLoopError(f"loop file {relative} not found (looked for {LOOP_DIR})")


def committed_config() -> dict[str, Any]:
    content = yaml.safe_load(loop_file(CONFIG_FILE).read_text(encoding="utf-8"))
    if not isinstance(content, dict):
        raise MlopsLoopError(f"{CONFIG_FILE}: expected a YAML mapping")
    return content


def retrain_route(config: dict[str, Any]) -> dict[str, Any]:
    """The route (a child of the top route) that sends alerts to the receiver."""
    routes = [r for r in config["route"].get("routes", []) if r.get("receiver") == RECEIVER]
    if len(routes) != 1:
        raise MlopsLoopError(f"{CONFIG_FILE}: {len(routes)} routes to {RECEIVER}, expected one")
    route: dict[str, Any] = routes[0]
    return route


def alertmanager_config(settings: LoopSettings) -> dict[str, Any]:
    """The committed configuration for this run: the retrain route's timings from the settings
    (else the file's), all divided by the clock; the webhook at the receiver with its token."""
    config = copy.deepcopy(committed_config())
    route = retrain_route(config)
    for key in TIMINGS:
        production_s = getattr(settings, f"{key}_s") or parse_duration(route[key])
        route[key] = format_duration(settings.wall_seconds(production_s))
    global_section = config.setdefault("global", {})
    if "resolve_timeout" in global_section:
        timeout_s = parse_duration(global_section["resolve_timeout"])
        global_section["resolve_timeout"] = format_duration(settings.wall_seconds(timeout_s))
    for receiver in config["receivers"]:
        if receiver["name"] == RECEIVER:
            for webhook in receiver["webhook_configs"]:
                webhook["url"] = settings.resolved_receiver_url() + WEBHOOK_PATH
                if settings.webhook_token_file is not None:
                    authorization = webhook["http_config"]["authorization"]
                    authorization["credentials_file"] = str(settings.webhook_token_file.resolve())
    return config
