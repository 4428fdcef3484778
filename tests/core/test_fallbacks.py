"""Fallbacks and circuit breakers, with both hubs: which errors leave a chat backend for the
next, which backend served, the circuit opening, skipping and letting a trial through, and
streams falling back only before their first delta."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from modelport import AsyncHub, Hub, hookimpl, load_settings
from modelport._circuit import CircuitBreaker, is_outage
from modelport.config import Fallback
from modelport.errors import (
    AuthenticationError,
    BackendTimeoutError,
    CircuitOpenError,
    ConfigError,
    InvalidRequestError,
    RateLimitedError,
    ResponseError,
    TransientError,
    UnsupportedError,
)
from modelport.registry import BackendRegistry
from modelport.testing import FakeBackends, FakeChat, make_test_async_hub, make_test_hub
from tests.support import run

ASSISTANTS = {
    "support": {"model": "support-model", "fallbacks": ["backup-chat"]},
    "pinned": {"model": "support-model", "fallbacks": [{"backend": "backup-chat", "model": "big"}]},
    "alone": {"model": "support-model"},
    "typo": {"fallbacks": ["fake-chat", "bakcup-chat"]},
    "sibling": {
        "model": "support-model",
        "fallbacks": [{"backend": "fake-chat", "model": "small"}],
    },
}


class Backup:
    """A plugin offering a second fake chat backend, ``backup-chat``."""

    def __init__(self) -> None:
        self.chat = FakeChat(model="backup-model")

    @hookimpl
    def modelport_register_backends(self, registry: BackendRegistry) -> None:
        registry.add("backup-chat", lambda _context: self.chat, capabilities=["chat"])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fakes() -> FakeBackends:
    return FakeBackends()


@pytest.fixture
def backup() -> Backup:
    return Backup()


def build(
    kind: str,
    fakes: FakeBackends,
    backup: Backup,
    *,
    attempts: int = 2,
    failures: int = 5,
    clock: Clock | None = None,
) -> Hub | AsyncHub:
    overrides = {
        "assistants": ASSISTANTS,
        "default_assistant": "support",
        "retry": {"attempts": attempts},
        "circuit": {"failures": failures, "reset_s": 30},
    }
    make = make_test_hub if kind == "sync" else make_test_async_hub
    kwargs: dict[str, Any] = {"overrides": overrides, "plugins": [backup]}
    if clock is not None:
        kwargs["clock"] = clock
    return make(fakes, **kwargs)


def stream(hub: Hub | AsyncHub, text: str, **kwargs: Any) -> tuple[list[str], Any]:
    """The texts of a stream's deltas, and its answer (both hubs)."""
    if isinstance(hub, Hub):
        replies = hub.stream(text, **kwargs)
        return [d.text for d in replies], replies.answer

    async def read() -> tuple[list[str], Any]:
        replies = await hub.stream(text, **kwargs)
        return [d.text async for d in replies], replies.answer

    return asyncio.run(read())


def down(status: int = 503) -> TransientError:
    return TransientError("overloaded", backend="fake-chat", status=status)


def events(logs: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


# --- falling back -----------------------------------------------------------------------------


def test_a_5xx_after_the_retries_falls_back_and_the_answer_names_who_served(
    kind: str, fakes: FakeBackends, backup: Backup
) -> None:
    fakes.chat.script(down(), down())
    hub = build(kind, fakes, backup)
    with capture_logs() as logs:
        answer = run(hub.ask("hi"))
    assert len(fakes.chat.calls) == 2  # the retry policy first
    assert answer.backend == "backup-chat"
    assert answer.text == "echo: hi"
    (request,) = backup.chat.calls
    assert request.model is None  # the assistant's model is not sent to another vendor
    assert answer.reply.model == "backup-model"
    (fell,) = events(logs, "chat_fallback")
    assert fell["log_level"] == "warning"
    assert (fell["backend"], fell["next"], fell["error"], fell["status"]) == (
        "fake-chat", "backup-chat", "TransientError", 503
    )  # fmt: skip
    assert fell["model"] == "support-model"
    assert fell["assistant"] == "support"
    (served,) = events(logs, "chat_fallback_served")
    assert (served["backend"], served["primary"]) == ("backup-chat", "fake-chat")
    stored = run(hub.dialogue(answer.dialogue_id)).messages
    assert [(m.role, m.model) for m in stored] == [("user", None), ("assistant", "backup-model")]


def test_a_fallback_asks_its_own_model(kind: str, fakes: FakeBackends, backup: Backup) -> None:
    fakes.chat.script(BackendTimeoutError("slow", backend="fake-chat"))
    hub = build(kind, fakes, backup, attempts=1)
    with capture_logs() as logs:
        answer = run(hub.ask("hi", assistant="pinned"))
    assert backup.chat.calls[0].model == "big"
    assert (answer.backend, answer.reply.model) == ("backup-chat", "big")
    assert events(logs, "chat_fallback")[0]["next_model"] == "big"
    stored = run(hub.dialogue(answer.dialogue_id)).messages
    assert stored[-1].model == "big"


@pytest.mark.parametrize(
    "error",
    [
        RateLimitedError("slow down", backend="fake-chat", status=429),
        RateLimitedError("come back tomorrow", backend="fake-chat", retry_after=86400),
        BackendTimeoutError("timed out", backend="fake-chat"),
    ],
)
def test_rate_limits_and_timeouts_fall_back(
    kind: str, fakes: FakeBackends, backup: Backup, error: Exception
) -> None:
    fakes.chat.script(error, error)
    answer = run(build(kind, fakes, backup).ask("hi"))
    assert answer.backend == "backup-chat"


def test_a_rejected_key_falls_back_and_is_logged_as_an_error(
    kind: str, fakes: FakeBackends, backup: Backup
) -> None:
    fakes.chat.script(AuthenticationError("bad key", backend="fake-chat", status=401))
    hub = build(kind, fakes, backup)
    with capture_logs() as logs:
        answer = run(hub.ask("hi"))
    assert len(fakes.chat.calls) == 1  # not retried
    assert answer.backend == "backup-chat"
    (fell,) = events(logs, "chat_fallback")
    assert fell["log_level"] == "error"
    assert fell["error"] == "AuthenticationError"
    assert "API key" in fell["hint"]


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequestError("bad request", backend="fake-chat", status=400),
        UnsupportedError("no images here", backend="fake-chat"),
        ResponseError("not JSON", backend="fake-chat"),
    ],
)
def test_a_refused_request_does_not_fall_back(
    kind: str, fakes: FakeBackends, backup: Backup, error: Exception
) -> None:
    fakes.chat.script(error)
    hub = build(kind, fakes, backup)
    with capture_logs() as logs, pytest.raises(type(error)):
        run(hub.ask("hi"))
    assert backup.chat.calls == []
    assert len(fakes.chat.calls) == 1
    assert events(logs, "chat_fallback") == []


def test_when_every_backend_fails_the_last_error_is_raised(
    kind: str, fakes: FakeBackends, backup: Backup
) -> None:
    fakes.chat.script(down())
    backup.chat.script(TransientError("also down", backend="backup-chat", status=502))
    hub = build(kind, fakes, backup, attempts=1)
    with pytest.raises(TransientError, match="also down"):
        run(hub.ask("hi"))
    assert len(fakes.chat.calls) == len(backup.chat.calls) == 1
    assert run(hub.dialogues()).total == 0  # nothing stored


def test_without_fallbacks_nothing_changes(kind: str, fakes: FakeBackends, backup: Backup) -> None:
    hub = build(kind, fakes, backup)
    assert run(hub.ask("hi", assistant="alone")).backend == "fake-chat"
    fakes.chat.script(down(), down())
    with capture_logs() as logs, pytest.raises(TransientError):
        run(hub.ask("hi", assistant="alone"))
    assert len(fakes.chat.calls) == 3
    assert backup.chat.calls == []
    assert events(logs, "chat_fallback") == []


def test_an_unknown_fallback_is_a_config_error_before_any_call(
    kind: str, fakes: FakeBackends, backup: Backup
) -> None:
    hub = build(kind, fakes, backup)
    with pytest.raises(ConfigError) as info:
        run(hub.ask("hi", assistant="typo"))
    assert info.value.key == "assistants.typo.fallbacks[1]"
    assert "'bakcup-chat'" in str(info.value)
    assert "backup-chat" in str(info.value)
    assert fakes.chat.calls == []


# --- circuit breakers -------------------------------------------------------------------------


def test_an_open_circuit_is_skipped_without_a_call(
    kind: str, fakes: FakeBackends, backup: Backup
) -> None:
    fakes.chat.script(down(), down())
    hub = build(kind, fakes, backup, attempts=1, failures=2)
    with capture_logs() as logs:
        for _ in range(3):
            assert run(hub.ask("hi")).backend == "backup-chat"
    assert len(fakes.chat.calls) == 2  # the third ask did not call it at all
    assert len(backup.chat.calls) == 3
    (opened,) = events(logs, "circuit_opened")
    assert (opened["backend"], opened["failures"]) == ("fake-chat", 2)
    skipped = events(logs, "chat_fallback")[-1]
    assert (skipped["error"], skipped["next"]) == ("CircuitOpenError", "backup-chat")


def test_a_smaller_model_of_the_same_backend_does_not_close_the_big_ones_circuit(
    kind: str, fakes: FakeBackends, backup: Backup
) -> None:
    fakes.chat.script(down(), "small 1", down(), "small 2", "small 3")
    hub = build(kind, fakes, backup, attempts=1, failures=2)
    for n in (1, 2, 3):
        assert run(hub.ask("hi", assistant="sibling")).text == f"small {n}"
    models = [request.model for request in fakes.chat.calls]
    assert models == ["support-model", "small", "support-model", "small", "small"]


def test_an_open_circuit_without_fallbacks_fails_fast_saying_when(
    kind: str, fakes: FakeBackends, backup: Backup
) -> None:
    clock = Clock()
    fakes.chat.script(down(), down())
    hub = build(kind, fakes, backup, attempts=1, failures=2, clock=clock)
    for _ in range(2):
        with pytest.raises(TransientError):
            run(hub.ask("hi", assistant="alone"))
    clock.now += 10
    with pytest.raises(CircuitOpenError) as info:
        run(hub.ask("hi", assistant="alone"))
    assert len(fakes.chat.calls) == 2
    error = info.value
    assert (error.backend, error.retryable, error.retry_after) == ("fake-chat", False, 20.0)
    assert str(error).startswith("fake-chat: not called: its last 2 calls failed")
    assert "tried again in 20s" in str(error)


def test_after_the_reset_one_trial_call_closes_or_reopens_the_circuit(
    kind: str, fakes: FakeBackends, backup: Backup
) -> None:
    clock = Clock()
    fakes.chat.script(down(), down(), down())  # two open it; the first trial fails too
    hub = build(kind, fakes, backup, attempts=1, failures=2, clock=clock)
    for _ in range(2):
        run(hub.ask("hi"))
    assert run(hub.ask("hi")).backend == "backup-chat"
    assert len(fakes.chat.calls) == 2
    clock.now += 30
    assert run(hub.ask("hi")).backend == "backup-chat"  # the trial failed: open again
    assert len(fakes.chat.calls) == 3
    clock.now += 29
    run(hub.ask("hi"))
    assert len(fakes.chat.calls) == 3  # still open
    clock.now += 1
    with capture_logs() as logs:
        assert run(hub.ask("hi")).backend == "fake-chat"  # the trial succeeded: closed
    assert events(logs, "circuit_closed") == [
        {"event": "circuit_closed", "backend": "fake-chat", "log_level": "info"}
    ]
    assert run(hub.ask("hi")).backend == "fake-chat"
    assert len(fakes.chat.calls) == 5


def test_a_refused_request_does_not_count_towards_the_circuit(
    kind: str, fakes: FakeBackends, backup: Backup
) -> None:
    bad = InvalidRequestError("bad", backend="fake-chat", status=400)
    fakes.chat.script(down(), bad, down(), bad)
    hub = build(kind, fakes, backup, attempts=1, failures=2)
    for expected in ("backup-chat", None, "backup-chat", None):
        if expected is None:
            with pytest.raises(InvalidRequestError):
                run(hub.ask("hi"))
        else:
            assert run(hub.ask("hi")).backend == expected
    assert run(hub.ask("hi")).backend == "fake-chat"  # never opened
    assert hub._rt.circuit("fake-chat").state == "closed"


# --- streams ----------------------------------------------------------------------------------


def test_a_stream_falls_back_before_its_first_delta(
    kind: str, fakes: FakeBackends, backup: Backup
) -> None:
    fakes.chat.script(down(), down())
    backup.chat.script(["Hel", "lo"])
    hub = build(kind, fakes, backup)
    with capture_logs() as logs:
        texts, answer = stream(hub, "hi", assistant="pinned")
    assert texts == ["Hel", "lo"]
    assert (answer.backend, answer.reply.model, answer.text) == ("backup-chat", "big", "Hello")
    assert backup.chat.calls[0].model == "big"
    assert [e["next"] for e in events(logs, "chat_fallback")] == ["backup-chat"]
    stored = run(hub.dialogue(answer.dialogue_id)).messages
    assert stored[-1].model == "big"


def test_a_stream_broken_after_its_first_delta_does_not_fall_back(
    kind: str, fakes: FakeBackends, backup: Backup
) -> None:
    fakes.chat.script(["Hel", down()])
    hub = build(kind, fakes, backup)
    with pytest.raises(TransientError):
        stream(hub, "hi")
    assert backup.chat.calls == []
    assert run(hub.dialogues()).total == 0


def test_a_stream_skips_an_open_circuit(kind: str, fakes: FakeBackends, backup: Backup) -> None:
    fakes.chat.script(down())
    hub = build(kind, fakes, backup, attempts=1, failures=1)
    assert stream(hub, "one")[1].backend == "backup-chat"
    texts, answer = stream(hub, "two")
    assert answer.backend == "backup-chat"
    assert texts[0] == "echo:"
    assert len(fakes.chat.calls) == 1


# --- the pieces -------------------------------------------------------------------------------


def test_which_errors_are_outages() -> None:
    assert is_outage(TransientError("x", backend="b"))
    assert is_outage(RateLimitedError("x", backend="b"))
    assert is_outage(AuthenticationError("x", backend="b", status=401))
    assert not is_outage(InvalidRequestError("x", backend="b", status=400))
    assert not is_outage(TransientError("x", backend="b", retryable=False))
    assert not is_outage(KeyError("a plugin's bug"))


def test_the_breaker_lets_one_trial_through_at_a_time() -> None:
    clock = Clock()
    breaker = CircuitBreaker("b", failures=3, reset_s=10, clock=clock)
    for _ in range(3):
        assert breaker.admit() == 0
        breaker.failed()
    assert breaker.state == "open"
    assert breaker.admit() == 10
    clock.now += 10
    admitted: list[float] = []
    threads = [threading.Thread(target=lambda: admitted.append(breaker.admit())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(admitted) == [0.0] + [10.0] * 7  # one trial; the rest wait for it
    clock.now += 10  # a trial that never reported back does not block the backend for good
    assert breaker.admit() == 0
    breaker.succeeded()
    assert breaker.state == "closed"
    assert breaker.failures == 0


def test_a_zero_threshold_never_opens() -> None:
    breaker = CircuitBreaker("b", failures=0)
    for _ in range(100):
        breaker.failed()
    assert breaker.admit() == 0
    assert breaker.state == "closed"


def test_fallbacks_are_names_or_tables() -> None:
    profile = {"fallbacks": ["ollama", {"backend": "openai", "model": "gpt-6-luna"}]}
    settings = load_settings(overrides={"assistants": {"a": profile}}, env={}, search=False)
    assert settings.assistants["a"].fallbacks == (
        Fallback("ollama"),
        Fallback("openai", "gpt-6-luna"),
    )
    assert settings.circuit.failures == 5
    assert settings.circuit.reset_s == 30.0


@pytest.mark.parametrize(
    ("entries", "key"),
    [
        ([3], "fallbacks[0].backend"),
        (["ok", {"backend": "x", "modle": "y"}], "fallbacks[1].modle"),
        ([{"model": "m"}], "fallbacks[0].backend"),
        ([""], "fallbacks[0].backend"),
    ],
)
def test_a_wrong_fallback_names_its_key(entries: list[Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(overrides={"assistants": {"a": {"fallbacks": entries}}}, env={}, search=False)
    assert info.value.key == f"assistants['a'].{key}"


class SyncOnlyChat:
    """A chat backend without the async protocol (the async hub threads it)."""

    def complete(self, request: Any) -> Any:
        from modelport import Reply

        return Reply(text="sync", model="sync-model")

    def stream(self, request: Any) -> Any:
        from modelport import StreamDelta

        yield StreamDelta(text="s1", model="sync-model")
        yield StreamDelta(text="s2")

    def models(self) -> list[Any]:
        return []


class SyncOnly:
    @hookimpl
    def modelport_register_backends(self, registry: BackendRegistry) -> None:
        registry.add("sync-chat", lambda _context: SyncOnlyChat(), capabilities=["chat"])


def test_a_stream_falls_back_from_an_async_backend_to_a_sync_only_one(
    kind: str, fakes: FakeBackends
) -> None:
    fakes.chat.script(down())
    overrides = {"assistants": {"mixed": {"fallbacks": ["sync-chat"]}}, "retry": {"attempts": 1}}
    make = make_test_hub if kind == "sync" else make_test_async_hub
    hub = make(fakes, overrides=overrides, plugins=[SyncOnly()])
    texts, answer = stream(hub, "hi", assistant="mixed")
    assert texts == ["s1", "s2"]
    assert (answer.backend, answer.reply.model) == ("sync-chat", "sync-model")
