"""The errors of the quantizer that a user can fix: its CLI prints each as one line (exit 2)."""

from __future__ import annotations

from roadmap_lab.errors import LabError


class LlmQuantizeError(LabError):
    """The base of the quantizer's errors; the message says what is wrong and what to do."""


class UnknownSchemeError(LlmQuantizeError, ValueError):
    """A quantization scheme the quantizer does not make."""
