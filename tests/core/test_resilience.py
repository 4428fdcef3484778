"""Retry policy and rate limiting, alone and as the hub applies them to every backend."""

from __future__ import annotations

import asyncio
import threading

import pytest
from structlog.testing import capture_logs

from modelport import RateLimiter, RetryPolicy
from modelport.errors import (
    BackendConnectionError,
    InvalidRequestError,
    PluginError,
    RateLimitedError,
    TransientError,
)
from modelport.testing import FakeBackends, RecordingSleep, make_test_async_hub, make_test_hub

from .test_plugins import Recorder


def rate_limited(after: float | None = None) -> RateLimitedError:
    return RateLimitedError("slow down", backend="fake-chat", status=429, retry_after=after)


def test_429_with_retry_after_is_retried_after_exactly_that_long() -> None:
    fakes, sleep = FakeBackends(), RecordingSleep()
    fakes.chat.script(rate_limited(2.5), rate_limited(1), "at last")
    hub = make_test_hub(fakes, sleep=sleep)
    with capture_logs() as logs:
        assert hub.ask("hi").text == "at last"
    assert sleep.waits == [2.5, 1.0]
    assert len(fakes.chat.calls) == 3
    retries = [e for e in logs if e["event"] == "retrying"]
    assert [(e["attempt"], e["sleep_s"], e["status"]) for e in retries] == [
        (1, 2.5, 429),
        (2, 1.0, 429),
    ]
    assert all(e["backend"] == "fake-chat" and e["operation"] == "complete" for e in retries)


def test_a_retry_after_above_the_cap_fails_at_once_saying_which_setting_allows_it() -> None:
    fakes, sleep, recorder = FakeBackends(), RecordingSleep(), Recorder()
    refused = rate_limited(300)
    fakes.chat.script(refused, "never")
    overrides = {"retry": {"max_retry_after_s": 60}}
    hub = make_test_hub(fakes, sleep=sleep, overrides=overrides, plugins=[recorder])
    with capture_logs() as logs, pytest.raises(RateLimitedError) as caught:
        hub.ask("hi")
    assert caught.value is refused  # the same error, type and all
    assert sleep.waits == []
    assert len(fakes.chat.calls) == 1
    assert fakes.chat.pending == 1
    assert str(caught.value) == (
        "fake-chat: slow down (status 429) (the server asked to wait 300s, more than [retry] "
        "max_retry_after_s = 60; raise it to wait that long, or retry later)"
    )
    assert [e for e in logs if e["event"] == "retrying"] == []
    assert [(f.attempt, f.will_retry) for f in recorder.failures] == [(1, False)]  # type: ignore[attr-defined]


def test_a_retry_after_above_the_cap_on_a_later_attempt_fails_then() -> None:
    fakes, sleep = FakeBackends(), RecordingSleep()
    busy = TransientError("busy", backend="fake-chat", status=503, retry_after=90)
    fakes.chat.script(rate_limited(1), busy, "never")
    with pytest.raises(TransientError, match=r"asked to wait 90s, more than .* = 60;"):
        make_test_hub(fakes, sleep=sleep).ask("hi")
    assert sleep.waits == [1.0]
    assert len(fakes.chat.calls) == 2


async def test_the_async_hub_refuses_a_long_retry_after_too() -> None:
    fakes, sleep = FakeBackends(), RecordingSleep()
    fakes.chat.script(rate_limited(61), "never")
    with pytest.raises(RateLimitedError, match="asked to wait 61s"):
        await make_test_async_hub(fakes, sleep=sleep).ask("hi")
    assert sleep.waits == []
    assert len(fakes.chat.calls) == 1


def test_a_retry_after_at_the_cap_is_honoured() -> None:
    fakes, sleep = FakeBackends(), RecordingSleep()
    fakes.chat.script(rate_limited(10), "ok")
    make_test_hub(fakes, sleep=sleep, overrides={"retry": {"max_retry_after_s": 10}}).ask("hi")
    assert sleep.waits == [10.0]


def test_a_429_storm_gives_up_after_the_configured_attempts_with_our_error() -> None:
    fakes, sleep = FakeBackends(), RecordingSleep()
    fakes.chat.script(*[rate_limited(1)] * 10)
    hub = make_test_hub(fakes, sleep=sleep, overrides={"retry": {"attempts": 3}})
    with pytest.raises(RateLimitedError):
        hub.ask("hi")
    assert len(fakes.chat.calls) == 3
    assert sleep.waits == [1.0, 1.0]
    assert fakes.chat.pending == 7
    assert hub.dialogues().items == ()  # nothing half-stored


def test_a_non_retryable_400_is_attempted_once() -> None:
    fakes, sleep = FakeBackends(), RecordingSleep()
    fakes.chat.script(InvalidRequestError("bad", backend="fake-chat", status=400), "never")
    with pytest.raises(InvalidRequestError):
        make_test_hub(fakes, sleep=sleep).ask("hi")
    assert len(fakes.chat.calls) == 1
    assert sleep.waits == []


def test_a_bug_in_a_backend_is_not_retried() -> None:
    fakes = FakeBackends()
    fakes.chat.script(KeyError("choices"))
    with pytest.raises(PluginError, match="complete\\(\\) of backend 'fake-chat' raised KeyError"):
        make_test_hub(fakes).ask("hi")
    assert len(fakes.chat.calls) == 1


def test_backoff_without_retry_after_grows_exponentially_with_jitter_and_cap() -> None:
    fakes, sleep = FakeBackends(), RecordingSleep()
    fakes.chat.script(*[TransientError("503", backend="fake-chat", status=503)] * 5, "ok")
    overrides = {"retry": {"attempts": 6, "initial_s": 1, "max_s": 5, "jitter_s": 0.5}}
    make_test_hub(fakes, sleep=sleep, overrides=overrides).ask("hi")
    bases = [1, 2, 4, 5, 5]
    assert len(sleep.waits) == 5
    for wait, base in zip(sleep.waits, bases, strict=True):
        assert base <= wait <= min(base + 0.5, 5)


def test_uploads_and_job_creation_are_never_retried_blindly() -> None:
    from modelport import Message, TrainingDataset, TrainingExample

    data = TrainingDataset([TrainingExample([Message("user", "q"), Message("assistant", "a")])])
    fakes, sleep = FakeBackends(), RecordingSleep()
    hub = make_test_hub(fakes, sleep=sleep)
    # a timeout on create: the job may have started, so it must not be created again
    fakes.trainer.script(None, BackendConnectionError("reset", backend="fake-training"))
    with pytest.raises(BackendConnectionError):
        hub.train(data, base_model="m")
    assert [c[0] for c in fakes.trainer.calls] == ["upload", "start"]
    # a rate-limit refusal means the vendor did nothing: that one is retried
    fakes.trainer.script(rate_limited(1), None, None)
    job = hub.train(data, base_model="m")
    assert [c[0] for c in fakes.trainer.calls[2:]] == ["upload", "upload", "start"]
    assert job.status.value == "queued"


def test_observers_see_every_failed_attempt_and_whether_it_will_be_retried() -> None:
    fakes, recorder = FakeBackends(), Recorder()
    fakes.chat.script(rate_limited(1), InvalidRequestError("no", backend="fake-chat", status=400))
    with pytest.raises(InvalidRequestError):
        make_test_hub(fakes, plugins=[recorder]).ask("hi")
    assert [(f.attempt, f.will_retry, type(f.error).__name__) for f in recorder.failures] == [  # type: ignore[attr-defined]
        (1, True, "RateLimitedError"),
        (2, False, "InvalidRequestError"),
    ]


async def test_async_hub_applies_the_same_policy() -> None:
    fakes, sleep = FakeBackends(), RecordingSleep()
    fakes.chat.script(rate_limited(2), "async ok")
    hub = make_test_async_hub(fakes, sleep=sleep)
    assert (await hub.ask("hi")).text == "async ok"
    assert sleep.waits == [2.0]
    fakes.chat.script(InvalidRequestError("bad", backend="fake-chat", status=400))
    with pytest.raises(InvalidRequestError):
        await hub.ask("hi")
    assert len(fakes.chat.calls) == 3


def test_policy_wait_and_predicates() -> None:
    policy = RetryPolicy(attempts=3, initial_s=1, max_s=4, jitter_s=0)
    assert [policy.wait_s(None, n) for n in (1, 2, 3, 4)] == [1, 2, 4, 4]
    assert policy.wait_s(rate_limited(7), 1) == 7
    assert policy.will_retry(rate_limited(), 2)
    assert not policy.will_retry(rate_limited(), 3)
    assert not policy.should_retry(TransientError("x", backend="b"), idempotent=False)
    assert policy.should_retry(rate_limited(), idempotent=False)
    assert policy.should_retry(rate_limited(60))
    long_wait = rate_limited(60.5)
    assert not policy.will_retry(long_wait, 1)
    assert long_wait.hint == (
        "the server asked to wait 60.5s, more than [retry] max_retry_after_s = 60; "
        "raise it to wait that long, or retry later"
    )


# --- the limiter ----------------------------------------------------------------------------


class FrozenClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_spaces_requests() -> None:
    clock = FrozenClock()
    limiter = RateLimiter(requests_per_minute=60, clock=clock)
    waits = [limiter.acquire(sleep=lambda _s: None) for _ in range(62)]
    assert waits[:60] == [0.0] * 60
    assert waits[60:] == [1.0, 2.0]
    clock.now += 30  # half a minute refills 30 requests, minus the 2 owed
    assert limiter.acquire(sleep=lambda _s: None) == 0.0


def test_token_limit_counts_tokens_and_settles_to_real_usage() -> None:
    clock = FrozenClock()
    limiter = RateLimiter(tokens_per_minute=600, clock=clock)
    assert limiter.acquire(500, sleep=lambda _s: None) == 0.0
    assert limiter.acquire(200, sleep=lambda _s: None) == pytest.approx(10.0)  # 100 short at 10/s
    limiter.settle(500, 100)  # the first call really used 100 tokens
    assert limiter.acquire(100, sleep=lambda _s: None) == pytest.approx(0.0)


def test_limiter_is_thread_safe_every_thread_gets_its_own_slot() -> None:
    clock = FrozenClock()
    limiter = RateLimiter(requests_per_minute=60, clock=clock)
    barrier = threading.Barrier(8)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        for _ in range(25):
            wait = limiter.acquire(sleep=lambda _s: None)
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 200 requests against a 60-request burst: 140 waits of 1s, 2s, ... 140s, none shared
    assert sorted(w for w in waits if w > 0) == [float(i) for i in range(1, 141)]


async def test_limiter_is_asyncio_safe() -> None:
    clock = FrozenClock()
    limiter = RateLimiter(requests_per_minute=6, clock=clock)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    await asyncio.gather(*(limiter.aacquire(sleep=fake_sleep) for _ in range(10)))
    assert sorted(slept) == [10.0, 20.0, 30.0, 40.0]


def test_hub_applies_configured_limits_per_backend() -> None:
    sleep = RecordingSleep()
    overrides = {"limits": {"fake-chat": {"requests_per_minute": 2}}}
    hub = make_test_hub(sleep=sleep, overrides=overrides)
    for _ in range(3):
        hub.ask("hi")
    assert len(sleep.waits) == 1
    assert 29.0 < sleep.waits[0] <= 30.0
