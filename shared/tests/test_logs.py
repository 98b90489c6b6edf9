from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from rich.logging import RichHandler
from roadmap_lab.logs import setup_logging


@pytest.fixture
def clean_root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield root
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def test_setup_logging_is_idempotent_and_logs_to_stderr(
    clean_root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info")
    setup_logging("WARNING")
    rich_handlers = [h for h in clean_root_logger.handlers if isinstance(h, RichHandler)]
    assert len(rich_handlers) == 1
    assert clean_root_logger.level == logging.WARNING

    logging.getLogger("demo").info("hidden message")
    logging.getLogger("demo").warning("visible message")
    captured = capsys.readouterr()
    assert "visible message" in captured.err
    assert "hidden message" not in captured.err
    assert captured.out == ""
