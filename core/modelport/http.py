"""The HTTP backend kit: what every backend for an HTTP API needs, written once.

A backend states, once per operation, how to build the :class:`Request` from modelport's
types and how to read the answer (or each event of a stream), as a flow
(:mod:`modelport.flows`); :func:`~modelport.flows.twin` gives it the sync and the async
method. :class:`HTTPClient` does the rest, for both worlds:

- the I/O, over ``httpx`` clients it owns: one ``httpx.Client``, and per event loop a few
  small ``httpx.AsyncClient`` pools (see :class:`HTTPClient`), with the timeouts and the
  connection limit given, created on first use and closed by :meth:`HTTPClient.close` /
  :meth:`HTTPClient.aclose`;
- framing: server-sent events (``"sse"``) and newline-delimited JSON (``"ndjson"``), read as
  they arrive (:class:`Event`);
- errors: one table from HTTP status to the error tree (:data:`STATUS_ERRORS`), with one hook
  for the vendor's error body (``read_error``, see :class:`VendorError`); ``retry-after``,
  ``retry-after-ms`` and HTTP dates (:func:`retry_after`); ``x-should-retry``; request ids;
  transport failures before and during a stream; a stream cut short before its end;
- secrets: header and query values that hold credentials are registered with
  :func:`modelport.logs.register_secret`, so no message, log line or repr shows them.

A whole chat backend::

    class AcmeBackend:
        def __init__(self, context: BackendContext[AcmeSettings]) -> None:
            self.name = context.name
            key = context.secret("ACME_API_KEY").reveal()
            self.http = HTTPClient(self.name, "https://api.acme.test/v1",
                                   headers={"Authorization": f"Bearer {key}"},
                                   key_env="ACME_API_KEY")

        def _complete(self, request: ChatRequest) -> Flow[Reply]:
            data = yield self.http.json(Request("POST", "/chat", json=body(request)))
            return reply(data)

        complete, acomplete = twin(_complete)

Tests fake the server with ``respx`` at the transport, as for any ``httpx`` client.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import json
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import attrs
import httpx

from ._redact import is_secret_header, is_secret_name
from .errors import (
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
)
from .flows import AsyncScope, ItemFlow, Scope, Step
from .logs import redact, redact_exception, register_secret

__all__ = [
    "STATUS_ERRORS",
    "Answer",
    "Event",
    "Framing",
    "HTTPClient",
    "Request",
    "VendorError",
    "error_class",
    "read_error",
    "retry_after",
]

T = TypeVar("T")

#: What httpx raises when a request got no (whole) answer, or could not be sent at all.
_TRANSPORT = (httpx.HTTPError, httpx.InvalidURL)

#: How a streamed body is cut into events.
Framing = Literal["sse", "ndjson"]

#: The error for an HTTP status; other 4xx are :class:`~modelport.errors.InvalidRequestError`
#: and 5xx (529 "overloaded" included) :class:`~modelport.errors.TransientError`, retried.
STATUS_ERRORS: Mapping[int, type[BackendError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: BackendTimeoutError,
    409: InvalidRequestError,
    413: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitedError,
}

#: Lines read after a stream's finished item, so that its connection can be reused.
_DRAIN_LINES = 16

#: Connections per async pool; ``max_connections`` is split into pools of this size.
CONNECTIONS_PER_POOL = 8


def error_class(status: int) -> type[BackendError]:
    """The error class for an HTTP error ``status`` (see :data:`STATUS_ERRORS`)."""
    found = STATUS_ERRORS.get(status)
    if found is not None:
        return found
    return TransientError if status >= 500 else InvalidRequestError


@attrs.frozen
class Request:
    """One HTTP request, as an operation states it.

    :ivar path: relative to the client's ``base_url`` (or a whole URL).
    :ivar json: the JSON body. ``files`` and ``data`` make a multipart body instead;
        ``content`` sends bytes as they are.
    :ivar timeout_s: this request's timeout (read, write and pool) instead of the client's;
        the connect timeout stays the client's.
    """

    method: str
    path: str
    json: Any = None
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None
    files: Any = None
    data: Mapping[str, Any] | None = None
    content: bytes | None = None
    timeout_s: float | None = None

    def _kwargs(self, connect_timeout_s: float) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.params is not None:
            kwargs["params"] = self.params
        if self.headers is not None:
            kwargs["headers"] = self.headers
        if self.files is not None:
            kwargs["files"] = self.files
        if self.data is not None:
            kwargs["data"] = self.data
        if self.content is not None:
            kwargs["content"] = self.content
        if self.timeout_s is not None:  # the connect timeout stays the client's
            kwargs["timeout"] = httpx.Timeout(self.timeout_s, connect=connect_timeout_s)
        return kwargs


@attrs.frozen
class Event:
    """One event of a streamed body.

    :ivar data: the event's data (SSE: its ``data:`` lines joined with newlines; NDJSON: the
        line).
    :ivar name: the SSE ``event:`` name, if the server sent one.
    :ivar id: the SSE ``id:``, if the server sent one.
    :ivar backend: the backend's name, for the errors a ``feed`` raises about the event.
    """

    data: str
    name: str | None = None
    id: str | None = None
    backend: str = attrs.field(default="", repr=False)

    def json(self) -> Any:
        """The data as JSON.

        :raises ResponseError: when it is not JSON.
        """
        try:
            return json.loads(self.data)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            raise ResponseError(
                f"the stream sent an event that is not JSON: {redact(self.data[:80])!r}",
                backend=self.backend,
            ) from None


@attrs.frozen
class VendorError:
    """What a vendor's error body says (the result of a ``read_error`` hook).

    :ivar message: the vendor's message (one line is made of it; secrets are masked); empty
        for the body's own first line.
    :ivar code: the vendor's error code or type, if any.
    :ivar kind: the error class to raise instead of the status's (for example
        :class:`~modelport.errors.UnsupportedError`), if the body says better than the status.
    :ivar retryable: overrides the class's default, if not ``None``.
    :ivar hint: what to do, instead of the class's default hint.
    :ivar retry_after: seconds the body asks to wait (Google's ``RetryInfo``), used when no
        ``retry-after`` header says it.
    """

    message: str
    code: str | None = None
    kind: type[BackendError] | None = None
    retryable: bool | None = None
    hint: str | None = None
    retry_after: float | None = None


def read_error(status: int, body: Any) -> VendorError | None:
    """The default error-body reader: ``{"error": {"message", "code"|"type"}}``,
    ``{"error": "text"}``, ``{"message": ...}`` or ``{"detail": ...}``; ``None`` for anything
    else (the body's text is used)."""
    if isinstance(body, list) and body:
        body = body[0]  # some APIs wrap the error in a one-element list
    if not isinstance(body, Mapping):
        return None
    inner = body.get("error")
    if isinstance(inner, str) and inner:
        return VendorError(inner)
    if isinstance(inner, Mapping):
        body = inner
    message = body.get("message") or body.get("detail")
    if not isinstance(message, str) or not message:
        return None
    code = body.get("code") or body.get("type") or body.get("status")
    return VendorError(message, code=code if isinstance(code, str) else None)


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, else ``retry-after`` in
    seconds or as an HTTP date. ``None`` when absent or unreadable."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            seconds = float(value) / 1000
        except ValueError:
            pass
        else:
            if math.isfinite(seconds):
                return max(0.0, seconds)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# --- framing -------------------------------------------------------------------------------


class _SSE:
    """Server-sent events, line by line (the WHATWG rules: ``data``, ``event``, ``id``;
    comments and ``retry`` ignored; an empty line ends an event)."""

    __slots__ = ("backend", "data", "id", "name")

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.data: list[str] = []
        self.name: str | None = None
        self.id: str | None = None

    def feed(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self.data.append(value)
        elif field == "event":
            self.name = value or None
        elif field == "id":
            self.id = value
        return None

    def _dispatch(self) -> Event | None:
        if not self.data:
            self.name = None
            return None
        event = Event("\n".join(self.data), self.name, self.id, self.backend)
        self.data, self.name = [], None
        return event

    def end(self) -> Event | None:
        return self._dispatch()


_NEWLINE = re.compile(r"\r\n|\r|\n")


class _LineSplitter:
    """A streamed text cut into lines at ``\\n``, ``\\r\\n`` and ``\\r`` only (the SSE rule; NDJSON
    needs no more), a leading byte-order mark dropped.

    Not httpx's ``iter_lines``: it splits like :meth:`str.splitlines`, at U+2028, U+0085, form
    feeds and the like too, which JSON may carry raw inside a string (a model's text), so one
    event would arrive in pieces that are not JSON.
    """

    __slots__ = ("pending", "skip_lf", "started")

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.skip_lf = False  # the last text ended with "\r": a "\n" next belongs to it
        self.started = False

    def feed(self, text: str) -> list[str]:
        if not self.started and text:
            self.started = True
            text = text.removeprefix("\ufeff")
        if self.skip_lf and text:
            self.skip_lf = False
            text = text.removeprefix("\n")
        if not text:
            return []
        if "\n" not in text and "\r" not in text:
            self.pending.append(text)
            return []
        if self.pending:
            text = "".join(self.pending) + text
            self.pending = []
        lines = _NEWLINE.split(text)
        rest = lines.pop()
        if rest:
            self.pending.append(rest)
        self.skip_lf = text.endswith("\r")
        return lines

    def flush(self) -> list[str]:
        rest, self.pending = "".join(self.pending), []
        return [rest] if rest else []


class _NDJSON:
    __slots__ = ("backend",)

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def feed(self, line: str) -> Event | None:
        return Event(line, backend=self.backend) if line.strip() else None

    def end(self) -> Event | None:
        return None


# --- the client ----------------------------------------------------------------------------


class _AsyncPool:
    """Up to ``ceil(max_connections / CONNECTIONS_PER_POOL)`` async clients for one event loop.

    httpcore's async pool re-scans every connection for every queued request, so its CPU cost
    per request grows with the connections it holds; several small pools cost less than one
    large one (measured at concurrency 50: 3.8 ms of CPU per request with one pool of 50,
    0.8 ms with ten of 5). A request goes to the least busy pool, the lowest-numbered first,
    so one request at a time only ever opens connections in the first.
    """

    __slots__ = ("_clients", "_load", "_make", "_sizes", "loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        make: Callable[[int], httpx.AsyncClient],
        max_connections: int,
    ) -> None:
        count = max(1, math.ceil(max_connections / CONNECTIONS_PER_POOL))
        base, extra = divmod(max_connections, count)
        self.loop = loop
        self._make = make
        self._sizes = [max(1, base + (1 if i < extra else 0)) for i in range(count)]
        self._clients: list[httpx.AsyncClient | None] = [None] * count
        self._load = [0] * count

    def acquire(self) -> tuple[int, httpx.AsyncClient]:
        load = self._load
        index = load.index(min(load))
        client = self._clients[index]
        if client is None:
            client = self._clients[index] = self._make(self._sizes[index])
        load[index] += 1
        return index, client

    def release(self, index: int) -> None:
        self._load[index] -= 1

    async def aclose(self) -> None:
        clients, self._clients = self._clients, [None] * len(self._clients)
        for client in clients:
            if client is not None:
                await client.aclose()


class HTTPClient:
    """One backend's HTTP service: requests as flow steps, errors mapped, secrets masked.

    :param backend: the backend's name (errors and hints name it).
    :param base_url: the service's URL, which request paths are relative to.
    :param headers: sent with every request. Values of headers whose names mark a credential
        (``Authorization``, ``x-api-key``, ``*-token``, ...) are registered as secrets.
    :param params: query parameters sent with every request (credential-named ones are
        registered as secrets too).
    :param key_env: the variable the credential came from, for the hint of a 401.
    :param request_id_headers: where the server puts its request id.
    :param read_error: the hook that reads a vendor's error body (``status``, parsed JSON or
        text) into a :class:`VendorError`; default :func:`read_error`.
    :param hints: what to do, by error class, instead of the defaults (a subclass without its
        own entry takes its parent's).
    :param secrets: more values to mask wherever they appear.
    """

    def __init__(
        self,
        backend: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 10.0,
        max_connections: int = 20,
        key_env: str | None = None,
        request_id_headers: Sequence[str] = ("x-request-id", "request-id"),
        read_error: Callable[[int, Any], VendorError | None] = read_error,
        hints: Mapping[type[BackendError], str] | None = None,
        secrets: Sequence[str] = (),
        follow_redirects: bool = True,
    ) -> None:
        self.backend = backend
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.key_env = key_env
        self.request_id_headers = tuple(request_id_headers)
        self.read_error = read_error
        self.hints = dict(hints or {})
        for name, value in (headers or {}).items():
            if is_secret_header(name):
                register_secret(value.removeprefix("Bearer ").removeprefix("bearer "))
                register_secret(value)
        for name, value in (params or {}).items():
            if is_secret_name(name):
                register_secret(value)
        for value in secrets:
            register_secret(value)
        self._options: dict[str, Any] = {
            "base_url": base_url,
            "headers": dict(headers or {}),
            "params": dict(params or {}),
            "timeout": httpx.Timeout(timeout_s, connect=connect_timeout_s),
            "follow_redirects": follow_redirects,
        }
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._pools: dict[asyncio.AbstractEventLoop, _AsyncPool] = {}

    def __repr__(self) -> str:  # never the headers: they hold the credential
        return f"HTTPClient({self.backend!r}, {redact(self.base_url)!r})"

    # --- clients -------------------------------------------------------------------------

    def _limits(self, connections: int) -> httpx.Limits:
        return httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    @property
    def client(self) -> httpx.Client:
        """The sync ``httpx.Client``, created on first use (thread-safe)."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(
                        limits=self._limits(self.max_connections), **self._options
                    )
                client = self._client
        return client

    def _make_async(self, connections: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(limits=self._limits(connections), **self._options)

    @property
    def pool(self) -> _AsyncPool:
        """The async clients of the running event loop (a client cannot cross loops; loops
        running at once in several threads each have their own)."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            with self._lock:
                pool = self._pools.get(loop)
                if pool is None:
                    pool = _AsyncPool(loop, self._make_async, self.max_connections)
                    # a loop that has ended took its connections with it: drop its pool
                    live = {old: kept for old, kept in self._pools.items() if not old.is_closed()}
                    self._pools = {**live, loop: pool}
        return pool

    def close(self) -> None:
        """Close the sync client (a later request opens a new one)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async clients of the running event loop (those of a loop that has ended
        are dropped: their connections died with it)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            pool = self._pools.get(loop)
            self._pools = {
                old: kept
                for old, kept in self._pools.items()
                if old is not loop and not old.is_closed()
            }
        if pool is not None:
            await pool.aclose()

    # --- steps ---------------------------------------------------------------------------

    def send(self, request: Request) -> Step[httpx.Response]:
        """A step that sends ``request`` and answers its response, body read; an HTTP error
        status or a transport failure raises the mapped error."""
        return _Send(self, request)

    def json(self, request: Request) -> Step[Any]:
        """A step that sends ``request`` and answers its JSON body.

        :raises ResponseError: (in the flow) when the body is not JSON.
        """
        return _Send(self, request, as_json=True)

    def fetch(self, request: Request) -> Step[Answer]:
        """A step that sends ``request`` and answers its JSON body with the response's request
        id and headers (an :class:`Answer`).

        :raises ResponseError: (in the flow) when the body is not JSON.
        """
        return _Send(self, request, as_json=True, whole=True)

    def stream(
        self,
        request: Request,
        *,
        framing: Framing = "sse",
        feed: Callable[[Event], T | None],
        end: Callable[[], T | None] | None = None,
        finished: Callable[[T], bool] | None = None,
        on_open: Callable[[Mapping[str, str]], None] | None = None,
    ) -> ItemFlow[T]:
        """A flow producing what ``feed`` makes of each event of the streamed answer to
        ``request`` (use it with ``yield from``).

        :param feed: an event to an item, or ``None`` for none.
        :param end: called when the body ends; may make one last item, or raise (a stream
            that ended before its end marker).
        :param finished: when given, an item it accepts ends the stream, and a body that
            ends before such an item is a :class:`~modelport.errors.BackendConnectionError`
            (the answer was cut off).
        :param on_open: called with the response's headers once it is open (to read its
            request id with :meth:`request_id`, say).
        """
        decoder: _SSE | _NDJSON = _SSE(self.backend) if framing == "sse" else _NDJSON(self.backend)
        lines: _Lines = yield _Open(self, request)
        if on_open is not None:
            on_open(lines.headers)
        done = False
        while not done:  # ends by break at the body's end, or when an item is finished
            line = yield lines
            if line is None:
                break
            event = decoder.feed(line)
            if event is None:
                continue
            item = feed(event)
            if item is not None:
                yield item
                done = finished is not None and finished(item)
        else:
            # Finished. What is left of the body (a closing blank line, a last ping) is read
            # so the connection goes back to the pool; a body that goes on regardless is cut
            # (its connection closed), never waited for.
            try:
                for _ in range(_DRAIN_LINES):
                    if (yield lines) is None:
                        break
            except BackendError:  # the answer is whole: a connection lost now loses nothing
                pass
            return
        if (event := decoder.end()) is not None and (item := feed(event)) is not None:
            yield item
            done = finished is not None and finished(item)
        if end is not None and (item := end()) is not None:
            yield item
            done = done or (finished is not None and finished(item))
        if finished is not None and not done:
            raise BackendConnectionError(
                "the stream ended before the answer was complete",
                backend=self.backend,
                hint="the connection was cut; retry",
            )

    # --- errors --------------------------------------------------------------------------

    def request_id(self, headers: Mapping[str, str]) -> str | None:
        """The server's request id in ``headers`` (the first of ``request_id_headers``)."""
        for name in self.request_id_headers:
            if value := headers.get(name):
                return value
        return None

    def _hint(self, kind: type[BackendError]) -> str | None:
        for cls in kind.__mro__:
            if cls in self.hints:
                return self.hints[cls]
        url = redact(self.base_url)
        if issubclass(kind, PermissionDeniedError):
            return "the credential is valid but not allowed to do this (check its access)"
        if issubclass(kind, AuthenticationError):
            where = f"${self.key_env}" if self.key_env else "the backend's credentials"
            return f"check the API key in {where} for {url}"
        if issubclass(kind, NotFoundError):
            return (
                f"check the model name or id (`modelport models` lists them) and base_url ({url})"
            )
        if issubclass(kind, RateLimitedError):
            return "the server kept rate limiting; retry later or lower [limits] for this backend"
        if issubclass(kind, BackendTimeoutError):
            return (
                f"no answer within {self.timeout_s:g}s; raise [backends.{self.backend}] "
                "timeout_s or retry later"
            )
        if issubclass(kind, BackendConnectionError):
            return f"could not talk to {url}; check base_url and the network"
        if issubclass(kind, TransientError):
            return "the server failed; retry later"
        return None

    def status_error(self, response: httpx.Response) -> BackendError:
        """The error for an HTTP error ``response`` (its body read): the status's class, the
        vendor's message through ``read_error``, ``retry-after`` (else the body's own wait),
        ``x-should-retry``, the request id, and what to do."""
        text = response.content.decode("utf-8", "replace")
        try:
            body: Any = json.loads(text) if text.strip() else None
        except (ValueError, RecursionError):
            body = text
        return self._error(
            response.status_code,
            body,
            text,
            headers=response.headers,
            request_id=self.request_id(response.headers),
        )

    def event_error(
        self, body: Any, *, status: int | None = None, request_id: str | None = None
    ) -> BackendError:
        """The error for an error a server sent *inside* a stream (an ``{"error": ...}``
        event): ``body`` read by ``read_error`` and mapped like a response of ``status``
        (when the event carries one; otherwise a retryable
        :class:`~modelport.errors.TransientError`, unless the hook says better)."""
        text = body if isinstance(body, str) else json.dumps(body, default=str)[:200]
        error = self._error(status or 500, body, text, request_id=request_id, mid_stream=True)
        return error

    def _error(
        self,
        status: int,
        body: Any,
        text: str,
        *,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        mid_stream: bool = False,
    ) -> BackendError:
        vendor = self.read_error(status, body)
        message = vendor.message if vendor is not None and vendor.message else _first_line(text)
        kind = vendor.kind if vendor is not None and vendor.kind is not None else None
        kind = kind or error_class(status)
        retryable = vendor.retryable if vendor is not None else None
        should_retry = headers.get("x-should-retry") if headers is not None else None
        if retryable is None and should_retry in ("true", "false"):
            retryable = should_retry == "true"
        wait = retry_after(headers) if headers is not None else None
        if wait is None and vendor is not None:
            wait = vendor.retry_after
        hint = vendor.hint if vendor is not None and vendor.hint else self._hint(kind)
        prefix = "the server failed mid-stream" if mid_stream else f"HTTP {status}"
        return kind(
            f"{prefix}: {redact(' '.join(message.split()))}" if message else prefix,
            backend=self.backend,
            status=None if mid_stream else status,
            request_id=request_id,
            retryable=retryable,
            retry_after=wait,
            hint=hint,
        )

    def transport_error(
        self, exc: httpx.HTTPError | httpx.InvalidURL, *, streaming: bool = False
    ) -> BackendError:
        """The error for a request that got no (whole) answer."""
        redact_exception(exc)  # in place: it is chained behind ours
        if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
            return BackendConnectionError(  # no retry will mend the address
                f"the URL is unusable: {redact(str(exc))}",
                backend=self.backend,
                retryable=False,
                hint=f"check [backends.{self.backend}] base_url, now {redact(self.base_url)!r}: "
                "it needs http:// or https:// and a host",
            )
        kind: type[BackendError]
        if isinstance(exc, httpx.TimeoutException):
            kind = BackendTimeoutError
        elif isinstance(exc, httpx.DecodingError):
            kind = ResponseError
        else:
            kind = BackendConnectionError
        detail = redact(" ".join(str(exc).split()))
        where = "mid-stream" if streaming else "before it answered"
        message = f"{type(exc).__name__} {where}" + (f": {detail}" if detail else "")
        return kind(message, backend=self.backend, hint=self._hint(kind))

    def parse_json(self, response: httpx.Response) -> Any:
        """``response``'s body as JSON.

        :raises ResponseError: when it is not JSON.
        """
        try:
            return json.loads(response.content)
        except (ValueError, RecursionError):
            raise ResponseError(
                f"the server answered with something that is not JSON: "
                f"{redact(response.text[:60])!r}",
                backend=self.backend,
                status=response.status_code,
                request_id=self.request_id(response.headers),
                hint=f"check that base_url ({redact(self.base_url)}) is the API's address",
            ) from None


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def _first_line(text: str) -> str:
    """The line of an error body that says what went wrong: its first, or for an HTML page (a
    proxy's or gateway's, not the API's) its title, else its first line of text."""
    text = text.strip()
    if text.startswith("<"):
        head = text[:20_000]
        found = _TITLE.search(head)
        text = found.group(1) if found and found.group(1).strip() else _TAG.sub("\n", head)
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0].strip()[:200] if lines else ""


@attrs.frozen
class Answer:
    """A JSON answer with what came with it (the result of :meth:`HTTPClient.fetch`).

    :ivar data: the parsed body.
    :ivar request_id: the server's request id, if it sent one.
    :ivar headers: the response's headers.
    """

    data: Any
    request_id: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)


class _Send(Step[Any]):
    __slots__ = ("as_json", "http", "request", "whole")

    def __init__(
        self, http: HTTPClient, request: Request, *, as_json: bool = False, whole: bool = False
    ) -> None:
        self.http = http
        self.request = request
        self.as_json = as_json
        self.whole = whole

    def _answer(self, response: httpx.Response) -> Any:
        if response.is_error:
            raise self.http.status_error(response)
        if not self.as_json:
            return response
        data = self.http.parse_json(response)
        if self.whole:
            headers = response.headers
            return Answer(data, self.http.request_id(headers), headers)
        return data

    def run(self, scope: Scope) -> Any:
        request = self.request
        try:
            response = self.http.client.request(
                request.method, request.path, **request._kwargs(self.http.connect_timeout_s)
            )
        except _TRANSPORT as exc:
            raise self.http.transport_error(exc) from exc
        return self._answer(response)

    async def arun(self, scope: AsyncScope) -> Any:
        request = self.request
        pool = self.http.pool
        index, client = pool.acquire()
        try:
            response = await client.request(
                request.method, request.path, **request._kwargs(self.http.connect_timeout_s)
            )
        except _TRANSPORT as exc:
            raise self.http.transport_error(exc) from exc
        finally:
            pool.release(index)
        return self._answer(response)


class _Lines(Step["str | None"]):
    """The next line of an open streamed response (``None`` at its end), as a step."""

    __slots__ = ("chunks", "ended", "headers", "http", "pending", "splitter")

    def __init__(self, http: HTTPClient, chunks: Any, headers: Mapping[str, str]) -> None:
        self.http = http
        self.headers = headers
        self.chunks = chunks  # the response's iter_text() or aiter_text()
        self.splitter = _LineSplitter()
        self.pending: collections.deque[str] = collections.deque()
        self.ended = False

    def _take(self, text: str | None) -> None:
        if text is None:
            self.ended = True
            self.pending.extend(self.splitter.flush())
        else:
            self.pending.extend(self.splitter.feed(text))

    def run(self, scope: Scope) -> str | None:
        try:
            while not self.pending and not self.ended:
                self._take(next(self.chunks, None))
        except _TRANSPORT as exc:
            raise self.http.transport_error(exc, streaming=True) from exc
        return self.pending.popleft() if self.pending else None

    async def arun(self, scope: AsyncScope) -> str | None:
        try:
            while not self.pending and not self.ended:
                self._take(await anext(self.chunks, None))
        except _TRANSPORT as exc:
            raise self.http.transport_error(exc, streaming=True) from exc
        return self.pending.popleft() if self.pending else None


class _Open(Step[_Lines]):
    """Open a streamed response for the rest of the flow; an error status raises."""

    __slots__ = ("http", "request")

    def __init__(self, http: HTTPClient, request: Request) -> None:
        self.http = http
        self.request = request

    def run(self, scope: Scope) -> _Lines:
        http, request = self.http, self.request
        try:
            response = scope.stack.enter_context(
                http.client.stream(
                    request.method, request.path, **request._kwargs(http.connect_timeout_s)
                )
            )
            if response.is_error:
                response.read()
        except _TRANSPORT as exc:
            raise http.transport_error(exc) from exc
        if response.is_error:
            raise http.status_error(response)
        return _Lines(http, response.iter_text(), response.headers)

    async def arun(self, scope: AsyncScope) -> _Lines:
        http, request = self.http, self.request
        pool = http.pool
        index, client = pool.acquire()
        scope.stack.callback(pool.release, index)
        try:
            response = await scope.stack.enter_async_context(
                client.stream(
                    request.method, request.path, **request._kwargs(http.connect_timeout_s)
                )
            )
            if response.is_error:
                await response.aread()
        except _TRANSPORT as exc:
            raise http.transport_error(exc) from exc
        if response.is_error:
            raise http.status_error(response)
        return _Lines(http, response.aiter_text(), response.headers)
