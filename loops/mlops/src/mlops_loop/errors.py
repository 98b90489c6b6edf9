"""The loop's errors: the CLI prints them as one line and exits with status 2."""

from __future__ import annotations

from roadmap_lab.errors import LabError


class MlopsLoopError(LabError):
    """Bad input or configuration; the message says what is wrong and how to fix it."""

