"""Logging to stderr through rich, set up once per process."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler


class _LabRichHandler(RichHandler):
    """Marks the handler this module installed, so a second call does not add another."""


def setup_logging(level: str | int = "INFO") -> None:
    """Send log records to stderr with rich formatting; calling it again only changes the level."""
    root = logging.getLogger()
    if isinstance(level, str):
        level = level.upper()
    root.setLevel(level)
    if not any(isinstance(handler, _LabRichHandler) for handler in root.handlers):
        handler = _LabRichHandler(console=Console(stderr=True), show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        root.addHandler(handler)
