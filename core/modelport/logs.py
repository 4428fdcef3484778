"""Logging. The library never configures logging for the host; the CLI does.

Library events (retries, failures, plugins that could not load) are structlog events bound to
the call (backend, operation, model, dialogue, attempt). When the host has configured structlog,
they go through its configuration; otherwise they go to the standard library logger
``modelport`` as ``event key=value ...`` lines, following the host's ``logging`` setup and never
landing on stdout by surprise.

No event carries a secret, whatever the host configured: every event modelport logs passes
:func:`redact_secrets` first, before the host's own processors (``structlog.testing``'s
``capture_logs`` included). The standard library logger ``httpx``, which writes request URLs
with their query strings, gets a :class:`RedactingFilter` when this module is imported; a
backend whose vendor SDK logs through ``logging`` calls :func:`protect_loggers` for it.

The redaction itself lives in one place (:func:`redact` for text, :func:`redact_data` for plain
data, :func:`redact_exception` for an exception and its chain; see ``modelport._redact``) and is
what the errors, the reprs and ``modelport config show`` use too. Backends call
:func:`register_secret` for a credential that is not a :class:`~modelport.Secret` (which
registers itself), or :func:`register_secrets_in` for the credentials in settings-like data.
:func:`configure_cli_logging` is what ``modelport`` (the command) uses.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

import structlog

from ._redact import (
    MASK,
    is_secret_name,
    redact,
    redact_data,
    redact_exception,
    register_secret,
    register_secrets_in,
)

__all__ = [
    "RedactingFilter",
    "configure_cli_logging",
    "get_logger",
    "protect_loggers",
    "redact",
    "redact_data",
    "redact_exception",
    "redact_secrets",
    "register_secret",
    "register_secrets_in",
]

_RENDER = structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True)


def get_logger(name: str = "modelport") -> Any:
    """A structlog logger for ``name``; get one per event (events are rare).

    Its events are redacted first, then go through the host's structlog configuration (read
    when the event is logged), or to the standard library logger ``name`` when the host has
    not configured structlog.
    """
    if structlog.is_configured():
        return structlog.wrap_logger(
            None, processors=[redact_secrets, _host_processors], logger_factory_args=(name,)
        )
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=[redact_secrets, _RENDER],
        wrapper_class=structlog.stdlib.BoundLogger,
    )


def _host_processors(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """The processors the host configured, as they are now."""
    result: Any = event_dict
    for processor in structlog.get_config()["processors"]:
        result = processor(logger, method, result)
    return result


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, BaseException):
        return redact_exception(value)  # in place: renderers format it later
    if isinstance(value, Mapping | list | tuple):
        return redact_data(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    shown = repr(value)
    clean = redact(shown)
    return value if clean == shown else clean


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: masks values under secret-looking keys, and every secret in the
    other values (known secrets, URL credentials, key-shaped strings), exceptions included."""
    for key, value in list(event_dict.items()):
        if key == "exc_info":
            exc = sys.exc_info()[1] if value is True else value
            if isinstance(exc, tuple):
                exc = exc[1]
            if isinstance(exc, BaseException):
                redact_exception(exc)
        elif is_secret_name(key) and value and not isinstance(value, bool | int | float):
            event_dict[key] = MASK
        else:
            event_dict[key] = _redact_value(value)
    return event_dict


class RedactingFilter(logging.Filter):
    """A :mod:`logging` filter that masks the secrets in a record's message (it keeps every
    record). Attach it to a logger that may write secrets: a URL with a signature, say."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the handler's to report, not ours
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            redact_exception(record.exc_info[1])
        return True


def protect_loggers(*names: str) -> None:
    """Attach a :class:`RedactingFilter` to each standard library logger named (once).

    A logger's filters see only the records logged through that very logger, not those of
    its children: name each logger that writes (``"vendor"``, ``"vendor._client"``).
    """
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


protect_loggers("httpx")  # the core fetches image URLs with it, and backends use it


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
