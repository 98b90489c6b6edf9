"""The evaluation and the gate, all by prompt-registry's CLI (its PEX) against the
OpenAI-compatible endpoint, in the loop's MLflow prompt registry:

1. v1 = the prompt as shipped (it names no model: the endpoint's base) is registered and
   promoted to ``production`` (no production yet: its floor is the only check);
2. ``eval`` of v1 writes the base's answers, each with pass/fail;
3. v2 = an exported copy of the same prompt naming the adapter (``model.name``) is registered
   and evaluated: the adapter's answers;
4. ``gate`` judges v2 (the copy) against production on production's golden set and scorers and
   writes its report; only when it passes, ``promote`` moves production to v2 (gated again).

The registry's ``production`` alias is read before and after, from MLflow's REST API.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from llm_loop.errors import LlmLoopError
from llm_loop.report import read_golden
from llm_loop.settings import ENV_PREFIX, LoopSettings
from llm_loop.steps import Steps, pex_argv

PRODUCTION = "production"
GATE_REFUSED = 3  # prompt-registry's exit status for a gate that did not pass
_REGISTERED = re.compile(r": v(\d+) \((?:new version|unchanged)\)")


@dataclass(frozen=True)
class GateOutcome:
    """What prompt-registry wrote and decided."""

    prompt: str
    base_version: int
    adapter_version: int
    base_eval: Path  # eval --output-json of v1: the base's answers
    adapter_eval: Path  # the same for v2: the adapter's answers
    golden: Path  # the golden set the examples came from (the exported copy's)
    gate_json: Path
    gate_markdown: Path
    passed: bool
    reason: str
    production_before: int | None  # before v2 was gated (v1 once promoted)
    production_after: int | None

    @property
    def decision(self) -> str:
        # What the registry shows after the gate, not only what the gate said.
        return "promoted" if self.production_after == self.adapter_version else "refused"

    def record(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "base_version": self.base_version,
            "adapter_version": self.adapter_version,
            "decision": self.decision,
            "reason": self.reason,
            "production_before": self.production_before,
            "production_after": self.production_after,
        }


def production_version(tracking_uri: str, prompt: str) -> int | None:
    """The version the registry's ``production`` alias names (None when it names none); a
    registry that does not answer, or answers an error, stops the loop (fails closed)."""
    try:
        reply = requests.get(
            f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/registered-models/alias",
            params={"name": prompt, "alias": PRODUCTION},
            timeout=30,
        )
    except requests.RequestException as error:
        raise LlmLoopError(f"the registry at {tracking_uri} did not answer: {error}") from None
    if reply.status_code == 404 and "RESOURCE_DOES_NOT_EXIST" in reply.text:
        return None
    if not reply.ok:
        raise LlmLoopError(
            f"the registry at {tracking_uri} answered {reply.status_code} for {prompt}@"
            f"{PRODUCTION}: {reply.text[:200]}"
        )
    return int(reply.json()["model_version"]["version"])


def adapter_copy(exported: Path, adapter_name: str, floor: float | None) -> Path:
    """Make the exported prompt folder name the adapter (and, when given, a new floor); its
    golden set's file."""
    spec_file = exported / "prompt.yaml"
    spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
    spec.setdefault("model", {})["name"] = adapter_name
    if floor is not None:
        spec["eval"]["min_pass_rate"] = floor
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return exported / str(spec["eval"]["golden"])


def registered_version(log: Path) -> int:
    """The version ``register`` reports (``<name>: v3 (new version)``)."""
    found = _REGISTERED.search(log.read_text(encoding="utf-8", errors="replace"))
    if found is None:
        raise LlmLoopError(f"prompt-registry register reported no version; see {log}")
    return int(found.group(1))


class PromptRegistry:
    """prompt-registry's CLI on one registry and one OpenAI-compatible endpoint."""

    def __init__(
        self, settings: LoopSettings, steps: Steps, folder: Path, tracking_uri: str, base_url: str
    ) -> None:
        self.settings = settings
        self.steps = steps
        self.folder = folder
        self.tracking_uri = tracking_uri
        self.argv = pex_argv(settings.prompt_registry_pex, f"{ENV_PREFIX}PROMPT_REGISTRY_PEX")
        # The generation cache and scratch of every call: answers are generated once.
        self.common = ["--run-dir", str(folder / "run"), "--tracking-uri", tracking_uri]
        self.endpoint = ["--provider", "openai", "--base-url", base_url]
        self.env = {"PROMPT_REGISTRY_OPENAI_MODEL": settings.base_model_name}

    def run(self, name: str, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[int, Path]:
        return self.steps.run(
            f"prompt-registry {name}", [*self.argv, name, *args], self.settings.step_timeout_s,
            ok=ok, env=self.env,
        )  # fmt: skip

    def register(self, prompts_dir: Path | None = None) -> int:
        where = ["--prompts-dir", str(prompts_dir)] if prompts_dir else []
        _, log = self.run("register", self.settings.prompt, *where, *self.common)
        return registered_version(log)

    def evaluate(self, version: int, output: Path, provider: list[str] | None = None) -> Path:
        """``eval`` of a registry version (through the endpoint unless ``provider`` says
        otherwise); its answers in ``output``."""
        where = self.endpoint if provider is None else provider
        self.run("eval", self.settings.prompt, "--version", str(version), *where,
                 "--output-json", str(output), *self.common)  # fmt: skip
        return output

    def gain_flags(self) -> list[str]:
        return ["--min-gain", str(self.settings.gate_min_gain)]


def check_never_trained(golden: Path, trained_rules: tuple[str, ...] | None) -> None:
    """Refuse an adapter whose data card names a rule the held-out set evaluates: its gain there
    would be training signal, not generalisation. ``None`` (no card) is recorded as unverified."""
    if trained_rules is None:
        return
    evaluated = {str(row.get("check", {}).get("rule")) for row in read_golden(golden).values()}
    overlap = sorted(evaluated & set(trained_rules))
    if overlap:
        raise LlmLoopError(
            f"the adapter trained on {', '.join(overlap)}, which {golden.name} evaluates as "
            "held out; train it without those rules"
        )


def gate_adapter(
    settings: LoopSettings,
    steps: Steps,
    folder: Path,
    tracking_uri: str,
    base_url: str,
    trained_rules: tuple[str, ...] | None,
) -> GateOutcome:
    """Steps 1-4 of the module's docstring in ``folder``; what prompt-registry decided. An
    adapter that trained on a rule of the held-out set is refused before it is evaluated."""
    folder.mkdir(parents=True, exist_ok=True)
    cli = PromptRegistry(settings, steps, folder, tracking_uri, base_url)
    prompt = settings.prompt
    base_version = cli.register()
    cli.run("promote", prompt, "--version", str(base_version), *cli.endpoint,
            "--markdown", str(folder / "promote-base.md"), *cli.common)  # fmt: skip
    production_before = production_version(tracking_uri, prompt)
    if production_before != base_version:
        raise LlmLoopError(
            f"{prompt}: production is v{production_before}, not the base's v{base_version}"
        )
    base_eval = cli.evaluate(base_version, folder / "eval-base.json")
    exported = folder / "prompts"
    cli.run("export", prompt, str(exported))
    golden = adapter_copy(exported / prompt, settings.adapter_name, settings.adapter_floor)
    check_never_trained(golden, trained_rules)
    adapter_version = cli.register(exported)
    adapter_eval = cli.evaluate(adapter_version, folder / "eval-adapter.json")
    gate_json, gate_markdown = folder / "gate.json", folder / "gate.md"
    status, _ = cli.run(
        "gate", prompt, "--prompts-dir", str(exported), *cli.endpoint, *cli.gain_flags(),
        "--output-json", str(gate_json), "--markdown", str(gate_markdown), *cli.common,
        ok=(0, GATE_REFUSED),
    )  # fmt: skip
    decided = json.loads(gate_json.read_text(encoding="utf-8"))[0]
    if decided["passed"] != (status == 0):
        raise LlmLoopError(f"prompt-registry gate exited {status} but its report says otherwise")
    if decided["passed"]:
        cli.run("promote", prompt, "--version", str(adapter_version), *cli.endpoint,
                *cli.gain_flags(), "--markdown", str(folder / "promote-adapter.md"),
                *cli.common)  # fmt: skip
    return GateOutcome(
        prompt=prompt,
        base_version=base_version,
        adapter_version=adapter_version,
        base_eval=base_eval,
        adapter_eval=adapter_eval,
        golden=golden,
        gate_json=gate_json,
        gate_markdown=gate_markdown,
        passed=bool(decided["passed"]),
        reason=str(decided["reason"]),
        production_before=production_before,
        production_after=production_version(tracking_uri, prompt),
    )


def evaluate_control(
    settings: LoopSettings, steps: Steps, folder: Path, tracking_uri: str, base_url: str
) -> Path:
    """The prompt (its file, not a registry version: the control is never a candidate) naming
    the zero LoRA, evaluated through the endpoint; its answers' file."""
    cli = PromptRegistry(settings, steps, folder, tracking_uri, base_url)
    exported = folder / "control-prompts"
    shutil.rmtree(exported, ignore_errors=True)
    cli.run("export", settings.prompt, str(exported))
    adapter_copy(exported / settings.prompt, settings.control_name, None)
    output = folder / "eval-control.json"
    cli.run("eval", settings.prompt, "--prompts-dir", str(exported), *cli.endpoint,
            "--output-json", str(output), *cli.common)  # fmt: skip
    return output
