"""The HTTP backend kit (:mod:`modelport.http`), through its public API: a tiny backend built
on it with :func:`~modelport.flows.twin`/:func:`~modelport.flows.twin_iter`, a server faked
with respx at the transport, and every test run through the sync and the async method."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from modelport.errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    InvalidRequestError,
    ModelportError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ResponseError,
    TransientError,
    UnsupportedError,
)
from modelport.flows import Flow, ItemFlow, twin, twin_iter
from modelport.http import (
    STATUS_ERRORS,
    Answer,
    Event,
    Framing,
    HTTPClient,
    Request,
    VendorError,
    error_class,
    read_error,
    retry_after,
)
from modelport.logs import get_logger

from ..support import FUZZ

BASE = "https://api.acme.test/v1"
# Credentials built at run time, shaped like no known key (so only the kit can mask them).
TOKEN = "acme-live-" + "Qx8" * 8
API_KEY = "acme-hdr-" + "Wv3" * 8
QUERY_KEY = "acme-qry-" + "Rt5" * 8
SECRETS = (TOKEN, API_KEY, QUERY_KEY)


class Acme:
    """A whole backend on the kit: one flow per operation, twinned."""

    def __init__(self, http: HTTPClient) -> None:
        self.http = http

    def _get(self, request: Request) -> Flow[Any]:
        return (yield self.http.json(request))

    def _send(self, request: Request) -> Flow[httpx.Response]:
        response: httpx.Response = yield self.http.send(request)
        return response

    def _fetch(self, request: Request) -> Flow[Answer]:
        answer: Answer = yield self.http.fetch(request)
        return answer

    def _events(
        self,
        request: Request,
        *,
        framing: Framing = "sse",
        feed: Callable[[Event], Any] = lambda event: event,
        end: Callable[[], Any] | None = None,
        finished: Callable[[Any], bool] | None = None,
        on_open: Callable[[Mapping[str, str]], None] | None = None,
    ) -> ItemFlow[Any]:
        yield from self.http.stream(
            request, framing=framing, feed=feed, end=end, finished=finished, on_open=on_open
        )

    get, aget = twin(_get)
    send, asend = twin(_send)
    fetch, afetch = twin(_fetch)
    events, aevents = twin_iter(_events)


def make_http(**options: Any) -> HTTPClient:
    options.setdefault("headers", {"Authorization": f"Bearer {TOKEN}", "x-api-key": API_KEY})
    options.setdefault("params", {"key": QUERY_KEY})
    return HTTPClient("acme", BASE, key_env="ACME_API_KEY", **options)


class Mode:
    """Runs one backend operation through its sync or its async method (async: on a new
    event loop, its clients closed after; or on ``runner``'s loop, its clients kept)."""

    def __init__(self, name: str, runner: asyncio.Runner | None = None) -> None:
        self.name = name
        self.is_async = name == "async"
        self.run: Callable[[Any], Any] = runner.run if runner is not None else asyncio.run
        self.close = runner is None

    def call(self, backend: Acme, op: str, *args: Any, **kwargs: Any) -> Any:
        if not self.is_async:
            return getattr(backend, op)(*args, **kwargs)

        async def go() -> Any:
            try:
                return await getattr(backend, "a" + op)(*args, **kwargs)
            finally:
                if self.close:
                    await backend.http.aclose()

        return self.run(go())

    def items(
        self, backend: Acme, *args: Any, **kwargs: Any
    ) -> tuple[list[Any], BaseException | None]:
        """The items of a stream, and the error that ended it early (or ``None``)."""
        out: list[Any] = []
        if not self.is_async:
            try:
                out.extend(backend.events(*args, **kwargs))
            except Exception as exc:
                return out, exc
            return out, None

        async def go() -> BaseException | None:
            try:
                async for item in backend.aevents(*args, **kwargs):
                    out.append(item)
            except Exception as exc:
                return exc
            finally:
                if self.close:
                    await backend.http.aclose()
            return None

        return out, self.run(go())


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> Mode:
    return Mode(request.param)


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for all the examples of a fuzz test (a new loop means new clients)."""
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def acme() -> Acme:
    return Acme(make_http(timeout_s=30.0, connect_timeout_s=3.0))


class Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A streamed body for respx, sync or async: its chunks, then maybe a transport failure;
    it records whether the client closed it."""

    def __init__(self, chunks: Sequence[bytes], error: Exception | None = None) -> None:
        self.chunks = list(chunks)
        self.error = error
        self.sent = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.sent += 1
            yield chunk
        if self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.sent += 1
            yield chunk
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def serve(
    api: respx.MockRouter,
    path: str,
    data: bytes,
    *,
    size: int = 1 << 20,
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> list[Body]:
    """Stream ``data`` at ``path`` in chunks of ``size`` (with ``headers`` too); the bodies
    served are listed."""
    bodies: list[Body] = []

    def respond(request: httpx.Request) -> httpx.Response:
        body = Body(chunked(data, size), **kwargs)
        bodies.append(body)
        sent = {"content-type": "text/event-stream", **(headers or {})}
        return httpx.Response(200, stream=body, headers=sent)

    api.post(path).mock(side_effect=respond)
    return bodies


def error_of(mode: Mode, backend: Acme, request: Request) -> BackendError:
    with pytest.raises(BackendError) as caught:
        mode.call(backend, "get", request)
    return caught.value


# --- requests and JSON ------------------------------------------------------------------------


def test_json_round_trip_applies_base_url_params_headers_and_timeouts(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    route = api.post("/chat").mock(return_value=httpx.Response(200, json={"answer": [1, "two"]}))
    request = Request(
        "POST",
        "/chat",
        json={"q": "hi"},
        params={"v": "2"},
        headers={"x-trace": "t-1"},
        timeout_s=5.0,
    )
    assert mode.call(acme, "get", request) == {"answer": [1, "two"]}
    sent = route.calls.last.request
    assert str(sent.url).startswith(f"{BASE}/chat?")
    assert sent.url.params["key"] == QUERY_KEY
    assert sent.url.params["v"] == "2"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["x-trace"] == "t-1"
    assert json.loads(sent.content) == {"q": "hi"}
    # the request's timeout is the read timeout; the connect timeout stays the client's
    assert sent.extensions["timeout"] == {"connect": 3.0, "read": 5.0, "write": 5.0, "pool": 5.0}

    mode.call(acme, "get", Request("POST", "/chat"))
    assert route.calls.last.request.extensions["timeout"] == {
        "connect": 3.0,
        "read": 30.0,
        "write": 30.0,
        "pool": 30.0,
    }


def test_fetch_answers_the_data_the_request_id_and_the_headers(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    api.post("/chat").mock(
        return_value=httpx.Response(
            200, json={"answer": 42}, headers={"request-id": "req-f", "x-quota": "9"}
        )
    )
    answer = mode.call(acme, "fetch", Request("POST", "/chat", json={"q": "hi"}))
    assert isinstance(answer, Answer)
    assert answer.data == {"answer": 42}
    assert answer.request_id == "req-f"
    assert answer.headers["x-quota"] == "9"
    assert answer.headers["X-Quota"] == "9"  # the response's headers: any case

    api.get("/bare").mock(return_value=httpx.Response(200, json=[1]))
    bare = mode.call(acme, "fetch", Request("GET", "/bare"))
    assert (bare.data, bare.request_id) == ([1], None)


def test_fetch_raises_like_json(mode: Mode, api: respx.MockRouter, acme: Acme) -> None:
    api.get("/gone").mock(
        return_value=httpx.Response(
            404, json={"error": {"message": "no"}}, headers={"request-id": "r"}
        )
    )
    api.get("/html").mock(return_value=httpx.Response(200, text="<html>portal</html>"))
    with pytest.raises(NotFoundError) as caught:
        mode.call(acme, "fetch", Request("GET", "/gone"))
    assert caught.value.request_id == "r"
    with pytest.raises(ResponseError, match="not JSON"):
        mode.call(acme, "fetch", Request("GET", "/html"))


def test_the_request_id_of_headers() -> None:
    http = make_http(request_id_headers=["acme-trace", "x-request-id"])
    assert http.request_id({"x-request-id": "b", "acme-trace": "a"}) == "a"
    assert http.request_id(httpx.Headers({"X-Request-Id": "b"})) == "b"
    assert http.request_id({"acme-trace": ""}) is None


def test_send_answers_the_response(mode: Mode, api: respx.MockRouter, acme: Acme) -> None:
    api.get("/raw").mock(return_value=httpx.Response(200, content=b"\x00bytes", headers={"x": "1"}))
    response = mode.call(acme, "send", Request("GET", "/raw"))
    assert response.status_code == 200
    assert response.content == b"\x00bytes"
    assert response.headers["x"] == "1"


@pytest.mark.parametrize(
    "body",
    [b"<html><body>Welcome to nginx</body></html>", b"not json", b"", b"[" * 100_000],
    ids=["html", "text", "empty", "too-deep"],
)
def test_a_body_that_is_not_json_is_a_response_error_naming_base_url(
    mode: Mode, api: respx.MockRouter, acme: Acme, body: bytes
) -> None:
    api.get("/models").mock(
        return_value=httpx.Response(200, content=body, headers={"x-request-id": "req-9"})
    )
    with pytest.raises(ResponseError) as caught:
        mode.call(acme, "get", Request("GET", "/models"))
    error = caught.value
    assert error.status == 200
    assert error.request_id == "req-9"
    assert error.hint is not None
    assert BASE in error.hint
    assert "not JSON" in str(error)


# --- the status table ---------------------------------------------------------------------------

STATUSES = [
    (400, InvalidRequestError, False),
    (401, AuthenticationError, False),
    (403, PermissionDeniedError, False),
    (404, NotFoundError, False),
    (408, BackendTimeoutError, True),
    (409, InvalidRequestError, False),
    (413, InvalidRequestError, False),
    (418, InvalidRequestError, False),  # an unknown 4xx
    (422, InvalidRequestError, False),
    (429, RateLimitedError, True),
    (500, TransientError, True),
    (503, TransientError, True),
    (529, TransientError, True),  # "overloaded"
]


@pytest.mark.parametrize(("status", "kind", "retryable"), STATUSES)
def test_each_status_raises_its_error(
    mode: Mode,
    api: respx.MockRouter,
    acme: Acme,
    status: int,
    kind: type[BackendError],
    retryable: bool,
) -> None:
    api.get("/x").mock(
        return_value=httpx.Response(status, json={"error": {"message": "it went wrong"}})
    )
    error = error_of(mode, acme, Request("GET", "/x"))
    assert type(error) is kind
    assert error_class(status) is kind
    assert error.status == status
    assert error.retryable is retryable
    assert error.backend == "acme"
    assert f"HTTP {status}: it went wrong" in str(error)
    # what to do, except for a bad request (its message says what is wrong)
    assert bool(error.hint) is (kind is not InvalidRequestError)


def test_the_table_is_what_the_docs_say() -> None:
    assert STATUS_ERRORS[401] is AuthenticationError
    assert STATUS_ERRORS[429] is RateLimitedError
    assert error_class(599) is TransientError
    assert error_class(451) is InvalidRequestError


def test_hints_name_the_key_variable_and_the_timeout(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    api.get("/a").mock(return_value=httpx.Response(401, json={"message": "bad key"}))
    api.get("/t").mock(return_value=httpx.Response(408))
    api.get("/n").mock(return_value=httpx.Response(404))
    assert "$ACME_API_KEY" in (error_of(mode, acme, Request("GET", "/a")).hint or "")
    assert "30s" in (error_of(mode, acme, Request("GET", "/t")).hint or "")
    assert BASE in (error_of(mode, acme, Request("GET", "/n")).hint or "")


def test_hints_can_be_replaced_by_class(mode: Mode, api: respx.MockRouter) -> None:
    acme = Acme(make_http(hints={AuthenticationError: "run `acme login`"}))
    api.get("/a").mock(return_value=httpx.Response(403))
    error = error_of(mode, acme, Request("GET", "/a"))
    assert type(error) is PermissionDeniedError
    assert error.hint == "run `acme login`"  # a subclass takes its parent's entry


@pytest.mark.parametrize(
    ("status", "header", "retryable"),
    [(400, "true", True), (503, "false", False), (429, "false", False), (500, "maybe", True)],
)
def test_x_should_retry_overrides_the_default(
    mode: Mode, api: respx.MockRouter, acme: Acme, status: int, header: str, retryable: bool
) -> None:
    api.get("/x").mock(return_value=httpx.Response(status, headers={"x-should-retry": header}))
    assert error_of(mode, acme, Request("GET", "/x")).retryable is retryable


def test_the_vendor_body_hook_decides_kind_retryable_and_hint(
    mode: Mode, api: respx.MockRouter
) -> None:
    seen: list[tuple[int, Any]] = []

    def acme_error(status: int, body: Any) -> VendorError | None:
        seen.append((status, body))
        if isinstance(body, dict) and body.get("reason") == "no_vision":
            return VendorError(
                body["text"],
                code="no_vision",
                kind=UnsupportedError,
                retryable=True,
                hint="use a vision model",
            )
        return read_error(status, body)

    acme = Acme(make_http(read_error=acme_error))
    api.post("/v").mock(
        return_value=httpx.Response(
            400,
            json={"reason": "no_vision", "text": "images\nare not supported"},
            headers={"x-should-retry": "false"},  # the hook's answer wins
        )
    )
    error = error_of(mode, acme, Request("POST", "/v"))
    assert type(error) is UnsupportedError
    assert error.retryable is True
    assert error.hint == "use a vision model"
    assert "HTTP 400: images are not supported" in str(error)  # one line
    assert seen == [(400, {"reason": "no_vision", "text": "images\nare not supported"})]

    api.get("/plain").mock(return_value=httpx.Response(502, text="bad gateway"))
    error = error_of(mode, acme, Request("GET", "/plain"))
    assert type(error) is TransientError
    assert seen[-1] == (502, "bad gateway")  # not JSON: the hook gets the text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"message": "no such model", "code": "model_not_found"}}', "no such model"),
        (b'{"error": {"message": "quota", "type": "insufficient_quota"}}', "quota"),
        (b'{"error": "plain words"}', "plain words"),
        (b'{"message": "top-level message"}', "top-level message"),
        (b'{"detail": "fastapi says no"}', "fastapi says no"),
        (b'[{"error": {"message": "wrapped in a list"}}]', "wrapped in a list"),
        (b"upstream exploded\nsecond line", "upstream exploded"),
        (
            b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
            b"<body><center><h1>502 Bad Gateway</h1></center></body></html>",
            "502 Bad Gateway",
        ),
        (b"<html><body>\n<p>Service down</p></body></html>", "Service down"),
        (b'{"detail": [{"loc": ["body"], "msg": "field required"}]}', '{"detail": [{"loc"'),
    ],
    ids=[
        "error-message-code",
        "error-type",
        "error-text",
        "message",
        "detail",
        "list",
        "text",
        "html-title",
        "html-text",
        "unknown-json",
    ],
)
def test_default_body_shapes_give_the_message(
    mode: Mode, api: respx.MockRouter, acme: Acme, body: bytes, message: str
) -> None:
    api.get("/x").mock(return_value=httpx.Response(502, content=body))
    error = error_of(mode, acme, Request("GET", "/x"))
    assert type(error) is TransientError
    assert error.message.startswith(f"acme: HTTP 502: {message}")


def test_read_error_reads_the_code() -> None:
    found = read_error(400, {"error": {"message": "m", "code": "model_not_found"}})
    assert found == VendorError("m", code="model_not_found")
    assert read_error(400, {"error": {"message": "m", "type": "t"}}) == VendorError("m", code="t")
    assert read_error(400, {"error": {"message": ""}}) is None
    assert read_error(400, "text") is None
    assert read_error(400, None) is None


@pytest.mark.parametrize("body", [b"", b"   \n"], ids=["empty", "blank"])
def test_an_empty_error_body_says_the_status(
    mode: Mode, api: respx.MockRouter, acme: Acme, body: bytes
) -> None:
    api.get("/x").mock(return_value=httpx.Response(500, content=body))
    error = error_of(mode, acme, Request("GET", "/x"))
    assert error.message == "acme: HTTP 500 (status 500)"


def test_a_too_deep_error_body_still_gives_the_status_error(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    api.get("/x").mock(return_value=httpx.Response(429, content=b"[" * 100_000))
    assert type(error_of(mode, acme, Request("GET", "/x"))) is RateLimitedError


# --- retry-after and request ids -------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the finer one wins
        ({"retry-after-ms": "junk", "retry-after": "9"}, 9.0),
        ({"retry-after-ms": "inf", "retry-after": "9"}, 9.0),
        ({"retry-after-ms": "nan"}, None),
        ({"retry-after-ms": "-40"}, 0.0),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "1e400"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 -0000"}, None),  # no zone: unreadable
        ({}, None),
    ],
)
def test_retry_after_is_read_from_the_answer(
    mode: Mode,
    api: respx.MockRouter,
    acme: Acme,
    headers: dict[str, str],
    seconds: float | None,
) -> None:
    api.get("/x").mock(return_value=httpx.Response(429, headers=headers))
    error = error_of(mode, acme, Request("GET", "/x"))
    assert error.retry_after == seconds


def wait_in_body(status: int, body: Any) -> VendorError | None:
    """A ``read_error`` hook that reads the wait a body asks for (``"wait_s"``)."""
    found = read_error(status, body)
    wait = body.get("wait_s") if isinstance(body, dict) else None
    if found is None or not isinstance(wait, int | float):
        return found
    return VendorError(found.message, code=found.code, retry_after=float(wait))


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, 30.0),  # no header: the body's wait
        ({"retry-after": "2"}, 2.0),  # a header says: the body's is ignored
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "soon"}, 30.0),  # an unreadable header says nothing
    ],
)
def test_the_body_s_wait_counts_when_no_header_says(
    mode: Mode, api: respx.MockRouter, headers: dict[str, str], seconds: float
) -> None:
    acme = Acme(make_http(read_error=wait_in_body))
    body = {"error": {"message": "quota"}, "wait_s": 30}
    api.get("/x").mock(return_value=httpx.Response(429, json=body, headers=headers))
    error = error_of(mode, acme, Request("GET", "/x"))
    assert type(error) is RateLimitedError
    assert error.retry_after == seconds


def test_retry_after_as_an_http_date() -> None:
    now = 1_445_412_400.0  # Wed, 21 Oct 2015 07:26:40 GMT
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}
    assert retry_after(headers, now=now) == 80.0
    assert retry_after(headers, now=now + 1000) == 0.0
    assert retry_after({"retry-after": "Wed, 99 Foo 2015 07:28:00 GMT"}, now=now) is None
    assert retry_after(httpx.Headers({"Retry-After": "3"})) == 3.0  # any case


@pytest.mark.parametrize(
    ("headers", "request_id"),
    [
        ({"x-request-id": "req-1"}, "req-1"),
        ({"request-id": "req-2"}, "req-2"),
        ({"x-request-id": "req-1", "request-id": "req-2"}, "req-1"),
        ({}, None),
    ],
)
def test_the_request_id_is_kept(
    mode: Mode,
    api: respx.MockRouter,
    acme: Acme,
    headers: dict[str, str],
    request_id: str | None,
) -> None:
    api.get("/x").mock(return_value=httpx.Response(400, headers=headers))
    error = error_of(mode, acme, Request("GET", "/x"))
    assert error.request_id == request_id
    if request_id:
        assert f"request id {request_id}" in str(error)


def test_request_id_headers_are_configurable(mode: Mode, api: respx.MockRouter) -> None:
    acme = Acme(make_http(request_id_headers=["acme-trace"]))
    api.get("/x").mock(
        return_value=httpx.Response(500, headers={"acme-trace": "tr-5", "x-request-id": "no"})
    )
    assert error_of(mode, acme, Request("GET", "/x")).request_id == "tr-5"


# --- transport failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (httpx.ConnectError("connection refused"), BackendConnectionError),
        (httpx.ConnectTimeout("connect timed out"), BackendTimeoutError),
        (httpx.ReadTimeout("read timed out"), BackendTimeoutError),
        (httpx.RemoteProtocolError("peer closed"), BackendConnectionError),
    ],
)
def test_a_transport_failure_before_an_answer(
    mode: Mode,
    api: respx.MockRouter,
    acme: Acme,
    failure: httpx.HTTPError,
    kind: type[BackendError],
) -> None:
    api.get("/x").mock(side_effect=failure)
    api.post("/s").mock(side_effect=failure)
    error = error_of(mode, acme, Request("GET", "/x"))
    assert type(error) is kind
    assert error.retryable is True
    assert error.status is None
    assert f"{type(failure).__name__} before it answered" in str(error)
    assert error.__cause__ is failure

    items, error2 = mode.items(acme, Request("POST", "/s"))
    assert items == []
    assert type(error2) is kind
    assert "before it answered" in str(error2)


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (httpx.ReadError("connection reset"), BackendConnectionError),
        (httpx.ReadTimeout("read timed out"), BackendTimeoutError),
        (httpx.RemoteProtocolError("incomplete chunked read"), BackendConnectionError),
    ],
)
def test_a_transport_failure_mid_stream(
    mode: Mode,
    api: respx.MockRouter,
    acme: Acme,
    failure: httpx.HTTPError,
    kind: type[BackendError],
) -> None:
    bodies = serve(api, "/s", b"data: one\n\ndata: two\n\n", size=4, error=failure)
    items, error = mode.items(acme, Request("POST", "/s"), feed=lambda event: event.data)
    assert items == ["one", "two"]
    assert type(error) is kind
    assert f"{type(failure).__name__} mid-stream" in str(error)
    assert isinstance(error, BackendError)
    assert error.retryable is True
    assert error.__cause__ is failure
    assert bodies[0].closed


def test_an_error_status_on_a_stream(mode: Mode, api: respx.MockRouter, acme: Acme) -> None:
    api.post("/s").mock(
        return_value=httpx.Response(
            429,
            json={"error": {"message": "slow down"}},
            headers={"retry-after": "2", "x-request-id": "req-s"},
        )
    )
    items, error = mode.items(acme, Request("POST", "/s"))
    assert items == []
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 2.0
    assert error.request_id == "req-s"
    assert "HTTP 429: slow down" in str(error)


# --- framing -----------------------------------------------------------------------------------

SSE_BODY = (
    ": a comment, then an event in two data lines with a name and an id\r\n"
    "event: delta\r\n"
    "id: 7\r\n"
    'data: {"a":\r\n'
    "data: 1}\r\n"
    "\r\n"
    "retry: 1000\n"
    "data:no space after the colon\n"
    "data\n"
    "unknown: field\n"
    "\n"
    "\n"
    "event: nothing\n"  # an event without data is not dispatched
    "\n"
    "data:  two spaces keep one\r"
    "\r"
    "data: \u2028 and \u0085 and \x0c are not line breaks\n"
    "\n"
    "event: done\n"
    "data: [DONE]"  # no blank line, no newline: the end of the body ends the event
)

SSE_EVENTS = [
    ("delta", '{"a":\n1}', "7"),
    (None, "no space after the colon\n", "7"),  # the last id stays
    (None, " two spaces keep one", "7"),
    (None, "\u2028 and \u0085 and \x0c are not line breaks", "7"),
    ("done", "[DONE]", "7"),
]


@pytest.mark.parametrize("size", [1, 3, 1 << 20], ids=["bytewise", "3-byte", "whole"])
def test_sse_framing(mode: Mode, api: respx.MockRouter, acme: Acme, size: int) -> None:
    serve(api, "/s", SSE_BODY.encode(), size=size)
    items, error = mode.items(
        acme, Request("POST", "/s"), feed=lambda event: (event.name, event.data, event.id)
    )
    assert error is None
    assert items == SSE_EVENTS


@pytest.mark.parametrize("size", [1, 5, 1 << 20], ids=["bytewise", "5-byte", "whole"])
def test_ndjson_framing(mode: Mode, api: respx.MockRouter, acme: Acme, size: int) -> None:
    body = '\ufeff{"a": 1}\n\n   \n{"b": "x\u2028y\u0085z"}\r\n{"c": 3}'
    serve(api, "/s", body.encode(), size=size)
    items, error = mode.items(
        acme, Request("POST", "/s"), framing="ndjson", feed=lambda event: event.json()
    )
    assert error is None
    assert items == [{"a": 1}, {"b": "x\u2028y\u0085z"}, {"c": 3}]


def test_feed_may_skip_events(mode: Mode, api: respx.MockRouter, acme: Acme) -> None:
    serve(api, "/s", b"event: ping\ndata: {}\n\ndata: 1\n\ndata: 2\n\n")
    items, error = mode.items(
        acme,
        Request("POST", "/s"),
        feed=lambda event: None if event.name == "ping" else event.json(),
    )
    assert (items, error) == ([1, 2], None)


def test_an_event_that_is_not_json(mode: Mode, api: respx.MockRouter, acme: Acme) -> None:
    bodies = serve(api, "/s", b'data: {"ok": 1}\n\ndata: {"cut\n\ndata: 3\n\n')
    items, error = mode.items(acme, Request("POST", "/s"), feed=lambda event: event.json())
    assert items == [{"ok": 1}]
    assert isinstance(error, ResponseError)
    assert "not JSON" in str(error)
    assert error.backend == "acme"
    assert bodies[0].closed


def test_an_event_nested_too_deep_is_a_response_error(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    serve(api, "/s", b"data: " + b"[" * 100_000 + b"\n\n")
    _items, error = mode.items(acme, Request("POST", "/s"), feed=lambda event: event.json())
    assert isinstance(error, ResponseError)


# --- the end of a stream ------------------------------------------------------------------------


def done(item: Any) -> bool:
    return bool(item.get("done"))


def test_finished_ends_the_items_and_the_short_rest_is_read_not_fed(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    body = b'{"n": 1}\n{"n": 2, "done": true}\nnot json: never fed\n'
    bodies = serve(api, "/s", body, size=8)
    items, error = mode.items(
        acme,
        Request("POST", "/s"),
        framing="ndjson",
        feed=lambda event: event.json(),
        finished=done,
    )
    assert error is None
    assert items == [{"n": 1}, {"n": 2, "done": True}]
    assert bodies[0].closed
    assert bodies[0].sent == len(bodies[0].chunks)  # read to its end: the connection is reusable


def test_a_body_that_goes_on_after_finished_is_cut_not_waited_for(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    body = b'{"n": 1, "done": true}\n' + b'{"ping": 1}\n' * 200
    bodies = serve(api, "/s", body, size=12)
    items, error = mode.items(
        acme,
        Request("POST", "/s"),
        framing="ndjson",
        feed=lambda event: event.json(),
        finished=done,
    )
    assert error is None
    assert items == [{"n": 1, "done": True}]
    assert bodies[0].closed
    assert bodies[0].sent < len(bodies[0].chunks)


def test_a_stream_cut_before_its_end_is_a_connection_error(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    serve(api, "/s", b'{"n": 1}\n{"n": 2}\n')
    items, error = mode.items(
        acme,
        Request("POST", "/s"),
        framing="ndjson",
        feed=lambda event: event.json(),
        finished=done,
    )
    assert items == [{"n": 1}, {"n": 2}]
    assert isinstance(error, BackendConnectionError)
    assert error.retryable is True
    assert "ended before the answer was complete" in str(error)


def test_the_last_sse_event_without_a_blank_line_can_finish(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    serve(api, "/s", b'data: {"n": 1}\n\ndata: {"done": true}')
    items, error = mode.items(
        acme, Request("POST", "/s"), feed=lambda event: event.json(), finished=done
    )
    assert (items, error) == ([{"n": 1}, {"done": True}], None)


def test_end_makes_a_last_item(mode: Mode, api: respx.MockRouter, acme: Acme) -> None:
    serve(api, "/s", b"data: a\n\ndata: b\n\n")
    items, error = mode.items(
        acme,
        Request("POST", "/s"),
        feed=lambda event: event.data,
        end=lambda: "end",
        finished=lambda item: item == "end",
    )
    assert (items, error) == (["a", "b", "end"], None)


def test_end_may_refuse_the_stream(mode: Mode, api: respx.MockRouter, acme: Acme) -> None:
    def end() -> None:
        raise ResponseError("no [DONE] marker", backend="acme")

    serve(api, "/s", b"data: a\n\n")
    items, error = mode.items(acme, Request("POST", "/s"), feed=lambda event: event.data, end=end)
    assert items == ["a"]
    assert isinstance(error, ResponseError)
    assert "no [DONE] marker" in str(error)


def test_closing_a_stream_early_closes_the_response(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    bodies = serve(api, "/s", b"data: x\n\n" * 50, size=9)
    request = Request("POST", "/s")
    if not mode.is_async:
        for item in acme.events(request, feed=lambda event: event.data):
            assert item == "x"
            break
        stream = acme.events(request, feed=lambda event: event.data)
        assert next(stream) == "x"
        stream.close()  # type: ignore[attr-defined]
    else:

        async def go() -> None:
            stream = acme.aevents(request, feed=lambda event: event.data)
            assert await anext(stream) == "x"
            assert sum(acme.http.pool._load) == 1
            await stream.aclose()  # type: ignore[attr-defined]
            assert sum(acme.http.pool._load) == 0  # the connection went back to its pool
            async for _ in acme.aevents(request, feed=lambda event: event.data):
                break
            await acme.http.aclose()

        asyncio.run(go())
    assert len(bodies) == 2
    assert all(body.closed for body in bodies)
    assert all(body.sent < len(body.chunks) for body in bodies)


# --- errors inside a stream, and its headers -----------------------------------------------------


def test_on_open_gets_the_headers_before_the_first_item(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    serve(api, "/s", b"data: a\n\ndata: b\n\n", headers={"x-request-id": "req-o"})
    seen: list[Any] = []

    def feed(event: Event) -> str:
        seen.append(event.data)
        return event.data

    def on_open(headers: Mapping[str, str]) -> None:
        seen.append(("open", headers["X-Request-Id"], acme.http.request_id(headers)))

    items, error = mode.items(acme, Request("POST", "/s"), feed=feed, on_open=on_open)
    assert (items, error) == (["a", "b"], None)
    assert seen == [("open", "req-o", "req-o"), "a", "b"]


def test_on_open_is_not_called_for_an_error_status(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    api.post("/s").mock(return_value=httpx.Response(503, headers={"x-request-id": "req-e"}))
    opened: list[Mapping[str, str]] = []
    items, error = mode.items(acme, Request("POST", "/s"), on_open=opened.append)
    assert (items, opened) == ([], [])
    assert isinstance(error, TransientError)
    assert error.request_id == "req-e"


class ErrorEvents:
    """A ``feed`` (and ``on_open``) that maps ``{"error": ...}`` events with ``event_error``,
    the status being the event's ``"status"`` and the request id the response's."""

    def __init__(self, http: HTTPClient) -> None:
        self.http = http
        self.request_id: str | None = None

    def on_open(self, headers: Mapping[str, str]) -> None:
        self.request_id = self.http.request_id(headers)

    def __call__(self, event: Event) -> Any:
        data = event.json()
        if "error" in data:
            status = data.get("status")
            raise self.http.event_error(data, status=status, request_id=self.request_id)
        return data


def stream_error(
    mode: Mode, api: respx.MockRouter, acme: Acme, error: Any, **headers: str
) -> BackendError:
    """The error a stream that sends one item and then ``error`` ends with."""
    serve(api, "/s", f"data: {{}}\n\ndata: {json.dumps(error)}\n\n".encode(), headers=headers)
    events = ErrorEvents(acme.http)
    items, failure = mode.items(acme, Request("POST", "/s"), feed=events, on_open=events.on_open)
    assert items == [{}]
    assert isinstance(failure, BackendError)
    return failure


def test_an_error_event_is_transient_by_default(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    error = stream_error(
        mode, api, acme, {"error": {"message": "the model\ncrashed"}}, **{"x-request-id": "req-m"}
    )
    assert type(error) is TransientError
    assert error.retryable is True
    assert error.status is None
    assert error.request_id == "req-m"
    assert error.hint == "the server failed; retry later"
    assert "acme: the server failed mid-stream: the model crashed (request id req-m)" in str(error)


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [(429, RateLimitedError, True), (400, InvalidRequestError, False), (503, TransientError, True)],
)
def test_an_error_event_with_a_status_maps_like_the_status(
    mode: Mode,
    api: respx.MockRouter,
    acme: Acme,
    status: int,
    kind: type[BackendError],
    retryable: bool,
) -> None:
    error = stream_error(mode, api, acme, {"error": {"message": "no"}, "status": status})
    assert type(error) is kind
    assert error.retryable is retryable
    assert error.status is None  # the response's status was 200
    assert error.request_id is None


def test_an_error_event_without_a_message_shows_its_body(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    error = stream_error(mode, api, acme, {"error": {"reason": "crash"}})
    assert type(error) is TransientError
    assert 'mid-stream: {"error": {"reason": "crash"}}' in str(error)


def test_an_error_event_goes_through_the_hook(mode: Mode, api: respx.MockRouter) -> None:
    seen: list[tuple[int, Any]] = []

    def acme_error(status: int, body: Any) -> VendorError | None:
        seen.append((status, body))
        found = read_error(status, body)
        if found is not None and found.code == "no_credit":
            return VendorError(
                found.message,
                code=found.code,
                kind=PermissionDeniedError,
                retryable=False,
                hint="add credit",
                retry_after=5.0,
            )
        if found is not None and found.code == "busy":
            return VendorError(found.message, retryable=False)
        return found

    acme = Acme(make_http(read_error=acme_error))
    credit = {"error": {"message": "no credit left", "type": "no_credit"}}
    error = stream_error(mode, api, acme, credit)
    assert type(error) is PermissionDeniedError
    assert (error.retryable, error.hint, error.retry_after) == (False, "add credit", 5.0)
    assert "mid-stream: no credit left" in str(error)
    assert seen == [(500, credit)]  # no status: the hook reads it as a 500

    busy = {"error": {"message": "busy", "code": "busy"}, "status": 529}
    error = stream_error(mode, api, acme, busy)
    assert type(error) is TransientError
    assert error.retryable is False  # the hook's word over the class's default
    assert seen[-1] == (529, busy)


def test_an_error_event_masks_secrets(mode: Mode, api: respx.MockRouter, acme: Acme) -> None:
    echo = f"bad key {API_KEY} with Bearer {TOKEN} at {BASE}/chat?key={QUERY_KEY}"
    error = stream_error(mode, api, acme, {"error": {"message": echo}})
    assert_no_secret(str(error), repr(error), error.hint or "")
    assert "bad key" in str(error)
    plain = make_http().event_error(f"raw text {TOKEN}")  # a body that is not JSON
    assert_no_secret(str(plain))
    assert "mid-stream: raw text" in str(plain)


# --- secrets -------------------------------------------------------------------------------------


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, text


def test_credentials_never_show(
    mode: Mode, api: respx.MockRouter, acme: Acme, caplog: pytest.LogCaptureFixture
) -> None:
    echo = f"bad key {API_KEY} with Bearer {TOKEN} at {BASE}/chat?key={QUERY_KEY}"
    api.post("/chat").mock(return_value=httpx.Response(401, json={"error": {"message": echo}}))
    api.post("/down").mock(side_effect=httpx.ConnectError(echo))
    api.post("/html").mock(return_value=httpx.Response(200, text=echo))
    serve(api, "/s", f"data: {echo}\n\n".encode())
    serve(api, "/cut", b"data: 1\n\n", error=httpx.ReadError(echo))

    errors: list[BaseException] = []
    with caplog.at_level(logging.DEBUG), capture_logs() as logs:
        for path in ("/chat", "/down", "/html"):
            with pytest.raises(ModelportError) as caught:
                mode.call(acme, "get", Request("POST", path))
            errors.append(caught.value)
        for path in ("/s", "/cut"):
            _, error = mode.items(acme, Request("POST", path), feed=lambda event: event.json())
            assert error is not None
            errors.append(error)
        for error in errors:
            get_logger().error("call_failed", error=error, exc_info=error)

    assert [type(e) for e in errors] == [
        AuthenticationError,
        BackendConnectionError,
        ResponseError,
        ResponseError,
        BackendConnectionError,
    ]
    for error in errors:
        assert_no_secret(str(error), repr(error), str(error.__cause__), repr(error.__cause__))
    assert "bad key ***" in str(errors[0])
    assert_no_secret(repr(logs), caplog.text, repr(acme.http))
    assert "httpx" in {record.name for record in caplog.records}  # httpx logged the URLs


# --- clients: close, pools, event loops ---------------------------------------------------------


def test_a_closed_client_is_recreated(mode: Mode, api: respx.MockRouter, acme: Acme) -> None:
    api.get("/x").mock(return_value=httpx.Response(200, json=1))
    request = Request("GET", "/x")
    if not mode.is_async:
        assert acme.get(request) == 1
        first = acme.http.client
        acme.http.close()
        assert first.is_closed
        assert acme.get(request) == 1
        assert acme.http.client is not first
        acme.http.close()
        acme.http.close()  # twice is fine
        return

    async def go() -> None:
        assert await acme.aget(request) == 1
        index, first = acme.http.pool.acquire()
        acme.http.pool.release(index)
        await acme.http.aclose()
        assert first.is_closed
        assert await acme.aget(request) == 1
        await acme.http.aclose()
        await acme.http.aclose()

    asyncio.run(go())


def test_clients_work_across_event_loops_and_threads(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    api.get("/x").mock(return_value=httpx.Response(200, json="ok"))
    request = Request("GET", "/x")
    made: list[int] = []
    make_async = acme.http._make_async

    def counting(connections: int) -> httpx.AsyncClient:
        made.append(connections)
        return make_async(connections)

    acme.http._make_async = counting  # type: ignore[method-assign]

    # one loop after another, never closed in between
    for _ in range(2):
        if mode.is_async:
            assert asyncio.run(acme.aget(request)) == "ok"
        else:
            assert acme.get(request) == "ok"

    # two threads taking turns, each with its own loop (async) or sharing the client (sync)
    barrier = threading.Barrier(2, timeout=10)
    answers: list[Any] = []

    def worker() -> None:
        async def calls() -> None:
            for _ in range(5):
                barrier.wait()
                answers.append(await acme.aget(request))
            await acme.http.aclose()

        if mode.is_async:
            asyncio.run(calls())
        else:
            for _ in range(5):
                barrier.wait()
                answers.append(acme.get(request))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == ["ok"] * 10
    assert len(made) == (4 if mode.is_async else 0)  # one per loop: 2 in a row, 2 at once
    acme.http.close()


def test_repr_shows_no_headers() -> None:
    http = make_http()
    assert repr(http) == f"HTTPClient('acme', {BASE!r})"


# --- fuzzing the framing -----------------------------------------------------------------------

LINE = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12)
EVENTS = st.lists(
    st.tuples(st.one_of(st.none(), LINE.filter(bool)), st.lists(LINE, min_size=1, max_size=3)),
    max_size=6,
)
FRAMING_FUZZ = settings(FUZZ, max_examples=300)


def sse(events: list[tuple[str | None, list[str]]], newline: str, last_blank: bool) -> str:
    out: list[str] = []
    for index, (name, lines) in enumerate(events):
        fields = ([f"event: {name}"] if name is not None else []) + [f"data: {x}" for x in lines]
        out.extend(field + newline for field in fields)
        if last_blank or index < len(events) - 1:
            out.append(newline)
    return "".join(out)


@pytest.mark.parametrize("mode_name", ["sync", "async"])
@FRAMING_FUZZ
@given(
    events=EVENTS,
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    last_blank=st.booleans(),
    size=st.integers(1, 40),
)
def test_sse_encoding_then_decoding_gives_the_events_back(
    mode_name: str,
    events: list[tuple[str | None, list[str]]],
    newline: str,
    last_blank: bool,
    size: int,
    runner: asyncio.Runner,
) -> None:
    mode = Mode(mode_name, runner)
    text = sse(events, newline, last_blank)
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        serve(api, "/s", text.encode(), size=size)
        items, error = mode.items(
            FUZZ_BACKEND, Request("POST", "/s"), feed=lambda event: (event.name, event.data)
        )
    assert error is None
    assert items == [(name, "\n".join(lines)) for name, lines in events]


@pytest.mark.parametrize("mode_name", ["sync", "async"])
@FRAMING_FUZZ
@given(
    body=st.binary(max_size=200),
    size=st.integers(1, 40),
    framing=st.sampled_from(["sse", "ndjson"]),
)
def test_any_bytes_give_events_or_a_modelport_error(
    mode_name: str, body: bytes, size: int, framing: Framing, runner: asyncio.Runner
) -> None:
    mode = Mode(mode_name, runner)
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        serve(api, "/s", body, size=size)
        _items, error = mode.items(
            FUZZ_BACKEND, Request("POST", "/s"), framing=framing, feed=lambda event: event.json()
        )
    assert error is None or isinstance(error, ResponseError), repr(error)


FUZZ_BACKEND = Acme(HTTPClient("acme", BASE))


def test_a_connection_lost_after_the_finished_item_loses_nothing(
    mode: Mode, api: respx.MockRouter, acme: Acme
) -> None:
    serve(
        api,
        "/s",
        b'{"n": 1, "done": true}\n{"ping": 1}\n',
        size=8,
        error=httpx.RemoteProtocolError("peer closed connection"),
    )
    items, error = mode.items(
        acme,
        Request("POST", "/s"),
        framing="ndjson",
        feed=lambda event: event.json(),
        finished=done,
    )
    assert error is None
    assert items == [{"n": 1, "done": True}]
