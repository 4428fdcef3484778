"""Circuit breakers for chat backends, and which errors mean a backend is failing.

Sans-IO: a breaker only decides and counts; the hub's fallback chain asks it before each call
and tells it how the call ended. The clock is injectable, so tests move time by hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .errors import AuthenticationError, BackendError
from .logs import get_logger

__all__ = ["CircuitBreaker", "is_outage"]


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a backend call once the retry policy gave up on it, says the
    backend is failing (so another backend may serve, and its circuit counts the failure).

    Yes for a retryable :class:`~modelport.errors.BackendError` (5xx, timeouts, lost
    connections, rate limits, a ``Retry-After`` too long to wait) and for an
    :class:`~modelport.errors.AuthenticationError` (401/403: this backend's key is bad, another
    vendor's may not be). No for everything else: a refused request (400, 404, 422) would be
    refused everywhere, and paid for on the way; an unusable answer, an unsupported feature or a
    plugin's own bug says nothing about the backend being down.
    """
    return isinstance(exc, BackendError) and (exc.retryable or isinstance(exc, AuthenticationError))


class CircuitBreaker:
    """Stops calling a backend that keeps failing.

    Closed, it lets every call through and counts the failures in a row. At ``failures`` it
    opens: no call goes through for ``reset_s`` seconds. Then it is half open: one trial call
    goes through (and another one ``reset_s`` later if that one never reports back); its
    success closes the circuit, its failure opens it for another ``reset_s``. Thread-safe: one
    breaker per backend is shared by every thread and task of a hub.

    :param failures: failures in a row that open the circuit; 0 never opens it.
    :param clock: seconds from an arbitrary start (``time.monotonic``; tests pass a fake).
    """

    def __init__(
        self,
        backend: str,
        *,
        failures: int = 5,
        reset_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.threshold = failures
        self.reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_at: float | None = None

    @property
    def failures(self) -> int:
        """Failed calls in a row."""
        return self._failures

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"`` (a trial call may go, or has gone)."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "open" if self._wait(self._clock()) > 0 else "half-open"

    def _wait(self, now: float) -> float:
        """Seconds until a call may go (0: now); the lock is held."""
        if self._opened_at is None:
            return 0.0
        since = self._opened_at if self._trial_at is None else self._trial_at
        return max(0.0, since + self.reset_s - now)

    def admit(self) -> float:
        """Ask to make a call: ``0.0`` when it may go (closed, or the half-open trial, which
        this call then is), else the seconds until the next trial call may."""
        with self._lock:
            now = self._clock()
            wait = self._wait(now)
            if wait == 0 and self._opened_at is not None:
                self._trial_at = now  # this call is the trial; the next waits for its outcome
            return wait

    def succeeded(self) -> None:
        """The call went through: the circuit closes and the count starts again."""
        with self._lock:
            was_open = self._opened_at is not None
            self._failures, self._opened_at, self._trial_at = 0, None, None
        if was_open:
            get_logger().info("circuit_closed", backend=self.backend)

    def failed(self) -> None:
        """The call failed (see :func:`is_outage`): count it, and open the circuit at the
        threshold (again, after a failed trial)."""
        with self._lock:
            self._failures += 1
            if not self.threshold or self._failures < self.threshold:
                return
            self._opened_at, self._trial_at = self._clock(), None
            failures = self._failures
        get_logger().warning(
            "circuit_opened", backend=self.backend, failures=failures, reset_s=self.reset_s
        )
