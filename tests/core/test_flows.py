"""``modelport.flows``: one generator, driven sync and async, behaves the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

from modelport.flows import (
    Blocking,
    Enter,
    Flow,
    Invoke,
    ItemFlow,
    Sleep,
    adrive,
    adrive_iter,
    drive,
    drive_iter,
    twin,
    twin_iter,
)

from ..support import HUB_KINDS


def _fail() -> int:
    raise KeyError("missing")


def _drive(kind: str, flow: Flow[Any], waits: list[float] | None = None) -> Any:
    """Run ``flow`` with the sync or the async driver, recording its sleeps."""
    record = waits if waits is not None else []

    async def asleep(seconds: float) -> None:
        record.append(seconds)

    if kind == "sync":
        return drive(flow, sleep=record.append)
    return asyncio.run(adrive(flow, sleep=asleep))


def _items(kind: str, flow: ItemFlow[Any], take: int | None = None) -> list[Any]:
    """The items of ``flow`` (only the first ``take``, then the iterator is closed)."""
    if kind == "sync":
        found = []
        it = drive_iter(flow)
        for item in it:
            found.append(item)
            if take is not None and len(found) == take:
                it.close()  # type: ignore[attr-defined]
                break
        return found

    async def collect() -> list[Any]:
        found = []
        it = adrive_iter(flow)
        async for item in it:
            found.append(item)
            if take is not None and len(found) == take:
                await it.aclose()  # type: ignore[attr-defined]
                break
        return found

    return asyncio.run(collect())


@pytest.mark.parametrize("kind", HUB_KINDS)
def test_a_step_that_fails_is_raised_inside_the_flow_where_it_can_be_handled(kind: str) -> None:
    def flow() -> Flow[str]:
        try:
            yield Blocking(_fail)
        except KeyError:
            value = yield Blocking(str.upper, "handled")
            return str(value)
        return "not reached"

    assert _drive(kind, flow()) == "HANDLED"


@pytest.mark.parametrize("kind", HUB_KINDS)
def test_an_unhandled_error_propagates_to_the_caller(kind: str) -> None:
    def flow() -> Flow[int]:
        value: int = yield Blocking(_fail)
        return value

    with pytest.raises(KeyError, match="missing"):
        _drive(kind, flow())


@pytest.mark.parametrize("kind", HUB_KINDS)
def test_sleep_uses_the_drivers_sleep(kind: str) -> None:
    def flow() -> Flow[None]:
        yield Sleep(1.5)
        yield Sleep(0)  # nothing to wait
        yield Sleep(2)

    waits: list[float] = []
    _drive(kind, flow(), waits)
    assert waits == [1.5, 2]


@pytest.mark.parametrize("kind", HUB_KINDS)
def test_invoke_calls_the_form_of_its_driver(kind: str) -> None:
    async def native(x: int) -> str:
        return f"async {x}"

    def flow() -> Flow[tuple[str, str]]:
        both = yield Invoke(lambda x: f"sync {x}", native, 1)
        threaded = yield Invoke(lambda x: f"sync {x}", None, 2)  # no async form: a thread
        return both, threaded

    assert _drive(kind, flow()) == (f"{kind} 1", "sync 2")


@pytest.mark.parametrize("kind", HUB_KINDS)
def test_entered_context_managers_are_exited_when_the_iterator_is_closed_early(
    kind: str,
) -> None:
    events: list[str] = []

    @contextmanager
    def opened() -> Iterator[str]:
        events.append("enter")
        try:
            yield "resource"
        finally:
            events.append("exit")

    @asynccontextmanager
    async def aopened() -> AsyncIterator[str]:
        events.append("enter")
        try:
            yield "resource"
        finally:
            events.append("exit")

    def flow() -> ItemFlow[str]:
        resource = yield Enter(opened, aopened)
        try:
            for i in range(10):
                yield f"{resource} {i}"
        finally:
            events.append("flow closed")

    assert _items(kind, flow(), take=2) == ["resource 0", "resource 1"]
    assert events == ["enter", "flow closed", "exit"]


@pytest.mark.parametrize("kind", HUB_KINDS)
def test_an_item_flow_gives_its_items_and_does_its_steps_between_them(kind: str) -> None:
    def flow() -> ItemFlow[int]:
        for i in range(3):
            doubled = yield Blocking(lambda n: n * 2, i)
            yield doubled

    assert _items(kind, flow()) == [0, 2, 4]


class _Backend:
    def __init__(self) -> None:
        self.base = 10

    def _complete(self, x: int) -> Flow[int]:
        y: int = yield Blocking(lambda: x + self.base)
        return y

    complete, acomplete = twin(_complete)

    def _stream(self, n: int) -> ItemFlow[int]:
        yield from range(n)

    stream, astream = twin_iter(_stream)


def test_twin_makes_the_named_sync_and_async_methods() -> None:
    backend = _Backend()
    assert backend.complete(1) == 11
    assert asyncio.run(backend.acomplete(2)) == 12
    assert (_Backend.complete.__name__, _Backend.acomplete.__name__) == ("complete", "acomplete")
    assert _Backend.acomplete.__qualname__ == "_Backend.acomplete"
    assert list(backend.stream(3)) == [0, 1, 2]

    async def collect() -> list[int]:
        return [i async for i in backend.astream(2)]

    assert asyncio.run(collect()) == [0, 1]
    assert (_Backend.stream.__name__, _Backend.astream.__name__) == ("stream", "astream")


def test_entered_contexts_learn_how_the_flow_ended_sync_and_async() -> None:
    import contextlib

    from modelport.flows import Enter, adrive, drive

    seen: list[str] = []

    @contextlib.contextmanager
    def transaction() -> Any:
        try:
            yield None
        except ValueError:
            seen.append("rolled back")
            raise
        else:
            seen.append("committed")

    @contextlib.asynccontextmanager
    async def atransaction() -> Any:
        with transaction():
            yield None

    def flow(fail: bool) -> Any:
        yield Enter(transaction, atransaction)
        if fail:
            raise ValueError("no")
        return "ok"

    assert drive(flow(False)) == "ok"
    with pytest.raises(ValueError, match="no"):
        drive(flow(True))
    assert asyncio.run(adrive(flow(False))) == "ok"
    with pytest.raises(ValueError, match="no"):
        asyncio.run(adrive(flow(True)))
    assert seen == ["committed", "rolled back", "committed", "rolled back"]
