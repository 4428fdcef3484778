"""What Anthropic's failures mean, and what to do about them.

The kit (``modelport.http``) maps HTTP statuses (529 "overloaded" is a 5xx: a
:class:`~modelport.errors.TransientError`, retried), ``retry-after``, ``x-should-retry``,
request ids and transport failures. This module reads Anthropic's error body,
``{"type": "error", "error": {"type": ..., "message": ...}}``, into that mapping, and turns an
``error`` event in the middle of a stream (which arrives after a 200) into the same errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from modelport.errors import (
    AuthenticationError,
    BackendError,
    BackendTimeoutError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    TransientError,
)
from modelport.http import VendorError, read_error
from modelport.logs import redact

__all__ = ["ERROR_TYPES", "HINTS", "read_anthropic_error", "stream_error"]

#: Anthropic's error types and the core's classes, for errors without an HTTP status of their
#: own (``error`` events mid-stream). An unknown type is a :class:`TransientError`.
ERROR_TYPES: Mapping[str, type[BackendError]] = {
    "invalid_request_error": InvalidRequestError,
    "request_too_large": InvalidRequestError,
    "billing_error": InvalidRequestError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "rate_limit_error": RateLimitedError,
    "timeout_error": BackendTimeoutError,
    "api_error": TransientError,
    "overloaded_error": TransientError,
}

_BILLING = "the account's credit balance is too low: add credit in the Claude Console's billing"
_OVERLOADED = "Anthropic's API is overloaded; it is retried, or try again later"

#: What to do, by error class, instead of the kit's general advice.
HINTS: Mapping[type[BackendError], str] = {
    PermissionDeniedError: "the key is valid but not allowed to do this (check its workspace "
    "and model access in the Claude Console)",
    NotFoundError: "check the model id (`modelport models` lists them) and base_url",
}


def _hint(code: str | None) -> str | None:
    if code == "billing_error":
        return _BILLING
    if code == "overloaded_error":
        return _OVERLOADED
    return None


def read_anthropic_error(status: int, body: Any) -> VendorError | None:
    """The kit's ``read_error`` hook: Anthropic's error body, with what to do for an empty
    balance (not retried: waiting adds no credit) and an overloaded API (retried), and a 504
    ``timeout_error`` as a timeout."""
    found = read_error(status, body)
    if found is None:
        return None
    code = found.code
    if code == "billing_error":
        return attrs.evolve(found, retryable=False, hint=_BILLING)
    if code == "overloaded_error":
        return attrs.evolve(found, kind=TransientError, retryable=True, hint=_OVERLOADED)
    if code == "timeout_error" and status >= 500:
        return attrs.evolve(found, kind=BackendTimeoutError)
    return found


def stream_error(data: Mapping[str, Any], backend: str) -> BackendError:
    """The error an ``error`` event stands for: its type's class (see :data:`ERROR_TYPES`);
    ``overloaded_error`` and ``api_error`` are retryable, like their HTTP statuses."""
    inner = data.get("error")
    inner = inner if isinstance(inner, Mapping) else {}
    code, message = inner.get("type"), inner.get("message")
    code = code if isinstance(code, str) and code else None
    message = message if isinstance(message, str) else ""
    kind = ERROR_TYPES.get(code or "", TransientError)
    request_id = data.get("request_id")
    return kind(
        f"mid-stream {code or 'error'}: {redact(' '.join(message.split()))}".rstrip(": "),
        backend=backend,
        request_id=request_id if isinstance(request_id, str) else None,
        retryable=False if code == "billing_error" else None,
        hint=_hint(code) or HINTS.get(kind),
    )
