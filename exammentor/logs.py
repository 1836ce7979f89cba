"""Structured JSON logs with the request and command ids of the work in hand.

Ids are bound with :func:`bind_ids` into structlog's context variables, so every log line
written while a command or request is handled carries them without passing them around.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Sets up structlog and the standard library to write one JSON object per line.

    Args:
        service: Name written into every line.
        level: Minimum level name.
        fmt: ``json`` for machines, ``console`` for people at a terminal.
    """
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        # Plain tracebacks: structlog's default (rich, with every frame's locals) renders
        # slowly enough to stall a process that logs many errors at once (a server
        # cancelling hundreds of requests at shutdown), and would print secrets held in
        # locals into the log.
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("msg"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries (aiokafka, uvicorn, asyncpg) log through the standard library: route them
    # through the same JSON renderer so one parser reads every line.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.EventRenamer("msg"),
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.getLevelName(level.upper()), logging.INFO))
    for noisy in ("aiokafka", "kafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def bind_ids(**ids: str | None) -> Iterator[None]:
    """Binds ids (request_id, command_id, user_id ...) to every log line in this context."""
    present = {k: v for k, v in ids.items() if v}
    with structlog.contextvars.bound_contextvars(**present):
        yield


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """Returns the project's logger; ``name`` becomes the ``logger`` field."""
    log: structlog.stdlib.BoundLogger = (
        structlog.get_logger(name) if name else structlog.get_logger()
    )
    return log
