"""How errors are written in the console log format (the tests' and a developer's)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from exammentor.logs import configure_logging


@pytest.fixture
def logging_restored() -> Iterator[None]:
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


def fail(secret: str) -> None:
    raise ValueError("boom")


def test_an_error_is_a_plain_traceback_without_the_frames_locals(
    logging_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Configured here, not in a fixture: pytest swaps sys.stderr between setup and call.
    configure_logging("test", "INFO", "console")
    secret = "s3cret-in-a-local"  # what must not reach the log
    try:
        fail(secret)
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        structlog.get_logger().exception("handler failed")
    err = capsys.readouterr().err
    assert err.count("Traceback (most recent call last):") == 2
    assert "ValueError: boom" in err
    assert secret not in err
    assert "╭" not in err  # no rich panel
