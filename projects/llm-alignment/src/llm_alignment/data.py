"""Preference data: loaders for the Anthropic HH-RLHF format and TRL's conversational
prompt/chosen/rejected format, and the on-disk layout of a locally built data set.

Every loader returns rows in TRL's conversational format::

    {"prompt": [{"role": "user", "content": ...}, ...],
     "chosen": [{"role": "assistant", "content": ...}],
     "rejected": [{"role": "assistant", "content": ...}]}

Malformed input raises ``PreferenceDataError`` naming the file and line.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from roadmap_lab.results import atomic_write_json, atomic_write_text

from llm_alignment.errors import PreferenceDataError

Message = dict[str, str]
Row = dict[str, Any]

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"
ROLES = {"system", "user", "assistant"}
# The files of a built data set folder.
TRAIN_FILE = "train.jsonl"
HELDOUT_FILE = "heldout.jsonl"
HELDOUT_PROMPTS_FILE = "heldout_prompts.jsonl"
CARD_FILE = "card.json"
CARD_MARKDOWN = "README.md"


def _open_text(path: Path) -> Any:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def read_jsonl(path: Path | str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line of a .jsonl or .jsonl.gz file."""
    path = Path(path)
    if not path.is_file():
        raise PreferenceDataError(f"{path}: no such file")
    try:
        with _open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as error:
                    raise PreferenceDataError(
                        f"{path} line {number}: not valid JSON ({error.msg})"
                    ) from None
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise PreferenceDataError(f"{path}: cannot read ({error})") from None


def write_jsonl(path: Path, rows: list[Row]) -> Path:
    """Write rows as JSON lines, atomically."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return atomic_write_text(path, text)


def parse_hh_dialogue(text: str) -> list[Message]:
    """Split "\\n\\nHuman: ...\\n\\nAssistant: ..." into chat messages; raises
    ``PreferenceDataError`` when it is not such a dialogue."""
    messages: list[Message] = []
    position = 0
    while True:
        human = text.find(HUMAN, position)
        assistant = text.find(ASSISTANT, position)
        starts = [
            (index, marker)
            for index, marker in ((human, HUMAN), (assistant, ASSISTANT))
            if index >= 0
        ]
        if not starts:
            break
        index, marker = min(starts)
        if not messages and text[:index].strip():
            raise PreferenceDataError("text before the first 'Human:' turn")
        if messages:
            messages[-1]["content"] = text[position:index].strip()
        messages.append({"role": "user" if marker == HUMAN else "assistant", "content": ""})
        position = index + len(marker)
    if not messages:
        raise PreferenceDataError("no '\\n\\nHuman:' or '\\n\\nAssistant:' turn")
    messages[-1]["content"] = text[position:].strip()
    if messages[0]["role"] != "user":
        raise PreferenceDataError("the dialogue must start with a 'Human:' turn")
    return messages


def hh_row(raw: Any) -> Row:
    """One HH-RLHF record ({"chosen": dialogue, "rejected": dialogue}) as a conversational row.

    The prompt is the chosen dialogue up to its last "\\n\\nAssistant:"; the rejected dialogue
    must start with the same prompt.
    """
    if not isinstance(raw, dict):
        raise PreferenceDataError(f"expected a JSON object, got {type(raw).__name__}")
    for key in ("chosen", "rejected"):
        if not isinstance(raw.get(key), str):
            raise PreferenceDataError(f"'{key}' must be a string")
    chosen, rejected = raw["chosen"], raw["rejected"]
    cut = chosen.rfind(ASSISTANT)
    if cut < 0:
        raise PreferenceDataError("'chosen' has no '\\n\\nAssistant:' turn")
    prompt_text = chosen[:cut]
    if not rejected.startswith(prompt_text + ASSISTANT):
        raise PreferenceDataError("'rejected' does not continue the same prompt as 'chosen'")
    prompt = parse_hh_dialogue(prompt_text)
    if prompt[-1]["role"] != "user":
        raise PreferenceDataError("the prompt must end with a 'Human:' turn")
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen[cut + len(ASSISTANT) :].strip()}],
        "rejected": [
            {"role": "assistant", "content": rejected[len(prompt_text) + len(ASSISTANT) :].strip()}
        ],
    }


def load_hh_rlhf(path: Path | str) -> list[Row]:
    """Read an HH-RLHF file (.jsonl or .jsonl.gz) into conversational rows."""
    rows = []
    for number, raw in read_jsonl(path):
        try:
            rows.append(hh_row(raw))
        except PreferenceDataError as error:
            raise PreferenceDataError(f"{path} line {number}: {error}") from None
    if not rows:
        raise PreferenceDataError(f"{path}: no rows")
    return rows


def _messages(value: Any, key: str, default_role: str) -> list[Message]:
    """A field as chat messages: a string becomes one message of ``default_role``."""
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    if not isinstance(value, list) or not value:
        raise PreferenceDataError(f"'{key}' must be a string or a non-empty list of messages")
    messages = []
    for index, message in enumerate(value):
        if not isinstance(message, dict):
            raise PreferenceDataError(f"'{key}'[{index}] must be an object with role and content")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise PreferenceDataError(
                f"'{key}'[{index}] has role {role!r}; expected one of {sorted(ROLES)}"
            )
        if not isinstance(content, str):
            raise PreferenceDataError(f"'{key}'[{index}] content must be a string")
        messages.append({"role": role, "content": content})
    return messages


def conversational_row(raw: Any) -> Row:
    """A TRL prompt/chosen/rejected record, validated; extra keys are kept."""
    if not isinstance(raw, dict):
        raise PreferenceDataError(f"expected a JSON object, got {type(raw).__name__}")
    missing = [key for key in ("prompt", "chosen", "rejected") if key not in raw]
    if missing:
        raise PreferenceDataError(f"missing {', '.join(missing)}")
    row = dict(raw)
    row["prompt"] = _messages(raw["prompt"], "prompt", "user")
    if row["prompt"][-1]["role"] == "assistant":
        raise PreferenceDataError("'prompt' must not end with an assistant message")
    for key in ("chosen", "rejected"):
        row[key] = _messages(raw[key], key, "assistant")
        if row[key][0]["role"] != "assistant":
            raise PreferenceDataError(f"'{key}' must start with an assistant message")
    return row


def load_conversational(path: Path | str) -> list[Row]:
    """Read a TRL conversational preference file (.jsonl or .jsonl.gz)."""
    rows = []
    for number, raw in read_jsonl(path):
        try:
            rows.append(conversational_row(raw))
        except PreferenceDataError as error:
            raise PreferenceDataError(f"{path} line {number}: {error}") from None
    if not rows:
        raise PreferenceDataError(f"{path}: no rows")
    return rows


def load_preferences(path: Path | str, fmt: str = "auto") -> list[Row]:
    """Load preference rows: ``fmt`` is "hh", "conversational" or "auto" (by the first row)."""
    if fmt == "auto":
        first = next(read_jsonl(path), None)
        if first is None:
            raise PreferenceDataError(f"{path}: no rows")
        fmt = "conversational" if isinstance(first[1], dict) and "prompt" in first[1] else "hh"
    if fmt == "hh":
        return load_hh_rlhf(path)
    if fmt == "conversational":
        return load_conversational(path)
    raise PreferenceDataError(f"unknown format {fmt!r}; use hh, conversational or auto")


def prompt_text(row: Row) -> str:
    """The last user message of a row's prompt."""
    return str(row["prompt"][-1]["content"])


def response_text(messages: list[Message]) -> str:
    return messages[0]["content"]


def save_dataset(
    folder: Path, train: list[Row], heldout: list[Row], heldout_prompts: list[Row], card: Row
) -> Path:
    """Write a built data set: pairs (train, held-out), held-out prompts and the card."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / TRAIN_FILE, train)
    write_jsonl(folder / HELDOUT_FILE, heldout)
    write_jsonl(folder / HELDOUT_PROMPTS_FILE, heldout_prompts)
    atomic_write_text(folder / CARD_MARKDOWN, card_markdown(card))
    atomic_write_json(folder / CARD_FILE, card)
    return folder


def load_dataset(folder: Path) -> tuple[list[Row], list[Row], list[Row], Row]:
    """(train pairs, held-out pairs, held-out prompts, card) of a built data set folder."""
    files = (CARD_FILE, TRAIN_FILE, HELDOUT_FILE, HELDOUT_PROMPTS_FILE)
    missing = next((name for name in files if not (folder / name).is_file()), None)
    if missing:
        raise PreferenceDataError(
            f"{folder} is not a built data set (no {missing}); run build-data"
        )
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    heldout_pairs = (
        load_conversational(folder / HELDOUT_FILE) if (folder / HELDOUT_FILE).stat().st_size else []
    )
    prompts = [raw for _, raw in read_jsonl(folder / HELDOUT_PROMPTS_FILE)]
    return load_conversational(folder / TRAIN_FILE), heldout_pairs, prompts, card


def card_markdown(card: Row) -> str:
    """The data card as Markdown (the JSON card holds the same facts)."""
    lines = [
        f"# {card.get('name', 'preference pairs')}",
        "",
        card.get("description", ""),
        "",
        "| split | pairs | prompts |",
        "|---|---|---|",
    ]
    for split in card.get("splits", {}):
        info = card["splits"][split]
        lines.append(f"| {split} | {info.get('pairs', 0)} | {info.get('prompts', 0)} |")
    lines += ["", "## Pairs per rule", "", "| rule | train | held-out |", "|---|---|---|"]
    for rule, counts in sorted(card.get("pairs_per_rule", {}).items()):
        lines.append(f"| {rule} | {counts.get('train', 0)} | {counts.get('heldout', 0)} |")
    lines += ["", "## Verifier rules", ""]
    for rule, text in sorted(card.get("rules", {}).items()):
        lines.append(f"- `{rule}`: {text}")
    groups = card.get("template_groups") or {"heldout_template": card.get("heldout_templates", [])}
    titles = {
        "train": "Training templates (the only ones pairs are trained on)",
        "heldout_template": "Held-out templates of training rules",
        "heldout_rule": "Held-out rules (never used to build a pair)",
    }
    for group, templates in groups.items():
        lines += ["", f"## {titles.get(group, group)}", ""]
        lines += [f"- `{template}`" for template in templates]
    lines += ["", "## Generation", "", "```json", json.dumps(card.get("generation", {}), indent=2)]
    lines += ["```", "", f"Seed: {card.get('seed')}", ""]
    return "\n".join(lines)
