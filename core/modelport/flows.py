"""One logic, two drivers: operations written once as generators, run sync or async.

An operation that does I/O is written as a *flow*: a generator that yields a :class:`Step`
wherever it needs something done (call this function, wait this long, open this stream) and
receives the step's result back, as the value of the ``yield``. A flow never blocks and never
awaits; a short sync loop (:func:`drive`) or a short async loop (:func:`adrive`) does the
steps. This is how httpx writes ``Auth.auth_flow`` once for ``Client`` and ``AsyncClient``,
and how modelport writes the hub's operations, the retry loop, the shared rate limiter and the
HTTP backend kit (:mod:`modelport.http`) once for both worlds.

A step that fails is raised *inside* the flow, at its ``yield``, so a flow handles errors
with ordinary ``try``/``except``::

    def fetch(self, job_id: str) -> Flow[TrainingJob]:
        try:
            data = yield Blocking(self.store.load_job, job_id)
        except KeyError:
            data = yield Sleep(1.0)  # waits, then answers None
        return parse(data)

    # sync:  job = drive(fetch(store, "job-1"))
    # async: job = await adrive(fetch(store, "job-1"))

A flow that *produces* items (a stream of deltas) yields them between its steps: anything it
yields that is not a :class:`Step` is an item, given to the consumer by :func:`drive_iter` or
:func:`adrive_iter`. Resources a flow opens with :class:`Enter` are closed when the flow ends,
however it ends (exhausted, failed, or closed early by its consumer).

:func:`twin` and :func:`twin_iter` turn one flow method into a backend's sync and async
methods (``complete`` and ``acomplete``), typed, so no backend operation is written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterator,
)
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, Concatenate, Generic, ParamSpec, TypeAlias, TypeVar

__all__ = [
    "AsyncScope",
    "Blocking",
    "Enter",
    "Flow",
    "Invoke",
    "ItemFlow",
    "Sleep",
    "Scope",
    "Step",
    "adrive",
    "adrive_iter",
    "drive",
    "drive_iter",
    "twin",
    "twin_iter",
]

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")
P = ParamSpec("P")

#: A flow that returns ``R``: it yields steps and gets their results back.
Flow: TypeAlias = Generator["Step[Any]", Any, R]

SyncSleep = Callable[[float], None]
AsyncSleep = Callable[[float], Awaitable[None]]


class Step(Generic[T]):
    """Something a flow needs done; the driver does it and sends back its result.

    Subclasses implement :meth:`run` (in the calling thread) and :meth:`arun` (on the event
    loop, never blocking it).
    """

    __slots__ = ()

    def run(self, scope: Scope) -> T:
        raise NotImplementedError

    async def arun(self, scope: AsyncScope) -> T:
        raise NotImplementedError


#: A flow that produces items of type ``T`` (and yields steps between them). Defined here, after
#: :class:`Step`: with ``"Step[Any] | T"`` as a string, ``ItemFlow[str]`` fails at run time.
ItemFlow: TypeAlias = Generator[Step[Any] | T, Any, None]


class Sleep(Step[None]):
    """Wait ``seconds`` (with the driver's ``sleep``, which tests replace)."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self, scope: Scope) -> None:
        if self.seconds > 0:
            scope.sleep(self.seconds)

    async def arun(self, scope: AsyncScope) -> None:
        if self.seconds > 0:
            await scope.sleep(self.seconds)

    def __repr__(self) -> str:
        return f"Sleep({self.seconds!r})"


class Blocking(Step[T]):
    """Call ``fn(*args, **kwargs)``: in place when driven sync, in a worker thread when async
    (for blocking work: files, a store, image decoding)."""

    __slots__ = ("args", "fn", "kwargs")

    def __init__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def run(self, scope: Scope) -> T:
        return self.fn(*self.args, **self.kwargs)

    async def arun(self, scope: AsyncScope) -> T:
        return await asyncio.to_thread(self.fn, *self.args, **self.kwargs)

    def __repr__(self) -> str:
        return f"Blocking({getattr(self.fn, '__qualname__', self.fn)!r})"


class Invoke(Step[T]):
    """Call ``sync(*args)`` when driven sync, await ``async_(*args)`` when driven async: the
    same operation's two native forms (a backend's ``complete`` and ``acomplete``). Without
    ``async_``, the sync form runs in a worker thread."""

    __slots__ = ("args", "async_", "sync")

    def __init__(
        self,
        sync: Callable[..., T],
        async_: Callable[..., Awaitable[T]] | None,
        /,
        *args: Any,
    ) -> None:
        self.sync = sync
        self.async_ = async_
        self.args = args

    def run(self, scope: Scope) -> T:
        return self.sync(*self.args)

    async def arun(self, scope: AsyncScope) -> T:
        if self.async_ is None:
            return await asyncio.to_thread(self.sync, *self.args)
        return await self.async_(*self.args)

    def __repr__(self) -> str:
        return f"Invoke({getattr(self.sync, '__qualname__', self.sync)!r})"


class Enter(Step[T]):
    """Enter a context manager for the rest of the flow (an open HTTP response): ``sync()``
    makes it when driven sync, ``async_()`` when async. It is exited when the flow ends."""

    __slots__ = ("async_", "sync")

    def __init__(
        self,
        sync: Callable[[], AbstractContextManager[T]],
        async_: Callable[[], AbstractAsyncContextManager[T]],
    ) -> None:
        self.sync = sync
        self.async_ = async_

    def run(self, scope: Scope) -> T:
        return scope.stack.enter_context(self.sync())

    async def arun(self, scope: AsyncScope) -> T:
        return await scope.stack.enter_async_context(self.async_())


class Scope:
    """What a sync driver lends its steps: how to sleep (``sleep``), and where what they open
    is kept until the flow ends (``stack``, a :class:`contextlib.ExitStack`, made when first
    used: most flows open nothing)."""

    __slots__ = ("_stack", "sleep")

    def __init__(self, sleep: SyncSleep, stack: contextlib.ExitStack | None = None) -> None:
        self.sleep = sleep
        self._stack = stack

    @property
    def stack(self) -> contextlib.ExitStack:
        if self._stack is None:
            self._stack = contextlib.ExitStack()
        return self._stack

    def close(self, error: BaseException | None = None) -> None:
        """Exit what the flow entered, telling each context how the flow ended."""
        stack, self._stack = self._stack, None  # once
        if stack is not None:
            exit_info = (type(error), error, error.__traceback__) if error else (None,) * 3
            stack.__exit__(*exit_info)


class AsyncScope:
    """The async driver's :class:`Scope` (``stack`` is a :class:`contextlib.AsyncExitStack`)."""

    __slots__ = ("_stack", "sleep")

    def __init__(self, sleep: AsyncSleep, stack: contextlib.AsyncExitStack | None = None) -> None:
        self.sleep = sleep
        self._stack = stack

    @property
    def stack(self) -> contextlib.AsyncExitStack:
        if self._stack is None:
            self._stack = contextlib.AsyncExitStack()
        return self._stack

    async def aclose(self, error: BaseException | None = None) -> None:
        """The async form of :meth:`Scope.close`."""
        stack, self._stack = self._stack, None  # once
        if stack is not None:
            exit_info = (type(error), error, error.__traceback__) if error else (None,) * 3
            await stack.__aexit__(*exit_info)


def drive(flow: Flow[R], *, sleep: SyncSleep = time.sleep) -> R:
    """Run ``flow`` to its end in this thread; return what it returns."""
    scope = Scope(sleep)
    send: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(send)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            error = None
            try:
                send = step.run(scope)
            except BaseException as exc:  # raised inside the flow, where it can be handled
                error = exc
                send = None
    except BaseException as exc:
        scope.close(exc)  # a context that swallows the error cannot change the flow's end
        raise
    finally:
        scope.close()


async def adrive(flow: Flow[R], *, sleep: AsyncSleep = asyncio.sleep) -> R:
    """Run ``flow`` to its end on the running event loop; return what it returns."""
    scope = AsyncScope(sleep)
    send: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(send)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            error = None
            try:
                send = await step.arun(scope)
            except BaseException as exc:
                error = exc
                send = None
    except BaseException as exc:
        await scope.aclose(exc)
        raise
    finally:
        await scope.aclose()


def drive_iter(flow: ItemFlow[T], *, sleep: SyncSleep = time.sleep) -> Iterator[T]:
    """The items ``flow`` produces, its steps done in this thread. Closing the iterator early
    closes the flow and whatever it entered."""
    with contextlib.ExitStack() as stack, contextlib.closing(flow):
        scope = Scope(sleep, stack)
        send: Any = None
        error: BaseException | None = None
        while True:
            try:
                out = flow.throw(error) if error is not None else flow.send(send)
            except StopIteration:
                return
            error = send = None
            if isinstance(out, Step):
                try:
                    send = out.run(scope)
                except BaseException as exc:
                    error = exc
            else:
                yield out


async def adrive_iter(flow: ItemFlow[T], *, sleep: AsyncSleep = asyncio.sleep) -> AsyncIterator[T]:
    """The async twin of :func:`drive_iter` (close it with ``aclose()`` to stop early)."""
    async with contextlib.AsyncExitStack() as stack:
        with contextlib.closing(flow):
            scope = AsyncScope(sleep, stack)
            send: Any = None
            error: BaseException | None = None
            while True:
                try:
                    out = flow.throw(error) if error is not None else flow.send(send)
                except StopIteration:
                    return
                error = send = None
                if isinstance(out, Step):
                    try:
                        send = await out.arun(scope)
                    except BaseException as exc:
                        error = exc
                else:
                    yield out


def twin(
    fn: Callable[Concatenate[S, P], Flow[R]],
) -> tuple[Callable[Concatenate[S, P], R], Callable[Concatenate[S, P], Coroutine[Any, Any, R]]]:
    """A method's sync and async forms from one flow method::

    class Backend:
        def _complete(self, request: ChatRequest) -> Flow[Reply]: ...

        complete, acomplete = twin(_complete)
    """

    @functools.wraps(fn)
    def sync(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return drive(fn(self, *args, **kwargs))

    @functools.wraps(fn)
    async def async_(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await adrive(fn(self, *args, **kwargs))

    _rename(fn, sync, async_)
    return sync, async_


def twin_iter(
    fn: Callable[Concatenate[S, P], ItemFlow[T]],
) -> tuple[Callable[Concatenate[S, P], Iterator[T]], Callable[Concatenate[S, P], AsyncIterator[T]]]:
    """:func:`twin` for a flow that produces items (``stream`` and ``astream``)."""

    @functools.wraps(fn)
    def sync(self: S, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        return drive_iter(fn(self, *args, **kwargs))

    @functools.wraps(fn)
    def async_(self: S, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        return adrive_iter(fn(self, *args, **kwargs))

    _rename(fn, sync, async_)
    return sync, async_


def _rename(fn: Callable[..., Any], sync: Callable[..., Any], async_: Callable[..., Any]) -> None:
    """``_complete`` gives ``complete`` and ``acomplete`` (as tracebacks and docs show them)."""
    name = fn.__name__.lstrip("_")
    owner, dot, _ = fn.__qualname__.rpartition(".")
    for method, method_name in ((sync, name), (async_, "a" + name)):
        method.__name__ = method_name
        method.__qualname__ = owner + dot + method_name
