"""Every failure of the openai SDK (and of the HTTP client under it) mapped into the core's
error tree, in one place.

The SDK never retries (``max_retries=0``); what this module decides (``retryable`` and
``retry_after``) is what the core's retry policy acts on.

Servers echo what they were sent, and the SDK's messages quote the server's body: the vendor
error is scrubbed in place (:func:`modelport.logs.redact_exception`: the key, custom header
keys, URL credentials, key-shaped strings) before it is chained, so neither our message nor the
chain behind it (``__cause__``, ``__context__``) shows a credential.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from typing import Any

import attrs

from modelport import Secret
from modelport.errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ResponseError,
    TransientError,
    UnsupportedError,
)
from modelport.logs import protect_loggers, redact, redact_exception

__all__ = ["HTTPX_ERRORS", "OPENAI_ERRORS", "ErrorContext", "map_error", "retry_after"]

# The SDK logs through `logging`; its messages get the same redaction as ours.
protect_loggers("openai", "openai._base_client")

#: Stands for "decide by the HTTP status" in :data:`OPENAI_ERRORS`.
BY_STATUS = None

#: Every exception class the openai SDK defines, by name. A test fails when the SDK grows
#: one that is missing here. Subclasses of ``APIStatusError`` are decided by their status
#: (the SDK derives the class from it), so a status the SDK has no class for still maps.
OPENAI_ERRORS: Mapping[str, type[BackendError] | None] = {
    "OpenAIError": ResponseError,
    "APIError": ResponseError,
    "APIResponseValidationError": ResponseError,
    "APIStatusError": BY_STATUS,
    "BadRequestError": BY_STATUS,
    "AuthenticationError": BY_STATUS,
    "OAuthError": AuthenticationError,
    "SubjectTokenProviderError": AuthenticationError,
    "PermissionDeniedError": BY_STATUS,
    "NotFoundError": BY_STATUS,
    "ConflictError": BY_STATUS,
    "UnprocessableEntityError": BY_STATUS,
    "RateLimitError": BY_STATUS,
    "InternalServerError": BY_STATUS,
    "APIConnectionError": BackendConnectionError,
    "APITimeoutError": BackendTimeoutError,
    "LengthFinishReasonError": ResponseError,
    "ContentFilterFinishReasonError": ResponseError,
    "InvalidWebhookSignatureError": ResponseError,
    "WebSocketConnectionClosedError": BackendConnectionError,
    "WebSocketQueueFullError": TransientError,
}

#: Failures of the HTTP client itself, seen while a streamed body is read.
HTTPX_ERRORS: Mapping[str, type[BackendError]] = {
    "TimeoutException": BackendTimeoutError,
    "TransportError": BackendConnectionError,
    "DecodingError": ResponseError,
}

_STATUS: Mapping[int, type[BackendError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: BackendTimeoutError,
    409: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitedError,
}

# How providers word "you may not fine-tune (any more)".
_REFUSAL = re.compile(
    r"fine[- _]?tun\w*.{0,80}?(not (available|supported|allowed|enabled|permitted)"
    r"|no longer|deprecat|disabled|unavailable|not accepting|stopped)"
    r"|(not (available|supported|allowed|enabled|permitted)|no longer|unavailable)"
    r".{0,80}?fine[- _]?tun",
    re.IGNORECASE | re.DOTALL,
)
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})


@attrs.frozen(repr=False)
class ErrorContext:
    """What the mapping needs to know to say where and what to do.

    :ivar base_url: the server's URL as messages show it (user-info and credential query
        parameters masked).
    """

    backend: str
    base_url: str = attrs.field(converter=redact)
    api_key_env: str
    timeout_s: float
    secret: Secret | None = None

    def redact(self, text: str) -> str:
        """``text`` with every secret masked, the key included, should the server echo it."""
        value = self.secret.reveal() if self.secret is not None else ""
        return redact(text.replace(value, "***") if len(value) >= 4 else text)

    def __repr__(self) -> str:
        return f"ErrorContext(backend={self.backend!r}, base_url={self.base_url!r})"


def _family(exc: BaseException) -> tuple[str, str] | None:
    for cls in type(exc).__mro__:
        root = cls.__module__.partition(".")[0]
        if root == "openai" and cls.__name__ in OPENAI_ERRORS:
            return root, cls.__name__
        if root in ("httpx", "httpx2") and cls.__name__ in HTTPX_ERRORS:
            return root, cls.__name__
    return None


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, else ``retry-after`` given
    in seconds or as an HTTP date. ``None`` when absent or unreadable."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _body_error(body: Any) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        inner = body.get("error")
        return inner if isinstance(inner, Mapping) else body
    return {}


def _provider_message(exc: BaseException) -> tuple[str, str | None]:
    """The provider's own message and error code, if it sent them."""
    error = _body_error(getattr(exc, "body", None))
    message = error.get("message")
    code = error.get("code")
    text = message if isinstance(message, str) and message else str(exc)
    return " ".join(text.split()), code if isinstance(code, str) else None


def map_error(
    exc: BaseException, context: ErrorContext, *, training: bool = False
) -> BackendError | None:
    """The core error for ``exc``, or ``None`` when ``exc`` is not an SDK or HTTP failure
    (a bug, which must propagate as it is).

    :param training: the call was an upload or a job creation, where a refusal to fine-tune
        becomes :class:`~modelport.errors.UnsupportedError` carrying the provider's message.
    """
    family = _family(exc)
    if family is None:
        return None
    root, name = family
    redact_exception(exc)  # in place: it is chained behind our error
    response = getattr(exc, "response", None)
    status: int | None = getattr(exc, "status_code", None)
    headers: Mapping[str, str] = getattr(response, "headers", None) or {}
    message, code = _provider_message(exc)
    message = context.redact(message)
    request_id = headers.get("x-request-id") or getattr(exc, "request_id", None)

    if root == "openai":
        cls = OPENAI_ERRORS[name]
        if cls is BY_STATUS:
            cls = _by_status(status)
    else:
        cls = HTTPX_ERRORS[name]
        message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__

    retryable: bool | None = None
    hint = _hint(cls, context, code)
    if issubclass(cls, NotFoundError):
        hint = _not_found_hint(exc, context, code)
    if cls is RateLimitedError and code in _QUOTA_CODES:
        retryable = False  # waiting does not add credit
    should_retry = headers.get("x-should-retry")
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"

    if training and status is not None and _is_refusal(status, message):
        cls, retryable = UnsupportedError, False
        hint = (
            "the server refuses, or does not offer, fine-tuning for this account or model "
            "(OpenAI accepts no new "
            "fine-tuning jobs from 2027-01-06); train with another backend: "
            "[capabilities] training = <name>"
        )
    if status is not None:
        message = f"HTTP {status}: {message}"
    return cls(
        message,
        backend=context.backend,
        status=status,
        request_id=request_id,
        retryable=retryable,
        retry_after=retry_after(headers) if status is not None else None,
        hint=hint,
    )


def _by_status(status: int | None) -> type[BackendError]:
    if status is None:
        return ResponseError
    if status in _STATUS:
        return _STATUS[status]
    if status >= 500:
        return TransientError
    if status >= 400:
        return InvalidRequestError
    return ResponseError


def _is_refusal(status: int, message: str) -> bool:
    # 403: not for this account; 404 on an upload or a creation: no such endpoint here.
    return status in (403, 404) or (status in (400, 422) and bool(_REFUSAL.search(message)))


_JOB_PATH = re.compile(r"/fine_tuning/jobs/[^/]+")


def _not_found_hint(exc: BaseException, context: ErrorContext, code: str | None) -> str:
    """What a 404 most likely means: an unknown job (on a job's path), a base URL that misses
    the API's path (an HTML or plain-text 404, or a URL not ending in /v1), else a model name
    the server does not know."""
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    if _JOB_PATH.search(str(getattr(url, "path", ""))):
        return "no such job; list them with: modelport jobs list --remote"
    body = getattr(exc, "body", None)
    served_json = isinstance(body, Mapping)
    if code != "model_not_found" and (
        not served_json or not context.base_url.rstrip("/").endswith("/v1")
    ):
        return (
            f"check base_url, now {context.base_url}: OpenAI-compatible servers usually serve "
            "under /v1"
        )
    return "check the model name or id (`modelport models` lists the models)"


def _hint(cls: type[BackendError], context: ErrorContext, code: str | None) -> str | None:
    if code in _QUOTA_CODES:
        return "the account is out of credit or quota: check billing at your provider"
    if issubclass(cls, PermissionDeniedError):
        return "the key is valid but not allowed to do this (check its project and model access)"
    if issubclass(cls, AuthenticationError):
        return f"check the API key in ${context.api_key_env} for {context.base_url}"
    if issubclass(cls, NotFoundError):
        return "check the model name or id (`modelport models` lists the models)"
    if issubclass(cls, RateLimitedError):
        return "the server kept rate limiting; retry later or lower [limits] for this backend"
    if issubclass(cls, BackendTimeoutError):
        return (
            f"no answer within {context.timeout_s:g}s; raise [backends.{context.backend}] "
            "timeout_s or retry later"
        )
    if issubclass(cls, BackendConnectionError):
        return f"could not talk to {context.base_url}; check base_url and the network"
    if issubclass(cls, TransientError):
        return "the server failed; retry later"
    return None
