"""Turns, with both hubs: stored whole and paired under concurrency, the reply kept when the
store fails, a continued dialogue keeping its assistant, and the history window."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

import modelport_jsonfile
from modelport import AsyncHub, Hub, Message
from modelport.errors import (
    InvalidInputError,
    InvalidRequestError,
    ReplyNotStoredError,
    StorageError,
)
from modelport.testing import FakeBackends, make_test_async_hub, make_test_hub
from tests.support import run

SUPPORT = {
    "support": {
        "model": "support-model",
        "instructions": "You are kind.",
        "options": {"temperature": 0.1},
        "history": {"max_messages": 4},
    },
    "terse": {"instructions": "Be terse.", "history": {"max_tokens": 6}},
}


def _jsonfile(tmp_path: Path) -> dict[str, Any]:
    return {
        "overrides": {
            "capabilities": {"storage": "jsonfile"},
            "backends": {"jsonfile": {"root": str(tmp_path / "store")}},
            "assistants": SUPPORT,
        },
        "plugins": [("jsonfile", modelport_jsonfile)],
    }


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def build(kind: str, fakes: FakeBackends | None = None, **kwargs: Any) -> Hub | AsyncHub:
    kwargs.setdefault("overrides", {"assistants": SUPPORT})
    if kind == "sync":
        return make_test_hub(fakes, **kwargs)
    return make_test_async_hub(fakes, **kwargs)


def _unpaired(messages: tuple[Message, ...]) -> list[str]:
    texts = [m.text for m in messages]
    assert len(texts) % 2 == 0, "a half turn was stored"
    return [q for q, a in zip(texts[::2], texts[1::2], strict=True) if a != f"echo: {q}"]


# --- whole and paired -------------------------------------------------------------------------


def test_8_threads_asking_into_one_dialogue_keep_every_question_with_its_reply(
    tmp_path: Path,
) -> None:
    with make_test_hub(**_jsonfile(tmp_path)) as hub:
        dialogue = hub.ask("start").dialogue_id

        def asker(n: int) -> None:
            for i in range(25):
                hub.ask(f"t{n}-{i}", dialogue=dialogue)

        threads = [threading.Thread(target=asker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        messages = hub.dialogue(dialogue).messages
    assert len(messages) == 2 * (1 + 8 * 25)
    assert _unpaired(messages) == []


def test_100_concurrent_async_asks_into_one_dialogue_stay_paired(tmp_path: Path) -> None:
    async def main() -> tuple[Message, ...]:
        async with make_test_async_hub(**_jsonfile(tmp_path)) as hub:
            dialogue = (await hub.ask("start")).dialogue_id
            await asyncio.gather(*(hub.ask(f"a{n}", dialogue=dialogue) for n in range(100)))
            return (await hub.dialogue(dialogue)).messages

    messages = asyncio.run(main())
    assert len(messages) == 2 * 101
    assert _unpaired(messages) == []


def test_the_turn_is_one_store_call_with_the_reply_usage_and_model(kind: str) -> None:
    fakes = FakeBackends()
    hub = build(kind, fakes)
    answer = run(hub.ask("Hello"))
    question, reply = run(hub.dialogue(answer.dialogue_id)).messages
    assert (question.role, reply.role) == ("user", "assistant")
    assert reply.usage == answer.reply.usage
    assert reply.model == answer.reply.model
    assert reply.sentiment == answer.sentiment


# --- the reply is never lost ------------------------------------------------------------------


def _failing_store(fakes: FakeBackends, error: Exception) -> None:
    def append(dialogue_id: str, *messages: Message) -> None:
        raise error

    fakes.store.append = append  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "error",
    [
        StorageError("cannot append to the dialogue: No space left on device", path="/s/d.jsonl"),
        OSError(28, "No space left on device"),  # a third-party store's raw error
    ],
)
def test_a_store_failure_after_the_reply_hands_the_reply_over(kind: str, error: Exception) -> None:
    fakes = FakeBackends()
    hub = build(kind, fakes)
    first = run(hub.ask("first"))
    _failing_store(fakes, error)
    fakes.chat.script("the paid answer")
    with pytest.raises(ReplyNotStoredError) as caught:
        run(hub.ask("second", dialogue=first.dialogue_id))
    exc = caught.value
    assert exc.reply.text == "the paid answer"  # type: ignore[attr-defined]
    assert exc.dialogue_id == first.dialogue_id
    if isinstance(error, OSError):  # the core made it a StorageError naming store and call
        assert isinstance(exc.__cause__, StorageError)
        assert exc.__cause__.__cause__ is error
        assert "store 'memory' could not append" in str(exc)
    else:
        assert exc.__cause__ is error
    assert "No space left on device" in str(exc)
    assert "\n" not in str(exc)
    assert isinstance(exc, StorageError)


def test_a_streamed_reply_the_store_cannot_keep_is_handed_over(kind: str) -> None:
    fakes = FakeBackends()
    hub = build(kind, fakes)
    _failing_store(fakes, StorageError("disk full", path="/s"))
    fakes.chat.script("streamed words")
    if isinstance(hub, Hub):
        stream = hub.stream("q")
        with pytest.raises(ReplyNotStoredError) as caught:
            list(stream)
    else:

        async def consume() -> None:
            stream = await hub.stream("q")
            async for _ in stream:
                pass

        with pytest.raises(ReplyNotStoredError) as caught:
            asyncio.run(consume())
    assert caught.value.reply.text == "streamed words"  # type: ignore[attr-defined]


def test_a_failed_sentiment_costs_the_reply_nothing(kind: str) -> None:
    fakes = FakeBackends()
    hub = build(kind, fakes)
    fakes.sentiment.script(InvalidRequestError("refused", backend="fake-sentiment"))
    answer = run(hub.ask("Hello"))
    assert answer.sentiment is None
    assert [m.text for m in run(hub.dialogue(answer.dialogue_id)).messages] == [
        "Hello", "echo: Hello"
    ]  # fmt: skip


# --- the dialogue's assistant, and the window ---------------------------------------------------


def test_continuing_a_dialogue_keeps_its_assistant(kind: str) -> None:
    fakes = FakeBackends()
    hub = build(kind, fakes)
    first = run(hub.ask("Hi", assistant="support"))
    answer = run(hub.ask("And then?", dialogue=first.dialogue_id))
    request = fakes.chat.calls[-1]
    assert request.messages[0] == Message("system", "You are kind.")
    assert request.model == "support-model"
    assert request.options.temperature == 0.1
    assert answer.assistant == "support"


def test_the_history_window_sends_the_latest_whole_turns(kind: str) -> None:
    fakes = FakeBackends()
    hub = build(kind, fakes)
    dialogue = run(hub.ask("q0", assistant="support")).dialogue_id
    for n in range(1, 6):
        run(hub.ask(f"q{n}", dialogue=dialogue))
    sent = [m.text for m in fakes.chat.calls[-1].messages]
    assert sent == ["You are kind.", "q3", "echo: q3", "q4", "echo: q4", "q5"]
    assert len(run(hub.dialogue(dialogue)).messages) == 12  # all of it stays stored


def test_the_window_by_tokens_never_opens_on_a_reply(kind: str) -> None:
    fakes = FakeBackends()
    hub = build(kind, fakes)
    dialogue = run(hub.ask("q" * 8, assistant="terse")).dialogue_id
    run(hub.ask("x" * 8, dialogue=dialogue))
    run(hub.ask("last", dialogue=dialogue))
    sent = [m.text for m in fakes.chat.calls[-1].messages]
    # 6 tokens fit "echo: xxxxxxxx" (4) but not "xxxxxxxx" (3) too: the reply alone is dropped
    assert sent == ["Be terse.", "last"]


def test_a_blank_question_is_refused_before_anything_is_sent(kind: str) -> None:
    fakes = FakeBackends()
    hub = build(kind, fakes)
    for text in ("", "   \n\t"):
        with pytest.raises(InvalidInputError, match="empty"):
            run(hub.ask(text))
    with pytest.raises(
        InvalidInputError,
        match=r"not valid Unicode: byte 0x80 \(character 3\) is not UTF-8",
    ):
        run(hub.ask("ab\udc80c"))
    assert fakes.chat.calls == []
    assert run(hub.dialogues()).total == 0


def test_training_from_dialogues_skips_a_damaged_one(tmp_path: Path, kind: str) -> None:
    hub = build(kind, **_jsonfile(tmp_path))
    good = run(hub.ask("good question")).dialogue_id
    bad = run(hub.ask("bad question")).dialogue_id
    with (tmp_path / "store" / "dialogues" / f"{bad}.jsonl").open("ab") as file:
        file.write(b"not json\n")
    dataset = run(hub.dialogue_dataset())
    assert [e.messages[-1].text for e in dataset.examples] == ["echo: good question"]
    assert good


# --- what the review found ------------------------------------------------------------------


def test_a_store_of_the_older_protocol_is_refused_before_the_paid_call(kind: str) -> None:
    from modelport import hookimpl
    from modelport.errors import PluginError

    class OldStore:
        def create_dialogue(self, *, assistant: Any = None, title: Any = None) -> Any: ...
        def append(self, dialogue_id: str, message: Message) -> None: ...
        def load_dialogue(self, dialogue_id: str) -> Any: ...
        def list_dialogues(self, **kwargs: Any) -> Any: ...
        def delete_dialogue(self, dialogue_id: str) -> None: ...
        def save_job(self, record: Any) -> None: ...
        def load_job(self, job_id: str) -> Any: ...
        def list_jobs(self) -> Any: ...

    class Old:
        @hookimpl
        def modelport_register_backends(self, registry: Any) -> None:
            registry.add("old", lambda _context: OldStore(), capabilities=["storage"])

    fakes = FakeBackends()
    overrides = {"capabilities": {"storage": "old"}}
    hub = build(kind, fakes, overrides=overrides, plugins=[("old", Old())])
    with pytest.raises(PluginError, match="older storage protocol: append") as caught:
        run(hub.ask("hello"))
    assert "load_dialogue(dialogue_id, *, last=None)" in str(caught.value)
    assert fakes.chat.calls == [], "the chat backend was called (and paid) first"


def test_a_sentiment_plugin_raising_its_own_error_costs_the_reply_nothing(kind: str) -> None:
    fakes = FakeBackends()
    hub = build(kind, fakes)

    def broken(text: str) -> Any:
        raise RuntimeError("lexicon not found")

    fakes.sentiment.analyze = broken  # type: ignore[method-assign]
    answer = run(hub.ask("Hello"))
    assert answer.sentiment is None
    assert answer.text == "echo: Hello"


def test_no_empty_dialogue_is_left_when_the_first_turn_cannot_be_stored(kind: str) -> None:
    fakes = FakeBackends()
    hub = build(kind, fakes)
    _failing_store(fakes, OSError(28, "No space left on device"))
    with pytest.raises(ReplyNotStoredError) as caught:
        run(hub.ask("first question"))
    assert caught.value.dialogue_id is None
    assert run(hub.dialogues()).total == 0


def test_a_credential_in_a_store_error_is_masked(kind: str) -> None:
    fakes = FakeBackends()
    hub = build(kind, fakes)
    _failing_store(fakes, RuntimeError("cannot reach postgresql://bob:hunter2secret@db/x"))
    with pytest.raises(ReplyNotStoredError) as caught:
        run(hub.ask("question"))
    assert "hunter2secret" not in str(caught.value)
    assert "hunter2secret" not in str(caught.value.__cause__)


def test_a_started_job_is_returned_when_its_record_cannot_be_kept(kind: str) -> None:
    from structlog.testing import capture_logs

    from modelport.errors import StorageError
    from modelport.training import TrainingDataset, TrainingExample

    fakes = FakeBackends()
    hub = build(kind, fakes)

    def read_only(record: Any) -> None:
        raise StorageError("cannot save the job record: Read-only file system", path="/s/j.json")

    fakes.store.save_job = read_only  # type: ignore[method-assign]
    data = TrainingDataset(
        [
            TrainingExample([Message("user", f"q{i}"), Message("assistant", f"a{i}")])
            for i in range(10)
        ]
    )
    with capture_logs() as logs:
        job = run(hub.train(data, base_model="base"))
    assert job.id
    (event,) = [e for e in logs if e["event"] == "job_record_not_saved"]
    assert event["job_id"] == job.id
    assert "Read-only file system" in event["error"]
