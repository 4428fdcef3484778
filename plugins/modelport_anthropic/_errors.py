"""What Anthropic's failures mean, and what to do about them.

The kit (``modelport.http``) maps HTTP statuses (529 "overloaded" is a 5xx: a
:class:`~modelport.errors.TransientError`, retried), ``retry-after``, ``x-should-retry``,
request ids, transport failures, and ``error`` events in the middle of a stream (which arrive
after a 200: :meth:`~modelport.http.HTTPClient.event_error`). This module reads Anthropic's
error body, ``{"type": "error", "error": {"type": ..., "message": ...}}``, for that mapping:
its type says the error's class, which is all an ``error`` event has to go by.
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

__all__ = ["ERROR_TYPES", "HINTS", "read_anthropic_error"]

#: Anthropic's error types and the core's classes (they agree with the HTTP statuses the API
#: sends them with; an ``error`` event mid-stream has no status of its own). An unknown type
#: is left to the status (mid-stream: a :class:`TransientError`).
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


def read_anthropic_error(status: int, body: Any) -> VendorError | None:
    """The kit's ``read_error`` hook: Anthropic's error body, its type's class (see
    :data:`ERROR_TYPES`), and what to do for an empty balance (not retried: waiting adds no
    credit) and an overloaded API (retried)."""
    found = read_error(status, body)
    if found is None:
        return None
    code = found.code
    kind = ERROR_TYPES.get(code or "")
    if code == "billing_error":
        return attrs.evolve(found, kind=kind, retryable=False, hint=_BILLING)
    if code == "overloaded_error":
        return attrs.evolve(found, kind=kind, retryable=True, hint=_OVERLOADED)
    return attrs.evolve(found, kind=kind) if kind is not None else found
