"""The errors a user can fix: the CLI prints each as one line and exits 2 (roadmap_lab.cli)."""

from __future__ import annotations

from roadmap_lab.errors import LabError


class LLMAlignmentError(LabError):
    """Base of this project's user errors; the message says what is wrong."""


class PreferenceDataError(LLMAlignmentError):
    """Preference data that cannot be read or is missing; the message names the file and row."""


class ConfigError(LLMAlignmentError):
    """A YAML config or option that cannot be used; the message says which."""


class AdapterError(LLMAlignmentError):
    """A folder that holds no usable LoRA adapter (none at all, or one vLLM cannot load)."""
