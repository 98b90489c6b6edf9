"""Golden sets: the examples an eval scores. Each example has an ``id``, the prompt's variables
(``vars``), the ``expected`` answer and optionally more accepted ``answers``.

A prompt's ``eval.golden`` names a JSON-lines file in its folder, or ``freshqa:stable``: the
never-changing, true-premise questions of FreshQA (shipped in inspect-evals; see
``roadmap_lab.data.load_freshqa``), with the question as the variable ``question``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_registry.errors import GoldenSetError

FRESHQA_STABLE = "freshqa:stable"


@dataclass(frozen=True)
class Example:
    id: str
    vars: dict[str, Any]
    expected: str
    answers: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def accepted(self) -> list[str]:
        """Every accepted answer, the expected one first."""
        return list(dict.fromkeys([self.expected, *self.answers]))

    def to_dict(self) -> dict[str, Any]:
        """The example as a golden-set row (what the registry stores)."""
        return {
            "id": self.id,
            "vars": self.vars,
            "expected": self.expected,
            **({"answers": list(self.answers)} if self.answers else {}),
            **self.extra,
        }

    @classmethod
    def from_dict(cls, row: Any, where: str = "example") -> Example:
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("vars"), dict)
            or "expected" not in row
        ):
            raise GoldenSetError(f"{where}: each example needs 'vars' (a mapping) and 'expected'")
        known = {"id", "vars", "expected", "answers"}
        return cls(
            id=str(row.get("id", where)),
            vars=row["vars"],
            expected=str(row["expected"]),
            answers=tuple(str(a) for a in row.get("answers", [])),
            extra={k: v for k, v in row.items() if k not in known},
        )


def read_jsonl(path: Path) -> list[Example]:
    if not path.is_file():
        raise GoldenSetError(f"golden set {path} does not exist")
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise GoldenSetError(f"{path}:{number}: not JSON ({error.msg})") from None
        examples.append(Example.from_dict(row, f"{path.name}:{number}"))
    if not examples:
        raise GoldenSetError(f"golden set {path} holds no examples")
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        raise GoldenSetError(f"golden set {path}: example ids must be unique")
    return examples


def freshqa_stable() -> list[Example]:
    """FreshQA's never-changing questions with a true premise, in file order."""
    from roadmap_lab.data import load_freshqa

    frame = load_freshqa()
    stable = frame[(frame["fact_type"] == "never-changing") & ~frame["false_premise"]]
    return [
        Example(
            id=f"freshqa-{row.id}",
            vars={"question": row.question},
            expected=row.answer,
            answers=tuple(row.answers),
        )
        for row in stable.itertuples()
    ]


def load_golden(prompt_folder: Path, golden: str, limit: int | None = None) -> list[Example]:
    """The golden set a prompt's eval names, cut to ``limit`` examples (the first ones)."""
    examples = freshqa_stable() if golden == FRESHQA_STABLE else read_jsonl(prompt_folder / golden)
    return examples[:limit] if limit else examples
