"""Ollama's failures, mapped into modelport's error tree in one place."""

from __future__ import annotations

import json

import httpx

from modelport.errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    TransientError,
)

_BY_STATUS: dict[int, type[BackendError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitedError,
}

_HINTS: dict[type[BackendError], str] = {
    AuthenticationError: "set the variable named by api_key_env to the proxy's token",
    NotFoundError: "pull the model first (`ollama pull <model>`), or check the model name",
    BackendConnectionError: "is Ollama running? Start it with `ollama serve`, or check base_url",
}


def error_message(body: bytes) -> str:
    """The ``error`` text of an Ollama error body, or the body itself."""
    try:
        found = json.loads(body).get("error")
    except (ValueError, AttributeError):
        found = None
    return str(found) if found else body.decode("utf-8", "replace")[:200] or "no details"


def from_status(backend: str, status: int, body: bytes, retry_after: str | None) -> BackendError:
    """The error for an HTTP failure ``status`` with response ``body``."""
    kind = _BY_STATUS.get(status)
    if kind is None:
        kind = TransientError if status >= 500 else InvalidRequestError
    seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
    return kind(
        error_message(body),
        backend=backend,
        status=status,
        retry_after=seconds,
        hint=_HINTS.get(kind),
    )


def from_transport(backend: str, exc: httpx.TransportError) -> BackendError:
    """The error for a request that got no (complete) answer."""
    if isinstance(exc, httpx.TimeoutException):
        return BackendTimeoutError(
            f"no answer in time ({type(exc).__name__})",
            backend=backend,
            hint="raise timeout_s: a model loading for the first time can be slow",
        )
    return BackendConnectionError(
        f"could not talk to the server: {exc}", backend=backend, hint=_HINTS[BackendConnectionError]
    )
