"""Rate limits shared by every process and machine through Redis (``[limits.<b>] redis_url``).

The token buckets live in one Redis hash per limit, and one Lua script is the whole logic: it
refills both buckets (requests and tokens) from the Redis server's clock, so the clocks of the
machines do not matter, applies any correction a finished call reported, then takes one
request and the estimated tokens if both buckets hold them, or takes nothing and says how long
until they will. Being a script, each check is atomic and costs one round trip (EVALSHA, with
EVAL when the server has not seen the script yet, as after a restart).

Python only drives it: :meth:`SharedRateLimiter.flow` is a flow (see :mod:`modelport.flows`)
that yields "run the script with these arguments" (a step run with ``redis`` or
``redis.asyncio``) or "sleep this long", driven by the guarded call of either hub, or by
``acquire`` and ``aacquire``. This module, and redis-py with it, is
imported only when a limit names a Redis URL.

Unlike the in-process bucket, a check that is refused takes nothing: the caller sleeps the
wait it was told and checks again. A process that dies while waiting therefore holds no
reservation that the others would have to wait out.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from ._redact import redact, redact_exception, register_secret
from .errors import ConfigError, LimiterUnavailableError
from .flows import Flow, Sleep, Step, adrive, drive
from .logs import get_logger
from .resilience import RateLimiter

if TYPE_CHECKING:
    from .config import LimitSettings

__all__ = ["SCRIPT", "SharedRateLimiter"]

#: The token buckets of one limit, atomically. KEYS[1]: the hash holding them.
#: ARGV: requests a second, request capacity, requests wanted; tokens a second, token
#: capacity, tokens wanted; tokens to take whatever the level (a finished call's correction;
#: negative gives back). A rate of 0 means that bucket is not limited.
#: Returns the seconds to wait, as text: "0" when the request was admitted (and taken).
SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'requests', 'tokens', 'at')
local elapsed = math.max(0, now - (tonumber(state[3]) or now))
local fields = {'requests', 'tokens'}
local levels, wait = {}, 0
for i = 1, 2 do
  local rate, capacity = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])
  if rate > 0 then
    local level = math.min(capacity, (tonumber(state[i]) or capacity) + elapsed * rate)
    if i == 2 then level = math.min(capacity, level - tonumber(ARGV[7])) end
    local short = tonumber(ARGV[3 * i]) - level
    if short > 1e-9 then wait = math.max(wait, short / rate) end
    levels[i] = level
  end
end
local update, full = {'at', string.format('%.6f', now)}, 0
for i = 1, 2 do
  local rate, capacity = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])
  if levels[i] then
    if wait == 0 then levels[i] = levels[i] - tonumber(ARGV[3 * i]) end
    full = math.max(full, (capacity - levels[i]) / rate)
    table.insert(update, fields[i])
    table.insert(update, string.format('%.17g', levels[i]))
  end
end
redis.call('HSET', KEYS[1], unpack(update))
redis.call('PEXPIRE', KEYS[1], math.ceil(full * 1000) + 1000)
return string.format('%.17g', wait)
"""


class _Check(Step[Any]):
    """Run the script with these arguments: its answer is sent back, its error thrown in."""

    __slots__ = ("args", "limiter")

    def __init__(self, limiter: SharedRateLimiter, args: tuple[float, ...]) -> None:
        self.limiter, self.args = limiter, args

    def run(self, scope: Any) -> Any:
        return self.limiter._script()(keys=[self.limiter.key], args=self.args)

    async def arun(self, scope: Any) -> Any:
        return await self.limiter._ascript()(keys=[self.limiter.key], args=self.args)


class SharedRateLimiter:
    """Limits on requests and tokens per minute for one backend, shared through Redis by
    every process that names the same server and key.

    Used like :class:`~modelport.RateLimiter` (``acquire``, ``aacquire``, ``settle``). When
    Redis cannot be used, ``on_down`` decides: ``"local"`` falls back to a limiter in this
    process (a warning is logged once per outage; Redis is tried again ``recheck_s`` seconds
    later, and ``shared_limit_restored`` logged when it answers), ``"refuse"`` raises
    :class:`~modelport.errors.LimiterUnavailableError`.

    :param url: the Redis URL; it appears only masked (:attr:`url`) in messages and logs.
    :param key: the Redis key of the buckets.
    """

    def __init__(
        self,
        backend: str,
        url: str,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        burst: float | None = None,
        key: str | None = None,
        on_down: str = "local",
        timeout_s: float = 0.5,
        recheck_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if on_down not in ("local", "refuse"):
            raise ValueError(f"on_down must be 'local' or 'refuse', not {on_down!r}")
        _register_url_secrets(url)
        self.backend = backend
        self.url = redact(url)
        self.key = key or f"modelport:limits:{backend}"
        self.on_down = on_down
        self.timeout_s = timeout_s
        self.recheck_s = recheck_s
        self.local = RateLimiter(
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            burst=burst,
            clock=clock,
        )
        requests = self.local.requests
        tokens = self.local.tokens
        self._buckets = (
            (requests.rate, requests.capacity) if requests else (0.0, 0.0),
            (tokens.rate, tokens.capacity) if tokens else (0.0, 0.0),
        )
        self._url = url
        self._clock = clock
        self._lock = threading.Lock()
        self._pending = 0.0  # tokens to take with the next check (settle)
        self._outage = False
        self._retry_at = 0.0  # local mode, during an outage: when to try Redis again
        self._sync: Any = None  # (client, script), made on first use
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def from_settings(cls, backend: str, settings: LimitSettings) -> SharedRateLimiter:
        """The shared limiter ``[limits.<backend>]`` describes.

        :raises ConfigError: when the URL is not a Redis URL or redis-py is not installed.
        """
        url = settings.redis_url or ""
        where = f"limits.{backend}.redis_url"
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"not a Redis URL: {redact(url)!r}",
                key=where,
                hint="use redis://host:6379/0, rediss://... for TLS, or unix:///path.sock",
            )
        try:
            import redis  # noqa: F401
        except ImportError:
            raise ConfigError(
                "a shared rate limit needs redis-py, which is not installed",
                key=where,
                hint="pip install 'modelport[redis]'",
            ) from None
        return cls(
            backend,
            url,
            requests_per_minute=settings.requests_per_minute,
            tokens_per_minute=settings.tokens_per_minute,
            burst=settings.burst,
            key=f"{settings.redis_prefix}:{backend}",
            on_down=settings.on_redis_down,
            timeout_s=settings.redis_timeout_s,
        )

    def __repr__(self) -> str:
        return f"SharedRateLimiter({self.backend!r}, {self.url!r}, key={self.key!r})"

    # --- the logic, free of I/O ------------------------------------------------------------

    def flow(self, tokens: int = 0) -> Flow[float]:
        """One acquisition: checks against Redis until admitted, sleeping in between, or
        the local limiter during an outage. Returns the seconds slept."""
        waited = 0.0
        while True:
            if self._skip_redis():
                wait = self.local.reserve(tokens)
                if wait > 0:
                    yield Sleep(wait)
                return waited + max(wait, 0.0)
            correction = self._take_pending()
            try:
                answer = yield _Check(self, self._args(tokens, correction))
            except _errors() as exc:
                self._add_pending(correction)
                self._unavailable(exc)  # raises when refusing
                continue
            self._available()
            wait = float(answer.decode() if isinstance(answer, bytes) else answer)
            if wait <= 0:
                return waited
            yield Sleep(wait)
            waited += wait

    def _args(self, tokens: int, correction: float) -> tuple[float, ...]:
        (request_rate, request_capacity), (token_rate, token_capacity) = self._buckets
        wanted = min(float(tokens), token_capacity) if token_rate else 0.0
        return (
            request_rate,
            request_capacity,
            min(1.0, request_capacity) if request_rate else 0.0,  # a bucket under 1 still admits
            token_rate,
            token_capacity,
            wanted,
            correction if token_rate else 0.0,
        )

    def _skip_redis(self) -> bool:
        with self._lock:
            return self._outage and self.on_down == "local" and self._clock() < self._retry_at

    def _take_pending(self) -> float:
        with self._lock:
            pending, self._pending = self._pending, 0.0
            return pending

    def _add_pending(self, amount: float) -> None:
        with self._lock:
            self._pending += amount

    def _unavailable(self, exc: BaseException) -> None:
        redact_exception(exc)
        reason = redact(f"{type(exc).__name__}: {exc}")
        with self._lock:
            first = not self._outage
            self._outage = True
            self._retry_at = self._clock() + self.recheck_s
        if first:
            get_logger(__name__).warning(
                "shared_limit_unavailable",
                backend=self.backend,
                url=self.url,
                error=reason,
                on_redis_down=self.on_down,
            )
        if self.on_down == "refuse":
            raise LimiterUnavailableError(self.backend, self.url, reason) from exc

    def _available(self) -> None:
        with self._lock:
            was_down, self._outage = self._outage, False
        if was_down:
            get_logger(__name__).info("shared_limit_restored", backend=self.backend, url=self.url)

    # --- the drivers ---------------------------------------------------------------------

    def acquire(self, tokens: int = 0, *, sleep: Callable[[float], None] = time.sleep) -> float:
        """Wait until one request and ``tokens`` tokens may be spent; return the wait.

        :raises LimiterUnavailableError: when Redis cannot be used and ``on_down`` is
            ``"refuse"``.
        """
        return drive(self.flow(tokens), sleep=sleep)

    async def aacquire(
        self, tokens: int = 0, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> float:
        """The asyncio twin of :meth:`acquire`."""
        return await adrive(self.flow(tokens), sleep=sleep)

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token bucket once the real usage of a call is known: the correction
        travels with this process's next check (no round trip of its own)."""
        if not self.local.tokens or not actual:
            return
        if self._outage:
            self.local.settle(estimated, actual)
            return
        self._add_pending(actual - min(estimated, self.local.tokens.capacity))

    def _client_options(self) -> dict[str, Any]:
        return {
            "socket_timeout": self.timeout_s,
            "socket_connect_timeout": self.timeout_s,
        }

    def _script(self) -> Any:
        with self._lock:  # one client, built once, even when threads race to make it
            made = self._sync
            if made is None:
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                # one quick retry: a connection the server dropped (a restart) is replaced
                client = redis.Redis.from_url(
                    self._url, retry=Retry(NoBackoff(), 1), **self._client_options()
                )
                made = self._sync = (client, client.register_script(SCRIPT))
        return made[1]

    def _ascript(self) -> Any:
        loop = asyncio.get_running_loop()
        made = self._async.get(loop)
        if made is None:  # an asyncio client belongs to one event loop
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            client = redis.asyncio.Redis.from_url(
                self._url, retry=Retry(NoBackoff(), 1), **self._client_options()
            )
            made = self._async.setdefault(loop, (client, client.register_script(SCRIPT)))
        return made[1]

    def close(self) -> None:
        """Close the connections of the sync client (the next check opens new ones)."""
        with self._lock:
            made, self._sync = self._sync, None
        if made is not None:
            made[0].close()

    async def aclose(self) -> None:
        """Close the connections of the running event loop's client, and the sync client's."""
        made = self._async.pop(asyncio.get_running_loop(), None)
        if made is not None:
            await made[0].aclose()
        self.close()


def _errors() -> tuple[type[BaseException], ...]:
    """What a Redis that is down, slow, restarting or misconfigured raises."""
    from redis.exceptions import RedisError

    return (RedisError, OSError)


def _register_url_secrets(url: str) -> None:
    """Mask the URL's password wherever it could appear, not only inside the URL."""
    parts = urlsplit(url)
    if parts.password:
        register_secret(parts.password)
    for name, value in parse_qsl(parts.query):
        if name.lower() == "password" and value:
            register_secret(value)
