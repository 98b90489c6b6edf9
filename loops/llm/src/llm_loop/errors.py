"""The loop's errors: the CLI prints them as one line and exits with status 2."""

from __future__ import annotations

from roadmap_lab.errors import LabError


class LlmLoopError(LabError):
    """Bad input or configuration, or a step that failed; the message says what to do."""
