"""What Gemini's failures mean, on top of the kit's status table.

Google's error body is ``{"error": {"code", "message", "status", "details": [...]}}``. The
kit reads its message; this module adds what only Google's body says: a bad key is answered
with 400 ``INVALID_ARGUMENT`` (an :class:`~modelport.errors.AuthenticationError` here), and a
429 names its wait in a ``google.rpc.RetryInfo`` detail (``"retryDelay": "30s"``), used when no
``retry-after`` header came.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from modelport.errors import (
    AuthenticationError,
    BackendError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
)
from modelport.http import VendorError, read_error

__all__ = ["event_status", "hints", "read_gemini_error", "retry_delay"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")
_BAD_KEY = re.compile(r"API key (not valid|expired|invalid)", re.IGNORECASE)
_KEY_PAGE = "https://aistudio.google.com/apikey"


def hints(key_env: str) -> dict[type[BackendError], str]:
    """What to do, by error class, for a backend whose key is in ``$key_env``."""
    return {
        AuthenticationError: f"check the API key in ${key_env} (keys: {_KEY_PAGE})",
        PermissionDeniedError: f"the key in ${key_env} may not do this: check that its project "
        "has the Generative Language API enabled and access to the model",
        NotFoundError: "check the model id (`modelport models` lists them) and base_url",
        RateLimitedError: "the quota of the key's project is spent for now; retry later, lower "
        "[limits] for this backend, or raise the quota in Google AI Studio",
    }


def _error(body: Any) -> Mapping[str, Any]:
    inner = body.get("error") if isinstance(body, Mapping) else None
    return inner if isinstance(inner, Mapping) else {}


def _details(body: Any) -> list[Mapping[str, Any]]:
    details = _error(body).get("details")
    return [d for d in details if isinstance(d, Mapping)] if isinstance(details, list) else []


def retry_delay(body: Any) -> float | None:
    """The seconds a ``google.rpc.RetryInfo`` detail asks to wait, if the body has one."""
    for detail in _details(body):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            found = _DURATION.match(str(detail.get("retryDelay", "")))
            if found:
                return float(found[1])
    return None


def read_gemini_error(status: int, body: Any) -> VendorError | None:
    """The kit's ``read_error`` hook: Google's body, its ``RetryInfo`` as the wait, and a bad
    key answered with a 400."""
    found = read_error(status, body)
    if found is None:
        return None
    found = attrs.evolve(found, retry_after=retry_delay(body))
    reasons = {str(d.get("reason")) for d in _details(body)}
    if status == 400 and ("API_KEY_INVALID" in reasons or _BAD_KEY.search(found.message)):
        return attrs.evolve(found, kind=AuthenticationError)
    if status == 400 and found.code == "FAILED_PRECONDITION":
        hint = "Google refuses the call from here: check the key's region and billing"
        return attrs.evolve(found, hint=hint)
    return found


def event_status(body: Any) -> int | None:
    """The HTTP status an ``{"error": ...}`` event sent mid-stream names (its ``code``), if
    any."""
    code = _error(body).get("code")
    return code if isinstance(code, int) and not isinstance(code, bool) and code >= 400 else None
