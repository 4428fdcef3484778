"""Gemini's failures mapped into modelport's error tree: Google's error body, a bad key
answered with a 400, RetryInfo's wait, retries, and no secret in any output. Every test taking
``make`` runs through a ``Hub`` and through an ``AsyncHub``."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from modelport.errors import (
    AuthenticationError,
    BackendError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ResponseError,
    TransientError,
)
from modelport.testing import RecordingSleep

from .conftest import (
    BAD_KEY,
    GENERATE,
    KEY,
    STREAM,
    MakeCaller,
    answer,
    chunk,
    google_error,
    ok,
    retry_info,
    sse,
)

QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. "
    "Please retry in 30s."
)


@pytest.mark.parametrize(
    ("response", "error", "calls"),
    [
        (
            google_error(400, "API key not valid. Please pass a valid API key.",
                         "INVALID_ARGUMENT", BAD_KEY),
            AuthenticationError, 1,
        ),
        (
            google_error(403, "Method doesn't allow unregistered callers.", "PERMISSION_DENIED"),
            PermissionDeniedError, 1,
        ),
        (
            google_error(404, "models/gemini-0 is not found for API version v1beta.",
                         "NOT_FOUND"),
            NotFoundError, 1,
        ),
        (
            google_error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT"),
            InvalidRequestError, 1,
        ),
        (google_error(500, "An internal error has occurred.", "INTERNAL"), TransientError, 3),
        (google_error(503, "The model is overloaded.", "UNAVAILABLE"), TransientError, 3),
        (google_error(429, QUOTA, "RESOURCE_EXHAUSTED"), RateLimitedError, 3),
    ],
)  # fmt: skip
def test_statuses_map_into_the_error_tree_and_only_passing_ones_are_retried(
    api: respx.MockRouter,
    make: MakeCaller,
    response: httpx.Response,
    error: type[BackendError],
    calls: int,
) -> None:
    route = api.post(GENERATE).mock(return_value=response)
    with pytest.raises(error) as caught:
        make().ask("hi")
    assert type(caught.value) is error
    assert caught.value.status == response.status_code
    assert caught.value.backend == "gemini"
    message = response.json()["error"]["message"]
    assert message.split(".")[0] in str(caught.value)
    assert route.call_count == calls


def test_a_bad_key_names_the_variable_to_fix(api: respx.MockRouter, make: MakeCaller) -> None:
    api.post(GENERATE).mock(
        return_value=google_error(400, "API key expired. Renew the API key.", "INVALID_ARGUMENT")
    )
    with pytest.raises(AuthenticationError) as caught:
        make().ask("hi")
    assert caught.value.retryable is False
    assert caught.value.hint is not None
    assert "$GEMINI_API_KEY" in caught.value.hint


def test_retry_info_is_the_wait_when_no_header_says(
    api: respx.MockRouter, make: MakeCaller, sleeps: RecordingSleep
) -> None:
    busy = google_error(429, QUOTA, "RESOURCE_EXHAUSTED", retry_info("30s"))
    route = api.post(GENERATE).mock(side_effect=[busy, busy, ok(answer("At last."))])
    assert make().ask("hi").reply.text == "At last."
    assert route.call_count == 3
    assert sleeps.waits == [30.0, 30.0]


def test_a_retry_after_header_comes_before_retry_info(
    api: respx.MockRouter, make: MakeCaller, sleeps: RecordingSleep
) -> None:
    busy = google_error(429, QUOTA, "RESOURCE_EXHAUSTED", retry_info("30s"), **{"retry-after": "2"})
    api.post(GENERATE).mock(side_effect=[busy, ok(answer())])
    make().ask("hi")
    assert sleeps.waits == [2.0]


def test_a_wait_longer_than_allowed_fails_at_once_with_it(
    api: respx.MockRouter, make: MakeCaller, sleeps: RecordingSleep
) -> None:
    busy = google_error(429, QUOTA, "RESOURCE_EXHAUSTED", retry_info("3600.5s"))
    route = api.post(GENERATE).mock(return_value=busy)
    with pytest.raises(RateLimitedError) as caught:
        make().ask("hi")
    assert caught.value.retry_after == 3600.5
    assert route.call_count == 1
    assert sleeps.waits == []


def test_retry_info_counts_for_streams_too(
    api: respx.MockRouter, make: MakeCaller, sleeps: RecordingSleep
) -> None:
    busy = google_error(429, QUOTA, "RESOURCE_EXHAUSTED", retry_info("1.5s"))
    done = sse(chunk("Hi", finish="STOP"))
    api.post(STREAM).mock(side_effect=[busy, done])
    assert make().stream("hi").reply.text == "Hi"
    assert sleeps.waits == [1.5]


def test_a_body_that_is_not_json_is_a_response_error(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    api.post(GENERATE).mock(return_value=httpx.Response(200, text="<html>portal</html>"))
    with pytest.raises(ResponseError, match="not JSON"):
        make().ask("hi")


def test_an_html_error_page_is_read_by_the_kit(api: respx.MockRouter, make: MakeCaller) -> None:
    page = "<html><title>502 Bad Gateway</title></html>"
    api.post(GENERATE).mock(return_value=httpx.Response(502, text=page))
    with pytest.raises(TransientError, match="502 Bad Gateway"):
        make(retry={"attempts": 1}).ask("hi")


def test_the_key_never_shows_in_errors_or_logs(
    api: respx.MockRouter, make: MakeCaller, caplog: pytest.LogCaptureFixture
) -> None:
    echoed = google_error(
        400, f"API key not valid: {KEY}", "INVALID_ARGUMENT", {**BAD_KEY, "metadata": {"k": KEY}}
    )
    api.post(GENERATE).mock(return_value=echoed)
    caller = make()
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs, pytest.raises(AuthenticationError) as caught:
        caller.ask("hi")
    error = caught.value
    shown = [str(error), repr(error), error.hint or "", repr(logs), caplog.text]
    shown.append(repr(caller.hub.backend("chat")))
    assert all(KEY not in text for text in shown)
    assert "API key not valid" in str(error)
