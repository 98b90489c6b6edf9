"""The adapter the loop serves: a version of an MLflow registered model that llm-alignment
registered (its pyfunc model carries the LoRA folder, which llm-serving downloads).

* Reused: llm-alignment's demo results file names the tracking URI and the version it registered.
* Trained: llm-alignment's ``build-data`` then ``train-dpo``, registered in the loop's MLflow
  server; its ``summary.json`` names the version.

Either way the data card of the pairs it trained on names the rules it trained on, so the loop
can refuse an adapter that trained on a rule the held-out set evaluates (``trained_rules``;
``None`` only for a ``--data`` file, which carries no card).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llm_loop.errors import LlmLoopError
from llm_loop.settings import ENV_PREFIX, LoopSettings
from llm_loop.steps import Steps, pex_argv

DEMO_HINT = (
    "run llm-alignment's demo first (`./pants run projects/llm-alignment:cli -- demo`), or pass "
    "--train to train an adapter here"
)


@dataclass(frozen=True)
class Adapter:
    """A registered adapter version and the registry that holds it."""

    registered_model: str
    version: str
    tracking_uri: str
    origin: str  # "reused" (llm-alignment's demo) or "trained" (by this loop)
    trained_rules: tuple[str, ...] | None = None  # from its data card; None: no card

    @property
    def uri(self) -> str:
        return f"models:/{self.registered_model}/{self.version}"

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "uri": self.uri}


def card_rules(card: Any, source: Path) -> tuple[str, ...]:
    """The rules a data card says training used: its training rules and every rule with a
    training pair."""
    try:
        with_pairs = {rule for rule, n in card["pairs_per_rule"].items() if n.get("train")}
        return tuple(sorted(set(card["training_rules"]) | with_pairs))
    except (KeyError, TypeError, AttributeError):
        raise LlmLoopError(
            f"{source}: no data card with training_rules and pairs_per_rule, so the adapter's "
            "training rules are unknown"
        ) from None


def reused_adapter(results_file: Path) -> Adapter:
    """The adapter llm-alignment's demo registered, read from its results file."""
    if not results_file.is_file():
        raise LlmLoopError(f"no adapter to reuse: {results_file} not found; {DEMO_HINT}")
    try:
        results = json.loads(results_file.read_text(encoding="utf-8"))
        dpo = results["dpo"]
        name, version = dpo["registered_model"], dpo["model_version"]
        tracking_uri = results["tracking_uri"]
    except (ValueError, KeyError, TypeError):
        raise LlmLoopError(
            f"{results_file} does not name a registered adapter (dpo.registered_model, "
            f"dpo.model_version, tracking_uri); {DEMO_HINT}"
        ) from None
    if not (name and version and tracking_uri):
        raise LlmLoopError(f"{results_file} names no registered adapter; {DEMO_HINT}")
    rules = card_rules(results.get("data_card"), results_file)
    return Adapter(str(name), str(version), str(tracking_uri), "reused", rules)


def train_adapter(settings: LoopSettings, steps: Steps, folder: Path, tracking_uri: str) -> Adapter:
    """Build preference pairs (or take ``settings.train_data``) and train a DPO adapter with
    llm-alignment's CLI, registered as a new version of ``settings.registered_model`` at
    ``tracking_uri``."""
    alignment = pex_argv(settings.alignment_pex, f"{ENV_PREFIX}ALIGNMENT_PEX")
    output_dir = folder / "dpo"
    common = ["--run-dir", str(folder)]
    if settings.train_data is not None:
        data = ["--data", str(settings.train_data.resolve())]
    else:
        data = ["--data-dir", str(folder / "data")]
        steps.run(
            "llm-alignment build-data",
            [*alignment, "build-data", "--out", str(folder / "data"), *common,
             "--per-template", str(settings.train_per_template),
             "--samples", str(settings.train_samples),
             "--max-new-tokens", str(settings.train_max_new_tokens),
             "--seed", str(settings.seed)],
            settings.train_timeout_s,
        )  # fmt: skip
    length = (
        ["--max-steps", str(settings.train_max_steps)]
        if settings.train_max_steps
        else ["--num-train-epochs", str(settings.train_epochs)]
    )
    steps.run(
        "llm-alignment train-dpo",
        [*alignment, "train-dpo", *data, "--output-dir", str(output_dir),
         *length, "--seed", str(settings.seed), "--register-name", settings.registered_model,
         "--tracking-uri", tracking_uri, *common],
        settings.train_timeout_s,
    )  # fmt: skip
    summary_file = output_dir / "summary.json"
    try:
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        version = str(summary["model_version"])
    except (OSError, ValueError, KeyError):
        raise LlmLoopError(
            f"train-dpo finished but {summary_file} names no registered version"
        ) from None
    rules = None if settings.train_data is not None else trained_card_rules(folder / "data")
    return Adapter(settings.registered_model, version, tracking_uri, "trained", rules)


def trained_card_rules(data_dir: Path) -> tuple[str, ...]:
    card_file = data_dir / "card.json"  # llm-alignment's build-data writes it beside the pairs
    try:
        card = json.loads(card_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise LlmLoopError(
            f"{card_file}: build-data wrote no readable data card ({error})"
        ) from None
    return card_rules(card, card_file)
