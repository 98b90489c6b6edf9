"""Prompts as files: one folder per prompt.

``<prompts_dir>/<name>/prompt.yaml`` declares the prompt's variables, model parameters, metadata
and how it is evaluated; ``template.txt`` holds the template with ``{{variables}}``;
``golden.jsonl`` (or a named built-in set) holds the golden examples. A template whose variables
do not match the declaration is refused when the folder is loaded, before anything is registered.

What a registry version holds is the :class:`PromptContent`: template, variables, the model it runs
on (``model.name``, optional) with its parameters, and its eval config (golden examples, scorers,
floor, scorer-code digest; see ``evalconfig``). Its ``digest`` covers all of them and decides
whether registering creates a new version.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prompt_registry.errors import PromptFileError, RegistryError
from prompt_registry.evalconfig import EvalConfig, EvalSpec, resolve

SPEC_FILE = "prompt.yaml"
TEMPLATE_FILE = "template.txt"
VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class ModelParams(BaseModel):
    """The model and its generation parameters; part of the prompt version (a change makes a new
    version). ``name``: the model the OpenAI-compatible endpoint serves under that name (the base,
    or an adapter served by name such as ``dpo``); None runs on the provider's own model."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1)
    max_new_tokens: int = Field(default=32, ge=1, le=2048)
    temperature: float = Field(default=0.0, ge=0, le=2)

    def recorded(self) -> dict[str, Any]:
        """The parameters as versions and runs record them (no ``name`` when none is set, so a
        version that names no model keeps the digest it had before models could be named)."""
        return self.model_dump(exclude_none=True)


class PromptSpec(BaseModel):
    """The contents of prompt.yaml."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    variables: list[str] = Field(min_length=1)
    model: ModelParams = ModelParams()
    metadata: dict[str, str] = {}
    eval: EvalSpec


def template_variables(template: str) -> list[str]:
    """The ``{{variables}}`` of a template, in order of first use."""
    return list(dict.fromkeys(VARIABLE.findall(template)))


@dataclass(frozen=True)
class PromptContent:
    """What one immutable prompt version holds."""

    name: str
    template: str
    variables: tuple[str, ...]
    params: ModelParams
    # None only for a registry version stored without one (the gate refuses to judge with it).
    eval_config: EvalConfig | None
    # Where it came from: "file", "registry vN", "<ref>:<path>".
    source: str = "file"
    version: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """sha256 of template, variables, parameters, the eval config and the scorer code:
        equal digests, equal versions."""
        config = self.eval_config
        canonical = json.dumps(
            {
                "template": self.template,
                "variables": sorted(self.variables),
                "params": self.params.recorded(),
                "eval_config": config.digest if config else None,
                "scorer_code": config.scorer_code if config else None,
            },
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def config(self) -> EvalConfig:
        """The eval config; a registry version stored without one cannot be judged."""
        if self.eval_config is None:
            raise RegistryError(
                f"{self.name} {self.label()} was registered without its eval config: the gate "
                "cannot judge with it (register the prompt again and promote that version)"
            )
        return self.eval_config

    def render(self, values: dict[str, Any]) -> str:
        """The template with every variable filled in; a missing variable is an error."""
        missing = [name for name in self.variables if name not in values]
        if missing:
            raise PromptFileError(f"prompt {self.name}: no value for {', '.join(missing)}")
        return VARIABLE.sub(lambda match: str(values[match.group(1)]), self.template)

    def label(self) -> str:
        return f"v{self.version}" if self.version is not None else self.source


@dataclass(frozen=True)
class PromptFolder:
    """A prompt folder on disk: its spec, template and location."""

    path: Path
    spec: PromptSpec
    template: str

    @property
    def name(self) -> str:
        return self.spec.name

    def content(self, source: str = "file") -> PromptContent:
        return PromptContent(
            name=self.spec.name,
            template=self.template,
            variables=tuple(self.spec.variables),
            params=self.spec.model,
            eval_config=resolve(self.spec.eval, self.path),
            source=source,
            metadata=dict(self.spec.metadata),
        )


def check_variables(name: str, template: str, declared: list[str]) -> None:
    """Refuse a template whose variables differ from the declared ones."""
    used = template_variables(template)
    undeclared = [v for v in used if v not in declared]
    unused = [v for v in declared if v not in used]
    if undeclared or unused:
        problems = []
        if undeclared:
            problems.append(f"template uses undeclared {', '.join(undeclared)}")
        if unused:
            problems.append(f"declared {', '.join(unused)} but the template never uses it")
        raise PromptFileError(f"prompt {name}: {'; '.join(problems)}")


def load_prompt_folder(path: Path) -> PromptFolder:
    """Read and validate one prompt folder."""
    spec_file, template_file = path / SPEC_FILE, path / TEMPLATE_FILE
    for required in (spec_file, template_file):
        if not required.is_file():
            raise PromptFileError(f"prompt folder {path} has no {required.name}")
    try:
        raw = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
        spec = PromptSpec.model_validate(raw)
    except yaml.YAMLError as error:
        raise PromptFileError(
            f"{spec_file}: not valid YAML ({str(error).splitlines()[0]})"
        ) from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in error.errors()
        )
        raise PromptFileError(f"{spec_file}: {problems}") from None
    if not NAME.match(spec.name) or spec.name != path.name:
        raise PromptFileError(
            f"{spec_file}: name {spec.name!r} must equal the folder name {path.name!r} "
            "(lower-case letters, digits and dashes)"
        )
    template = template_file.read_text(encoding="utf-8").rstrip("\n")
    check_variables(spec.name, template, spec.variables)
    return PromptFolder(path=path, spec=spec, template=template)


def prompt_names(prompts_dir: Path) -> list[str]:
    if not prompts_dir.is_dir():
        raise PromptFileError(f"prompts folder {prompts_dir} does not exist")
    return sorted(p.name for p in prompts_dir.iterdir() if (p / SPEC_FILE).is_file())


def load_prompt(prompts_dir: Path, name: str) -> PromptFolder:
    folder = prompts_dir / name
    if not (folder / SPEC_FILE).is_file():
        known = ", ".join(prompt_names(prompts_dir)) or "none"
        raise PromptFileError(f"no prompt {name!r} in {prompts_dir} (known: {known})")
    return load_prompt_folder(folder)


def load_all(prompts_dir: Path) -> list[PromptFolder]:
    return [load_prompt_folder(prompts_dir / name) for name in prompt_names(prompts_dir)]
