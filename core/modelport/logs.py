"""Logging. The library never configures logging for the host; the CLI does.

Library events (retries, failures, plugins that could not load) are structlog events bound to
the call (backend, operation, model, dialogue, attempt). When the host has configured structlog,
they go through its configuration; otherwise they go to the standard library logger
``modelport`` as ``event key=value ...`` lines, following the host's ``logging`` setup and never
landing on stdout by surprise.

:func:`redact_secrets` is a structlog processor that masks secrets; hosts can add it to their
own chains. :func:`configure_cli_logging` is what ``modelport`` (the command) uses.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

__all__ = ["configure_cli_logging", "get_logger", "redact_secrets"]

_RENDER = structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True)
_SECRET_KEY = re.compile(r"(api_?key|secret|token|password|authorization)", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{4})[A-Za-z0-9_\-]{12,}|(Bearer )\S{8,}")


def get_logger(name: str = "modelport") -> Any:
    """A structlog logger for ``name``; get one per event (events are rare)."""
    if structlog.is_configured():
        return structlog.get_logger(name)
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=[redact_secrets, _RENDER],
        wrapper_class=structlog.stdlib.BoundLogger,
    )


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_VALUE.sub(lambda m: (m.group(1) or m.group(2)) + "***", value)
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: masks values under secret-looking keys and key-like strings."""
    for key, value in list(event_dict.items()):
        if _SECRET_KEY.search(key) and value:
            event_dict[key] = "***"
        else:
            event_dict[key] = _mask(value)
    return event_dict


def configure_cli_logging(
    fmt: Literal["console", "json"] = "console", level: int = logging.WARNING
) -> None:
    """Configure structlog for the command line: to stderr, as console text or JSON lines."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
