"""Retry policy and client-side rate limiting, applied by the core around every backend call.

Backends raise :class:`modelport.errors.BackendError` subclasses that say whether they are
``retryable`` and how long the vendor asked to wait (``retry_after``); the core decides the
rest. Vendor SDK retries must be off, so attempts never stack.

A limit is kept in the process (:class:`RateLimiter`), or in Redis when its settings name a
``redis_url``, so that every process and machine shares one budget (see
:func:`make_limiter`; the Redis side lives in ``modelport._shared_limits`` and loads only then).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import tenacity

from .errors import BackendError, RateLimitedError
from .flows import Flow, Sleep, adrive, drive

if TYPE_CHECKING:
    from .config import LimitSettings, RetrySettings

__all__ = ["Limiter", "RateLimiter", "RetryPolicy", "TokenBucket", "make_limiter"]


@attrs.frozen
class RetryPolicy:
    """When and how long to retry a failed backend call.

    Only :class:`~modelport.errors.BackendError` with ``retryable=True`` is retried. The wait is
    the vendor's ``retry_after`` when given, otherwise exponential backoff ``initial_s * 2**n``
    plus up to ``jitter_s`` of jitter, capped at ``max_s``. A call that is not idempotent (an
    upload, a job creation) is retried only after a rate-limit refusal, which means the vendor
    did not act on it.

    A vendor asking for a ``retry_after`` longer than ``max_retry_after_s`` is not retried at
    all: the error is raised at once (no sleep), as it is (a
    :class:`~modelport.errors.RateLimitedError` stays one), its ``hint`` replaced by one that
    says how long the server asked to wait and which setting would allow it.
    """

    attempts: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    initial_s: float = 0.5
    max_s: float = 30.0
    max_retry_after_s: float = 60.0
    jitter_s: float = 1.0

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> RetryPolicy:
        return cls(**attrs.asdict(settings))

    def should_retry(self, exc: BaseException, *, idempotent: bool = True) -> bool:
        """Whether ``exc`` deserves another attempt (ignoring how many were made).

        An error whose ``retry_after`` is above ``max_retry_after_s`` does not; its ``hint``
        then says so (see the class docs).
        """
        if not isinstance(exc, BackendError) or not exc.retryable:
            return False
        if not (idempotent or isinstance(exc, RateLimitedError)):
            return False
        if exc.retry_after is not None and exc.retry_after > self.max_retry_after_s:
            exc.hint = (
                f"the server asked to wait {_seconds(exc.retry_after)}s, more than [retry] "
                f"max_retry_after_s = {_seconds(self.max_retry_after_s)}; raise it to wait "
                "that long, or retry later"
            )
            return False
        return True

    def will_retry(self, exc: BaseException, attempt: int, *, idempotent: bool = True) -> bool:
        """Whether attempt number ``attempt`` (1-based) that failed with ``exc`` is retried."""
        return attempt < self.attempts and self.should_retry(exc, idempotent=idempotent)

    def wait_s(self, exc: BaseException | None, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt``."""
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:  # above max_retry_after_s, should_retry said no
            return float(min(max(retry_after, 0.0), self.max_retry_after_s))
        backoff = tenacity.wait_exponential_jitter(
            multiplier=self.initial_s, max=self.max_s, jitter=self.jitter_s
        )
        return float(backoff(_state(attempt)))

    def _kwargs(
        self,
        idempotent: bool,
        before_sleep: Callable[[tenacity.RetryCallState], Any] | None,
        first_attempt: int,
    ) -> dict[str, Any]:
        offset = first_attempt - 1

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self.wait_s(exc, state.attempt_number + offset)

        return {
            "stop": tenacity.stop_after_attempt(max(1, self.attempts - offset)),
            "wait": wait,
            "retry": tenacity.retry_if_exception(
                lambda exc: self.should_retry(exc, idempotent=idempotent)
            ),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def retrying(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        idempotent: bool = True,
        before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
        first_attempt: int = 1,
    ) -> tenacity.Retrying:
        """A ``tenacity.Retrying`` that applies this policy; callers see our errors, never
        ``tenacity.RetryError``.

        :param first_attempt: the number of the first attempt it makes (``2`` when the caller
            already made one), so backoff and the attempt cap count every attempt.
        """
        kwargs = self._kwargs(idempotent, before_sleep, first_attempt)
        return tenacity.Retrying(sleep=sleep, **kwargs)

    def async_retrying(
        self,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        idempotent: bool = True,
        before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
        first_attempt: int = 1,
    ) -> tenacity.AsyncRetrying:
        """The asyncio twin of :meth:`retrying`."""
        kwargs = self._kwargs(idempotent, before_sleep, first_attempt)
        return tenacity.AsyncRetrying(sleep=sleep, **kwargs)


def _seconds(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _state(attempt: int) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return state


class TokenBucket:
    """A token bucket refilled at ``per_minute / 60`` tokens a second, holding at most
    ``capacity`` (default ``per_minute``: one minute's burst).

    Acquiring reserves tokens at once, letting the level go negative, and returns how long the
    caller must wait for the reservation to be covered. Waiters are therefore served in arrival
    order and never stampede; the lock is held only for arithmetic, so the bucket is safe to
    share between threads and between asyncio tasks.
    """

    def __init__(
        self,
        per_minute: float,
        *,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0 or (capacity is not None and capacity <= 0):
            raise ValueError("a rate limit must be positive")
        self.capacity = float(per_minute if capacity is None else capacity)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._level = self.capacity
        self._stamp = clock()
        self._lock = threading.Lock()

    def reserve(self, amount: float) -> float:
        """Take ``amount`` tokens; return the seconds to wait before using them."""
        with self._lock:
            now = self._clock()
            self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
            self._stamp = now
            self._level -= amount
            return 0.0 if self._level >= 0 else -self._level / self.rate

    def refund(self, amount: float) -> None:
        """Give back ``amount`` tokens (negative takes more), e.g. when usage was over-estimated."""
        with self._lock:
            self._level = min(self.capacity, self._level + amount)


class Limiter(Protocol):
    """What the core asks of a rate limiter: :class:`RateLimiter`, or the shared one.

    :meth:`flow` is the acquisition itself, as a flow (see :mod:`modelport.flows`) that the
    guarded call runs; ``acquire`` and ``aacquire`` drive it for direct callers.
    """

    def flow(self, tokens: int = 0) -> Flow[float]: ...

    def acquire(self, tokens: int = 0, *, sleep: Callable[[float], None] = ...) -> float: ...

    async def aacquire(
        self, tokens: int = 0, *, sleep: Callable[[float], Awaitable[None]] = ...
    ) -> float: ...

    def settle(self, estimated: int, actual: int) -> None: ...


def make_limiter(backend: str, settings: LimitSettings) -> Limiter | None:
    """The limiter for ``backend``'s settings: in this process, or shared through Redis when
    they name a ``redis_url``; ``None`` when they set no limit.

    :raises ConfigError: when the Redis URL is unusable or redis-py is not installed.
    """
    if not (settings.requests_per_minute or settings.tokens_per_minute):
        return None
    if settings.redis_url:
        from ._shared_limits import SharedRateLimiter

        return SharedRateLimiter.from_settings(backend, settings)
    return RateLimiter.from_settings(settings)


class RateLimiter:
    """Client-side limits on requests and tokens per minute for one backend, in this process.

    ``acquire`` blocks the calling thread; ``aacquire`` suspends the calling task. Both may be
    used on the same limiter at once.

    :param burst: the request bucket's size (default ``requests_per_minute``).
    """

    def __init__(
        self,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests = (
            TokenBucket(requests_per_minute, capacity=burst, clock=clock)
            if requests_per_minute
            else None
        )
        self.tokens = TokenBucket(tokens_per_minute, clock=clock) if tokens_per_minute else None

    @classmethod
    def from_settings(cls, settings: LimitSettings) -> RateLimiter | None:
        """A limiter for those settings, or ``None`` when they set no limit."""
        if not (settings.requests_per_minute or settings.tokens_per_minute):
            return None
        return cls(
            requests_per_minute=settings.requests_per_minute,
            tokens_per_minute=settings.tokens_per_minute,
            burst=settings.burst,
        )

    def reserve(self, tokens: int = 0) -> float:
        """Take one request and ``tokens`` tokens now; return the seconds to wait before
        using them (the caller sleeps; :meth:`acquire` does both)."""
        wait = self.requests.reserve(1) if self.requests else 0.0
        if self.tokens and tokens:
            wait = max(wait, self.tokens.reserve(min(tokens, self.tokens.capacity)))
        return wait

    def flow(self, tokens: int = 0) -> Flow[float]:
        """One acquisition as a flow: reserve, then sleep the wait; returns the wait."""
        wait = self.reserve(tokens)
        if wait > 0:
            yield Sleep(wait)
        return wait

    def acquire(self, tokens: int = 0, *, sleep: Callable[[float], None] = time.sleep) -> float:
        """Wait until one request and ``tokens`` tokens may be spent; return the wait."""
        return drive(self.flow(tokens), sleep=sleep)

    async def aacquire(
        self, tokens: int = 0, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> float:
        """The asyncio twin of :meth:`acquire`."""
        return await adrive(self.flow(tokens), sleep=sleep)

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token bucket once the real usage of a call is known."""
        if self.tokens and actual:
            self.tokens.refund(min(estimated, self.tokens.capacity) - actual)
