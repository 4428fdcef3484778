"""Anthropic's failures mapped into the core's error tree, and the key kept out of every output."""

from __future__ import annotations

import logging
import traceback

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from modelport import ChatRequest, Message
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
from modelport.testing import RecordingSleep

from .conftest import ERRORS, KEY, MakeAsyncHub, MakeHub, error, message, ok

#: Status, the class it becomes, whether it is retried, and what the hint says.
FAILURES = [
    (400, InvalidRequestError, False, None),
    (401, AuthenticationError, False, "$ANTHROPIC_API_KEY"),
    (402, InvalidRequestError, False, "credit balance"),
    (403, PermissionDeniedError, False, "Claude Console"),
    (404, NotFoundError, False, "model id"),
    (413, InvalidRequestError, False, None),
    (429, RateLimitedError, True, "rate limiting"),
    (500, TransientError, True, "retry later"),
    (504, BackendTimeoutError, True, "timeout_s"),
    (529, TransientError, True, "overloaded"),
]


@pytest.mark.parametrize(("status", "cls", "retried", "hint"), FAILURES)
def test_http_failures_are_mapped_and_retried_as_they_should(
    api: respx.MockRouter,
    make_hub: MakeHub,
    status: int,
    cls: type[BackendError],
    retried: bool,
    hint: str | None,
) -> None:
    route = api.post("/v1/messages").mock(return_value=error(status, ERRORS[status], "It broke."))
    with pytest.raises(cls) as caught:
        make_hub().ask("hi")
    failure = caught.value
    assert type(failure) is cls
    assert (failure.status, failure.retryable) == (status, retried)
    assert failure.request_id == f"req_{status}"
    assert f"HTTP {status}: It broke." in str(failure)
    assert route.call_count == (3 if retried else 1)
    if hint is not None:
        assert hint in (failure.hint or "")


@pytest.mark.parametrize(("status", "cls", "retried", "hint"), FAILURES[1::3])
async def test_async_http_failures_are_mapped_alike(
    api: respx.MockRouter,
    make_async_hub: MakeAsyncHub,
    status: int,
    cls: type[BackendError],
    retried: bool,
    hint: str | None,
) -> None:
    route = api.post("/v1/messages").mock(return_value=error(status, ERRORS[status]))
    with pytest.raises(cls) as caught:
        await make_async_hub().ask("hi")
    assert (type(caught.value), caught.value.retryable) == (cls, retried)
    assert route.call_count == (3 if retried else 1)


@pytest.mark.parametrize("header", [{"retry-after": "2"}, {"retry-after-ms": "2000"}])
def test_a_429_is_retried_after_the_wait_asked_for(
    api: respx.MockRouter,
    make_hub: MakeHub,
    sleeps: RecordingSleep,
    header: dict[str, str],
) -> None:
    route = api.post("/v1/messages")
    route.side_effect = [error(429, "rate_limit_error", **header), ok(message("Done."))]
    assert make_hub().ask("hi").text == "Done."
    assert route.call_count == 2
    assert sleeps.waits == [2.0]


async def test_async_529_then_success_is_retried(
    api: respx.MockRouter, make_async_hub: MakeAsyncHub
) -> None:
    route = api.post("/v1/messages")
    route.side_effect = [error(529, "overloaded_error", "Overloaded"), ok(message("Done."))]
    answer = await make_async_hub().ask("hi")
    assert (answer.text, route.call_count) == ("Done.", 2)


def test_a_connection_failure_is_a_connection_error(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    api.post("/v1/messages").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(BackendConnectionError):
        make_hub(retry={"attempts": 1}).ask("hi")


def _outputs(failure: BaseException) -> str:
    return "".join(traceback.format_exception(failure)) + repr(failure) + str(failure.args)


def test_the_key_never_shows_in_errors_chains_reprs_or_logs(
    api: respx.MockRouter, make_hub: MakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    echoed = f"invalid x-api-key: {KEY}"
    api.post("/v1/messages").mock(return_value=error(401, "authentication_error", echoed))
    api.get("/v1/models").mock(side_effect=httpx.ConnectError(f"refused for {KEY}"))
    hub = make_hub(retry={"attempts": 1})
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs, pytest.raises(AuthenticationError) as auth:
        hub.ask("hi")
    with pytest.raises(BackendConnectionError) as refused:
        hub.models()
    chat = hub.backend("chat")
    with pytest.raises(AuthenticationError) as direct:
        chat.complete(ChatRequest([Message("user", "hi")]))
    shown: list[str] = [
        _outputs(auth.value),
        _outputs(refused.value),
        _outputs(direct.value),
        repr(chat),
        repr(chat.http),
        repr(hub),
        repr(hub.settings),
        caplog.text,
        repr(logs),
    ]
    assert "invalid x-api-key: " in str(auth.value)  # the message, its key masked
    for text in shown:
        assert KEY not in text
