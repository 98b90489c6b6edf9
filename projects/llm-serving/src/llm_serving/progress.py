"""Progress bars for the long steps (vLLM and HF runs), on stderr beside the log."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def _log_console() -> Console:
    # The logging handler's console: log lines then print above the bar instead of through it.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RichHandler):
            return handler.console
    return Console(stderr=True)


def progress_bar() -> Progress:
    """A rich progress display; use as ``with progress_bar() as progress: ...``."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_log_console(),
    )
