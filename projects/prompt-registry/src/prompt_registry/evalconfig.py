"""How a prompt version is evaluated, stored with the version: its golden examples (the content,
not a file name), its scorer configuration, its pass-rate floor and an optional pinned baseline
version, plus the digest of the scorer code it was registered with.

The gate judges a candidate with **production's** stored config, so a change cannot make itself
look better by dropping the examples it fails or loosening a scorer: such a change is shown as
its own section of the gate report (:func:`config_changes`), and the candidate must pass on both
the old and the new config.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from prompt_registry.errors import PromptFileError
from prompt_registry.golden import Example, load_golden

SCORER_CODE = Path(__file__).with_name("scorers.py")


class ScorerSpec(BaseModel):
    """One scorer of an eval: ``type`` names it, the other keys are its parameters."""

    model_config = ConfigDict(extra="allow")

    type: str


class EvalSpec(BaseModel):
    """``eval`` in prompt.yaml: the golden set, the scorers (an example passes when every scorer
    passes it), the pass-rate floor, and the baseline version the gate holds later candidates
    to once this version is production (default: the first production version)."""

    model_config = ConfigDict(extra="forbid")

    golden: str = "golden.jsonl"
    limit: int | None = Field(default=None, ge=1)
    scorers: list[ScorerSpec] = Field(min_length=1)
    min_pass_rate: float = Field(default=0.5, ge=0, le=1)
    baseline_version: int | None = Field(default=None, ge=1)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()


def scorer_code_digest() -> str:
    """sha256 of the scorer code this process runs (scorers.py)."""
    return hashlib.sha256(SCORER_CODE.read_bytes()).hexdigest()


@dataclass(frozen=True)
class EvalConfig:
    """The resolved eval config of one prompt version (what the registry stores with it)."""

    golden: str
    examples: tuple[Example, ...]
    scorers: tuple[ScorerSpec, ...]
    min_pass_rate: float
    baseline_version: int | None = None
    # The scorer code the version was registered with (a file: the code that runs now).
    scorer_code: str = field(default_factory=scorer_code_digest)

    @property
    def digest(self) -> str:
        """sha256 of the examples, scorers, floor and pin (the scorer code is separate)."""
        return _digest({k: v for k, v in self.to_dict().items() if k != "scorer_code"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "golden": self.golden,
            "examples": [e.to_dict() for e in self.examples],
            "scorers": [s.model_dump() for s in self.scorers],
            "min_pass_rate": self.min_pass_rate,
            "baseline_version": self.baseline_version,
            "scorer_code": self.scorer_code,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> EvalConfig:
        raw = json.loads(text)
        return cls(
            golden=raw["golden"],
            examples=tuple(Example.from_dict(row) for row in raw["examples"]),
            scorers=tuple(ScorerSpec.model_validate(s) for s in raw["scorers"]),
            min_pass_rate=float(raw["min_pass_rate"]),
            baseline_version=raw.get("baseline_version"),
            scorer_code=raw["scorer_code"],
        )


def resolve(spec: EvalSpec, folder: Path) -> EvalConfig:
    """A prompt folder's eval spec with its golden set read (the first ``limit`` examples)."""
    return EvalConfig(
        golden=spec.golden,
        examples=tuple(load_golden(folder, spec.golden, spec.limit)),
        scorers=tuple(spec.scorers),
        min_pass_rate=spec.min_pass_rate,
        baseline_version=spec.baseline_version,
    )


@dataclass
class ConfigChanges:
    """What a candidate's eval config changes against production's."""

    added: list[str]
    removed: list[str]
    changed: list[str]
    scorers: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None
    min_pass_rate: tuple[float, float] | None
    baseline_version: tuple[int | None, int | None] | None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def config_changes(old: EvalConfig, new: EvalConfig) -> ConfigChanges | None:
    """The added, removed and changed examples (by id) and the scorer, floor and pin changes;
    None when the configs are equal."""
    if old.digest == new.digest:
        return None
    before = {e.id: e for e in old.examples}
    after = {e.id: e for e in new.examples}

    def differs(a: Any, b: Any) -> tuple[Any, Any] | None:
        return (a, b) if a != b else None

    return ConfigChanges(
        added=[i for i in after if i not in before],
        removed=[i for i in before if i not in after],
        changed=[i for i in after if i in before and after[i] != before[i]],
        scorers=differs(
            [s.model_dump() for s in old.scorers], [s.model_dump() for s in new.scorers]
        ),
        min_pass_rate=differs(old.min_pass_rate, new.min_pass_rate),
        baseline_version=differs(old.baseline_version, new.baseline_version),
    )


def check_storable(config: EvalConfig, limit: int) -> str:
    """The config as the registry stores it; too large a golden set is a clear error."""
    text = config.to_json()
    if len(text) > limit:
        raise PromptFileError(
            f"eval config of {len(text):,} characters exceeds the registry's {limit:,}: "
            "use a smaller golden set (eval.limit)"
        )
    return text
