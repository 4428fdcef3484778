"""Every failure mapped into the core's error tree, and retried exactly as the policy allows."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx

import modelport_openai._errors as mapping
import openai
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
from modelport.http import HTTPClient, retry_after
from modelport.testing import RecordingSleep

from .conftest import KEY, MakeAsyncHub, MakeHub, completion, error, ok

ATTEMPTS = 3  # the retry policy the hubs in these tests use


@pytest.mark.parametrize(
    ("status", "expected", "attempts"),
    [
        (400, InvalidRequestError, 1),
        (401, AuthenticationError, 1),
        (403, PermissionDeniedError, 1),
        (404, NotFoundError, 1),
        (409, InvalidRequestError, 1),
        (422, InvalidRequestError, 1),
        (429, RateLimitedError, ATTEMPTS),
        (500, TransientError, ATTEMPTS),
        (503, TransientError, ATTEMPTS),
    ],
)
def test_each_status_maps_to_its_core_error_and_is_tried_as_often_as_the_policy_allows(
    api: respx.MockRouter,
    make_hub: MakeHub,
    status: int,
    expected: type[BackendError],
    attempts: int,
) -> None:
    route = api.post("/chat/completions").mock(return_value=error(status, "it went wrong"))
    hub = make_hub()
    with pytest.raises(expected) as caught:
        hub.ask("hi")
    exc = caught.value
    assert type(exc) is expected
    assert (exc.backend, exc.status, exc.request_id) == ("openai", status, f"req_{status}")
    assert f"HTTP {status}: it went wrong" in str(exc)
    assert route.call_count == attempts
    assert hub.dialogues().items == ()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500])
async def test_async_calls_map_the_same(
    api: respx.MockRouter, make_async_hub: MakeAsyncHub, status: int
) -> None:
    api.post("/chat/completions").mock(return_value=error(status))
    with pytest.raises(BackendError) as caught:
        await make_async_hub().ask("hi")
    assert caught.value.status == status


def test_a_429_storm_is_ridden_out_with_the_waits_the_server_asked_for(
    api: respx.MockRouter, make_hub: MakeHub, sleeps: RecordingSleep
) -> None:
    route = api.post("/chat/completions").mock(
        side_effect=[
            error(429, **{"retry-after": "2"}),
            error(429, **{"retry-after-ms": "1500"}),
            ok(completion("finally")),
        ]
    )
    assert make_hub().ask("hi").reply.text == "finally"
    assert route.call_count == 3
    assert sleeps.waits == [2.0, 1.5]


def test_retry_after_as_an_http_date(
    api: respx.MockRouter, make_hub: MakeHub, sleeps: RecordingSleep
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    api.post("/chat/completions").mock(
        side_effect=[error(429, **{"retry-after": when}), ok(completion())]
    )
    make_hub().ask("hi")
    assert len(sleeps.waits) == 1
    assert 25 <= sleeps.waits[0] <= 30


def test_a_429_without_retry_after_backs_off_exponentially(
    api: respx.MockRouter, make_hub: MakeHub, sleeps: RecordingSleep
) -> None:
    route = api.post("/chat/completions").mock(return_value=error(429))
    with pytest.raises(RateLimitedError) as caught:
        make_hub(retry={"initial_s": 1}).ask("hi")
    assert caught.value.retry_after is None
    assert route.call_count == ATTEMPTS
    assert sleeps.waits == [1.0, 2.0]


def test_out_of_quota_is_not_retried_and_says_so(api: respx.MockRouter, make_hub: MakeHub) -> None:
    route = api.post("/chat/completions").mock(
        return_value=error(429, "You exceeded your current quota", code="insufficient_quota")
    )
    with pytest.raises(RateLimitedError, match="out of credit or quota") as caught:
        make_hub().ask("hi")
    assert caught.value.retryable is False
    assert route.call_count == 1


@pytest.mark.parametrize(("status", "header", "attempts"), [(500, "false", 1), (400, "true", 3)])
def test_x_should_retry_overrides_the_status(
    api: respx.MockRouter, make_hub: MakeHub, status: int, header: str, attempts: int
) -> None:
    route = api.post("/chat/completions").mock(
        return_value=error(status, **{"x-should-retry": header})
    )
    with pytest.raises(BackendError):
        make_hub().ask("hi")
    assert route.call_count == attempts


@pytest.mark.parametrize(
    ("failure", "expected", "match"),
    [
        (httpx.ReadTimeout("read timed out"), BackendTimeoutError, "no answer within 60s"),
        (httpx.ConnectTimeout("connect timed out"), BackendTimeoutError, "timeout_s"),
        (httpx.ConnectError("connection refused"), BackendConnectionError, "check base_url"),
        (httpx.RemoteProtocolError("peer closed"), BackendConnectionError, "api.test"),
    ],
)
def test_timeouts_and_connection_errors_are_transient_and_retried(
    api: respx.MockRouter,
    make_hub: MakeHub,
    failure: Exception,
    expected: type[BackendError],
    match: str,
) -> None:
    route = api.post("/chat/completions").mock(side_effect=failure)
    with pytest.raises(expected, match=match) as caught:
        make_hub().ask("hi")
    assert caught.value.retryable is True
    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, httpx.TransportError)
    assert route.call_count == ATTEMPTS


async def test_async_timeouts_are_retried_too(
    api: respx.MockRouter, make_async_hub: MakeAsyncHub
) -> None:
    route = api.post("/chat/completions").mock(
        side_effect=[httpx.ReadTimeout("slow"), ok(completion("ok"))]
    )
    assert (await make_async_hub().ask("hi")).reply.text == "ok"
    assert route.call_count == 2


def test_a_key_the_server_echoes_never_reaches_the_error(
    api: respx.MockRouter, make_hub: MakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    api.post("/chat/completions").mock(
        return_value=error(401, f"Incorrect API key provided: {KEY}.")
    )
    with pytest.raises(AuthenticationError) as caught:
        make_hub().ask("hi")
    text = str(caught.value)
    assert KEY not in text
    assert "Incorrect API key provided: ***." in text
    assert "check the API key in $OPENAI_API_KEY for https://api.test/v1" in text
    assert KEY not in caplog.text


def test_the_retry_attempts_setting_is_the_only_retry_loop(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/chat/completions").mock(return_value=error(503))
    with pytest.raises(TransientError):
        make_hub(retry={"attempts": 5}).ask("hi")
    assert route.call_count == 5  # no retry loop but the core's


# --- the mapping table --------------------------------------------------------------------------


def _sdk_exception_classes() -> set[str]:
    """Every exception class defined by the SDK, exported or in its exceptions module."""
    names = set()
    for module in (openai, openai._exceptions):
        for name, value in list(vars(module).items()):
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and not name.startswith("_")
                and value.__module__.partition(".")[0] == "openai"
            ):
                names.add(value.__name__)
    return names


def test_every_exception_class_of_the_sdk_is_mapped() -> None:
    missing = _sdk_exception_classes() - set(mapping.OPENAI_ERRORS)
    assert not missing, f"map these openai exceptions in modelport_openai/_errors.py: {missing}"


def test_the_mapping_names_only_classes_the_sdk_has() -> None:
    stale = set(mapping.OPENAI_ERRORS) - _sdk_exception_classes()
    assert not stale


def test_an_exception_that_is_no_sdk_failure_is_not_mapped() -> None:
    http = HTTPClient("openai", "https://api.test/v1")
    assert mapping.sdk_error(KeyError("bug"), http) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 0.0),  # in the past: no wait
        ({"retry-after": "soon"}, None),
        ({"retry-after-ms": "x", "retry-after": "4"}, 4.0),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers) == expected


def test_retry_after_http_date_relative_to_now() -> None:
    stamp = "Wed, 21 Oct 2015 07:28:10 GMT"
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()
    assert retry_after({"retry-after": stamp}, now=now) == 10.0
