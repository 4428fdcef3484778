"""Rate limits shared through a real Redis (``[limits.<backend>] redis_url``).

The tests that need a server read its URL from ``MODELPORT_TEST_REDIS_URL`` (``.ci/run`` starts
one with ``tools/services.py``; so can a developer) and skip when it is unset. Each test keeps
its buckets under a key of its own. Time in the buckets is the Redis server's, so the tests
count admissions rather than time anything.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from modelport import load_settings
from modelport._shared_limits import SharedRateLimiter
from modelport.errors import ConfigError, LimiterUnavailableError
from modelport.resilience import RateLimiter, make_limiter
from modelport.testing import FakeBackends, RecordingSleep, make_test_async_hub, make_test_hub

REDIS_URL = os.environ.get("MODELPORT_TEST_REDIS_URL", "")
needs_redis = pytest.mark.skipif(
    not REDIS_URL,
    reason="MODELPORT_TEST_REDIS_URL is unset: start one with "
    "`python tools/services.py start --only redis --env .services.env && . ./.services.env`",
)
PASSWORD = "hunter2-hunter2-hunter2"


class Refused(Exception):
    """Raised by a sleep that stands for "not admitted now"."""


def refuse(_seconds: float) -> None:
    raise Refused


async def arefuse(_seconds: float) -> None:
    raise Refused


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _key() -> str:
    return f"modelport-test:{uuid.uuid4().hex}"


def _server_time(url: str) -> float:
    import redis

    with redis.Redis.from_url(url) as client:
        seconds, micros = client.time()
    return float(seconds) + float(micros) / 1e6


class FrozenClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dead_url() -> str:
    """A Redis URL, with a password, where nothing listens."""
    return f"redis://:{PASSWORD}@127.0.0.1:{_free_port()}/0"


# --- settings ---------------------------------------------------------------------------------


def test_a_limit_without_redis_url_stays_in_the_process() -> None:
    settings = load_settings(
        overrides={"limits": {"acme": {"requests_per_minute": 60, "burst": 5}}},
        env={},
        search=False,
    )
    limiter = make_limiter("acme", settings.limits["acme"])
    assert isinstance(limiter, RateLimiter)
    assert limiter.requests is not None
    assert limiter.requests.capacity == 5.0


def test_settings_build_a_shared_limiter_whose_url_is_masked_everywhere() -> None:
    url = f"redis://:{PASSWORD}@cache.internal:6380/2"
    section = {"requests_per_minute": 60, "redis_url": url, "redis_prefix": "app-a:limits"}
    settings = load_settings(overrides={"limits": {"acme": section}}, env={}, search=False)
    limiter = make_limiter("acme", settings.limits["acme"])
    assert isinstance(limiter, SharedRateLimiter)
    assert limiter.key == "app-a:limits:acme"
    assert limiter.on_down == "local"
    assert limiter.url == "redis://***@cache.internal:6380/2"
    for shown in (repr(settings), repr(limiter), str(settings.redacted())):
        assert PASSWORD not in shown


def test_a_url_that_is_not_redis_is_a_config_error() -> None:
    settings = load_settings(
        overrides={"limits": {"acme": {"requests_per_minute": 1, "redis_url": "http://x"}}},
        env={},
        search=False,
    )
    with pytest.raises(ConfigError, match=r"limits\.acme\.redis_url.*not a Redis URL"):
        make_limiter("acme", settings.limits["acme"])


def test_on_redis_down_takes_local_or_refuse_only() -> None:
    with pytest.raises(ConfigError, match='must be "local" or "refuse", not \'maybe\''):
        load_settings(
            overrides={"limits": {"acme": {"on_redis_down": "maybe"}}}, env={}, search=False
        )


def test_importing_modelport_or_a_local_limit_does_not_import_redis() -> None:
    code = textwrap.dedent(
        """
        import sys
        from modelport.testing import make_test_hub
        hub = make_test_hub(overrides={"limits": {"fake-chat": {"requests_per_minute": 5}}})
        hub.ask("hi")
        print("redis" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"


# --- Redis down -------------------------------------------------------------------------------


def test_redis_down_and_refuse_is_a_typed_error_naming_the_masked_url(dead_url: str) -> None:
    limiter = SharedRateLimiter("acme", dead_url, requests_per_minute=60, on_down="refuse")
    with capture_logs() as logs, pytest.raises(LimiterUnavailableError) as caught:
        limiter.acquire(sleep=refuse)
    message = str(caught.value)
    assert PASSWORD not in message
    port = dead_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0]
    assert f"redis://***@127.0.0.1:{port}/0" in message
    assert caught.value.url == f"redis://***@127.0.0.1:{port}/0"
    assert 'on_redis_down = "local"' in message  # what to do
    assert [e["event"] for e in logs] == ["shared_limit_unavailable"]
    assert PASSWORD not in repr(logs)
    with pytest.raises(LimiterUnavailableError):  # every call, while it is down
        limiter.acquire(sleep=refuse)


def test_redis_down_and_refuse_sends_nothing_through_the_hub(dead_url: str) -> None:
    fakes = FakeBackends()
    section = {"requests_per_minute": 60, "redis_url": dead_url, "on_redis_down": "refuse"}
    hub = make_test_hub(fakes, overrides={"limits": {"fake-chat": section}})
    with pytest.raises(LimiterUnavailableError, match="fake-chat: the shared rate limit"):
        hub.ask("hi")
    assert fakes.chat.calls == []


def test_redis_down_and_local_warns_once_and_still_limits_in_the_process(dead_url: str) -> None:
    clock, sleep = FrozenClock(), RecordingSleep()
    limiter = SharedRateLimiter(
        "acme", dead_url, requests_per_minute=60, burst=2, on_down="local", clock=clock
    )
    with capture_logs() as logs:
        waits = [limiter.acquire(sleep=sleep) for _ in range(4)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2:] == pytest.approx([1.0, 2.0])  # 60 a minute, once the burst of 2 is spent
    warnings = [e for e in logs if e["event"] == "shared_limit_unavailable"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["url"].startswith("redis://***@127.0.0.1:")
    assert PASSWORD not in repr(logs)


@needs_redis
def test_a_wrong_password_is_treated_as_redis_down_without_showing_it() -> None:
    host = REDIS_URL.split("://", 1)[1]
    url = f"redis://nobody:{PASSWORD}@{host}"  # no such user: WRONGPASS
    limiter = SharedRateLimiter("acme", url, requests_per_minute=60, on_down="refuse")
    with pytest.raises(LimiterUnavailableError) as caught:
        limiter.acquire(sleep=refuse)
    assert PASSWORD not in str(caught.value)
    assert "***" in str(caught.value)
    limiter.close()


# --- the script -------------------------------------------------------------------------------


@pytest.fixture
def shared() -> Iterator[list[SharedRateLimiter]]:
    made: list[SharedRateLimiter] = []
    yield made
    for limiter in made:
        limiter.close()


def _limiter(made: list[SharedRateLimiter], **kwargs: Any) -> SharedRateLimiter:
    kwargs.setdefault("key", _key())
    limiter = SharedRateLimiter("acme", REDIS_URL, **kwargs)
    made.append(limiter)
    return limiter


@needs_redis
def test_concurrent_threads_are_admitted_exactly_the_burst(
    shared: list[SharedRateLimiter],
) -> None:
    # one request a minute: nothing refills during the test, so the burst is the budget
    limiter = _limiter(shared, requests_per_minute=1, burst=20)
    admitted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            try:
                limiter.acquire(sleep=refuse)
            except Refused:
                continue
            with lock:
                admitted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 20


@needs_redis
def test_a_budget_under_one_request_a_minute_still_admits_its_first_call(
    shared: list[SharedRateLimiter],
) -> None:
    limiter = _limiter(shared, requests_per_minute=0.5)
    assert limiter.acquire(sleep=refuse) == 0.0
    with pytest.raises(Refused):
        limiter.acquire(sleep=refuse)


@needs_redis
def test_a_refused_check_takes_nothing_and_says_how_long_to_wait(
    shared: list[SharedRateLimiter],
) -> None:
    limiter = _limiter(shared, requests_per_minute=6, burst=1)
    waits: list[float] = []

    def record_then_refuse(seconds: float) -> None:
        waits.append(seconds)
        raise Refused

    assert limiter.acquire(sleep=refuse) == 0.0
    for _ in range(3):
        with pytest.raises(Refused):
            limiter.acquire(sleep=record_then_refuse)
    # 6 a minute is one every 10 s; refused checks took nothing, so the wait only shrinks
    assert all(0 < w <= 10.0 for w in waits)
    assert waits == sorted(waits, reverse=True)


@needs_redis
def test_tokens_and_settle_share_the_bucket(shared: list[SharedRateLimiter]) -> None:
    import redis

    key = _key()
    one = _limiter(shared, tokens_per_minute=60, key=key)  # 1 token a second refill
    other = _limiter(shared, tokens_per_minute=60, key=key)
    assert one.acquire(50, sleep=refuse) == 0.0
    with pytest.raises(Refused):  # 10 left (plus a trickle), 30 wanted
        other.acquire(30, sleep=refuse)
    one.settle(50, 10)  # the call used 10: 40 go back with one's next check
    assert one.acquire(1, sleep=refuse) == 0.0
    assert other.acquire(30, sleep=refuse) == 0.0
    with redis.Redis.from_url(REDIS_URL) as client:
        level = float(client.hget(key, "tokens") or 0)
        assert 0 <= client.pttl(key) <= 60_000 + 1000
    assert 19 <= level < 22  # 60 - 50 + 40 - 1 - 30, plus a second's refill at most


def _count_admitted(key: str, seconds: float, processes: int, **limits: float) -> list[int]:
    """Start ``processes`` Python processes that each take as many calls as the shared limit
    admits for ``seconds``; how many each was admitted."""
    code = textwrap.dedent(
        """
        import sys, time
        from modelport._shared_limits import SharedRateLimiter
        url, key, seconds, rpm, burst = sys.argv[1:]
        limiter = SharedRateLimiter(
            "bench", url, key=key, requests_per_minute=float(rpm), burst=float(burst),
            on_down="refuse",
        )
        print("ready", flush=True)
        sys.stdin.readline()  # all start together
        admitted, end = 0, time.monotonic() + float(seconds)
        while True:
            limiter.acquire(sleep=lambda s: time.sleep(min(s, max(end - time.monotonic(), 0))))
            if time.monotonic() >= end:
                break
            admitted += 1
        print(admitted, flush=True)
        """
    )
    argv = [sys.executable, "-c", code, REDIS_URL, key, str(seconds)]
    argv += [str(limits["requests_per_minute"]), str(limits["burst"])]
    children = [
        subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        counts = []
        for child in children:
            out, _ = child.communicate(timeout=60)
            counts.append(int(out.split()[-1]))
        return counts
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()


@needs_redis
def test_separate_processes_share_one_budget() -> None:
    # 4 processes, 300 a minute (5 a second) and a burst of 5, for 2 seconds each: together
    # at most burst + rate * (the span the server saw), where four separate limits would
    # admit four times that
    key = _key()
    started = _server_time(REDIS_URL)
    counts = _count_admitted(key, 2.0, 4, requests_per_minute=300, burst=5)
    span = _server_time(REDIS_URL) - started
    assert sum(counts) <= 5 + 5 * span
    assert sum(counts) >= 5  # the burst, at least, got through


# --- restarts ---------------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Any]:
    """A Redis server of this test's own, which it may stop and start again."""
    found = os.environ.get("MODELPORT_SERVICE_REDIS_SERVER") or shutil.which("redis-server")
    if not found:
        pytest.skip("no redis-server: `python tools/services.py start --only redis` installs it")
    server: str = found
    port = _free_port()

    class Server:
        url = f"redis://127.0.0.1:{port}/0"
        process: subprocess.Popen[bytes] | None = None

        def start(self) -> None:
            argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
            argv += ["--save", "", "--appendonly", "no"]
            self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    return
                except OSError:
                    threading.Event().wait(0.05)
            raise RuntimeError("redis-server did not start")

        def stop(self) -> None:
            if self.process is not None:
                self.process.terminate()
                self.process.wait(timeout=10)
                self.process = None

    running = Server()
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_redis_restarted_mid_run_falls_back_then_recovers(own_redis: Any) -> None:
    clock = FrozenClock()
    limiter = SharedRateLimiter(
        "acme", own_redis.url, key=_key(), requests_per_minute=1, burst=3, clock=clock
    )
    with capture_logs() as logs:
        assert limiter.acquire(sleep=refuse) == 0.0
        own_redis.stop()
        assert limiter.acquire(sleep=refuse) == 0.0  # the local bucket's burst
        assert limiter._outage
        own_redis.start()  # empty: the shared bucket starts full again
        clock.now += limiter.recheck_s  # time to try Redis again
        for _ in range(3):
            assert limiter.acquire(sleep=refuse) == 0.0
        with pytest.raises(Refused):  # limited by Redis again
            limiter.acquire(sleep=refuse)
    events = [e["event"] for e in logs]
    assert events == ["shared_limit_unavailable", "shared_limit_restored"]
    limiter.close()


def test_redis_restarted_mid_run_with_refuse_fails_while_down_only(own_redis: Any) -> None:
    limiter = SharedRateLimiter(
        "acme", own_redis.url, key=_key(), requests_per_minute=60, on_down="refuse"
    )
    assert limiter.acquire(sleep=refuse) == 0.0
    own_redis.stop()
    with pytest.raises(LimiterUnavailableError, match=r"127\.0\.0\.1"):
        limiter.acquire(sleep=refuse)
    own_redis.start()
    assert limiter.acquire(sleep=refuse) == 0.0  # the script is loaded again by itself
    limiter.close()


# --- async ------------------------------------------------------------------------------------


@needs_redis
async def test_async_tasks_are_admitted_exactly_the_burst() -> None:
    limiter = SharedRateLimiter("acme", REDIS_URL, key=_key(), requests_per_minute=1, burst=7)

    async def one() -> bool:
        try:
            await limiter.aacquire(sleep=arefuse)
        except Refused:
            return False
        return True

    try:
        results = await asyncio.gather(*(one() for _ in range(20)))
    finally:
        await limiter.aclose()
    assert sum(results) == 7


@needs_redis
async def test_async_hub_waits_for_the_shared_bucket() -> None:
    slept: list[float] = []

    async def asleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    section = {"requests_per_minute": 600, "burst": 2, "redis_url": REDIS_URL}
    overrides = {"limits": {"fake-chat": {**section, "redis_prefix": _key()}}}
    hub = make_test_async_hub(overrides=overrides)
    hub._rt.asleep = asleep
    try:
        for _ in range(3):
            await hub.ask("hi")
    finally:
        limiter = hub._rt.limiter("fake-chat")
        assert isinstance(limiter, SharedRateLimiter)
        await limiter.aclose()
    assert slept
    assert 0 < slept[0] <= 0.1


async def test_async_redis_down_and_refuse_is_the_typed_error(dead_url: str) -> None:
    limiter = SharedRateLimiter("acme", dead_url, requests_per_minute=60, on_down="refuse")
    with pytest.raises(LimiterUnavailableError) as caught:
        await limiter.aacquire(sleep=arefuse)
    assert PASSWORD not in str(caught.value)
    await limiter.aclose()
