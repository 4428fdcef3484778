"""What OpenAI adds to the kit's error mapping: its error body, and the SDK's exceptions.

The HTTP backend kit (:mod:`modelport.http`) maps statuses, ``retry-after``,
``x-should-retry``, request ids and transport failures for every backend; this module reads
OpenAI's error body into that mapping (:func:`error_reader`: quota exhaustion is not retried,
a 404 says whether the model or the base URL is wrong), turns a refusal to fine-tune into
:class:`~modelport.errors.UnsupportedError` (:func:`training_refusal`), and maps the SDK's
exceptions, raised only by the Files API calls the SDK makes (:func:`sdk_error`), onto the same
mapping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, cast

import httpx

from modelport.errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    ResponseError,
    TransientError,
    UnsupportedError,
)
from modelport.http import HTTPClient, VendorError, read_error
from modelport.logs import protect_loggers, redact, redact_exception

__all__ = ["OPENAI_ERRORS", "error_reader", "sdk_error", "training_refusal"]

# The SDK logs through `logging`; its messages get the same redaction as ours.
protect_loggers("openai", "openai._base_client")

#: Stands for "decide by the HTTP status" (through the kit) in :data:`OPENAI_ERRORS`.
BY_STATUS = None

#: Every exception class the openai SDK defines, by name. A test fails when the SDK grows
#: one that is missing here. Subclasses of ``APIStatusError`` carry the response, which the
#: kit maps by its status and body like any other; connection failures carry the transport's.
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

_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
_QUOTA_HINT = "the account is out of credit or quota: check billing at your provider"
_UNDER_V1 = "OpenAI-compatible servers usually serve under /v1"
_MODEL_HINT = "check the model name or id (`modelport models` lists the models)"

# How providers word "you may not fine-tune (any more)".
_REFUSAL = re.compile(
    r"fine[- _]?tun\w*.{0,80}?(not (available|supported|allowed|enabled|permitted)"
    r"|no longer|deprecat|disabled|unavailable|not accepting|stopped)"
    r"|(not (available|supported|allowed|enabled|permitted)|no longer|unavailable)"
    r".{0,80}?fine[- _]?tun",
    re.IGNORECASE | re.DOTALL,
)


def error_reader(base_url: str) -> Callable[[int, Any], VendorError | None]:
    """The kit's ``read_error`` hook for a server at ``base_url``."""
    shown = redact(base_url)

    def read(status: int, body: Any) -> VendorError | None:
        found = read_error(status, body)
        message = found.message if found is not None else ""
        code = found.code if found is not None else None
        if status == 429 and code in _QUOTA_CODES:
            return VendorError(
                message, code=code, retryable=False, hint=_QUOTA_HINT
            )  # waiting adds no credit
        if status == 404:
            # An HTML or plain-text 404, or a base URL not ending in /v1, is a wrong address.
            if code != "model_not_found" and (
                not isinstance(body, Mapping) or not shown.rstrip("/").endswith("/v1")
            ):
                hint = f"check base_url, now {shown}: {_UNDER_V1}"
                return VendorError(message, code=code, hint=hint)
            return VendorError(message, code=code, hint=_MODEL_HINT)
        return found

    return read


def training_refusal(error: BackendError) -> BackendError:
    """``error`` from an upload or a job creation, or the
    :class:`~modelport.errors.UnsupportedError` it stands for when the server refuses (or
    does not offer) fine-tuning: a 403 or a 404 there, or a 400/422 that says so."""
    status = error.status
    if status is None:
        return error
    if not (status in (403, 404) or (status in (400, 422) and _REFUSAL.search(error.message))):
        return error
    refused = UnsupportedError(
        error.message.removeprefix(f"{error.backend}: "),
        backend=error.backend,
        status=status,
        request_id=error.request_id,
        retryable=False,
        hint="the server refuses, or does not offer, fine-tuning for this account or model "
        "(OpenAI accepts no new fine-tuning jobs from 2027-01-06); train with another backend: "
        "[capabilities] training = <name>",
    )
    refused.message = error.message
    return refused


def sdk_error(exc: BaseException, http: HTTPClient) -> BackendError | None:
    """The core error for an exception of the SDK, or ``None`` when ``exc`` is none (a bug,
    which must propagate as it is)."""
    name = next(
        (
            cls.__name__
            for cls in type(exc).__mro__
            if cls.__module__.partition(".")[0] == "openai" and cls.__name__ in OPENAI_ERRORS
        ),
        None,
    )
    if name is None:
        return None
    redact_exception(exc)  # in place: it is chained behind our error
    kind = OPENAI_ERRORS[name]
    response = getattr(exc, "response", None)
    if kind is BY_STATUS and response is not None:
        return http.status_error(cast(httpx.Response, response))
    cause = exc.__cause__
    if isinstance(cause, httpx.HTTPError):
        return http.transport_error(cause)
    kind = kind or ResponseError
    return kind(redact(" ".join(str(exc).split())), backend=http.backend)
