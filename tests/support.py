"""What several test modules share: the fuzzing settings, running a hub call from either hub
to its result, and building either hub for a test that runs against both (``hub_kind``)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from hypothesis import HealthCheck, settings

from modelport import AsyncHub, Hub
from modelport.async_hub import AsyncReplyStream
from modelport.testing import make_test_async_hub, make_test_hub

#: The two hubs a hub test runs against (the ``hub_kind`` fixture of ``tests/core/conftest.py``).
HUB_KINDS = ("sync", "async")

#: Every loader and CLI argument is fuzzed with a thousand generated cases, derandomised (the
#: same cases on every run, so a failure can be reproduced) and with no example database.
FUZZ = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def run(value: Any) -> Any:
    """The value, or the awaited result when a hub method returned a coroutine (so one test
    drives ``Hub`` and ``AsyncHub`` alike)."""
    if inspect.isawaitable(value):

        async def wait() -> Any:
            return await value

        return asyncio.run(wait())
    return value


class _AsyncStreamView(Iterator[Any]):
    """An :class:`AsyncReplyStream` read as a :class:`modelport.ReplyStream`, on its hub's
    event loop."""

    def __init__(self, stream: AsyncReplyStream, runner: asyncio.Runner) -> None:
        self._stream, self._runner = stream, runner

    def __next__(self) -> Any:
        try:
            return self._runner.run(anext(self._stream))
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        self._runner.run(self._stream.aclose())

    @property
    def answer(self) -> Any:
        return self._stream.answer

    @property
    def text(self) -> str:
        return self._stream.text


class AsyncHubView:
    """An :class:`AsyncHub` used as a :class:`Hub`: each call awaited to its end on one event
    loop kept for the hub's life (a stream can be read across calls), so one test body drives
    both hubs."""

    def __init__(self, hub: AsyncHub) -> None:
        self.hub = hub
        self._runner = asyncio.Runner()
        _VIEWS.append(self)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.hub, name)
        if not callable(found):
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            value = found(*args, **kwargs)
            if inspect.isawaitable(value):
                value = self._runner.run(_awaited(value))
            if isinstance(value, AsyncReplyStream):
                return _AsyncStreamView(value, self._runner)
            return value

        return call

    def __enter__(self) -> AsyncHubView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self in _VIEWS:  # once
            _VIEWS.remove(self)
            self._runner.run(self.hub.aclose())
            self._runner.close()


#: The views made by the running test, closed by the ``hub_kind`` fixture after it.
_VIEWS: list[AsyncHubView] = []


def close_views() -> None:
    """Close the hub views (their hubs and event loops) the test made."""
    while _VIEWS:
        _VIEWS[-1].close()


async def _awaited(value: Any) -> Any:
    return await value


def make_hub(kind: str, *args: Any, **kwargs: Any) -> Any:
    """``make_test_hub(*args, **kwargs)`` for ``kind`` ``"sync"``; for ``"async"``, the
    :class:`AsyncHub` twin behind an :class:`AsyncHubView` (typed ``Any``: used as a Hub)."""
    if kind == "sync":
        hub: Hub = make_test_hub(*args, **kwargs)
        return hub
    return AsyncHubView(make_test_async_hub(*args, **kwargs))


class CutStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that sends ``parts`` and then loses the connection."""

    def __init__(self, *parts: str) -> None:
        self.parts = [p.encode() for p in parts]

    def __iter__(self) -> Iterator[bytes]:
        yield from self.parts
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


def cut_sse(*events: str) -> httpx.Response:
    """A server-sent-event stream that sends ``events`` and then loses the connection."""
    return httpx.Response(
        200, stream=CutStream(*events), headers={"content-type": "text/event-stream"}
    )
