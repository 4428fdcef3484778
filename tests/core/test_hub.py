"""The whole hub flow against the fakes: each test that takes ``hub_kind`` runs against
``Hub`` and ``AsyncHub`` alike (see ``tests/support.py``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from structlog.testing import capture_logs

from modelport import (
    AsyncHub,
    ChatOptions,
    Hub,
    Image,
    JobStatus,
    Message,
    StreamDelta,
    TextPart,
    TrainingDataset,
    TrainingExample,
    hookimpl,
    load_settings,
    make_plugins,
)
from modelport.errors import (
    AuthenticationError,
    BackendConnectionError,
    MissingSecretError,
    RateLimitedError,
    TrainingDataError,
    TransientError,
    UnsupportedError,
    WaitTimeoutError,
)
from modelport.testing import (
    TINY_PNG,
    FakeBackends,
    FakeChat,
    FakeTrainer,
    RecordingSleep,
    make_test_async_hub,
)
from modelport.types import UploadProgress

from ..support import make_hub
from .test_plugins import Recorder

PNG = TINY_PNG
ASSISTANTS = {
    "assistants": {
        "support": {
            "model": "support-model",
            "instructions": "You are kind.",
            "options": {"temperature": 0.1, "max_tokens": 100},
        }
    }
}


def dataset(n: int = 2) -> TrainingDataset:
    return TrainingDataset(
        [
            TrainingExample([Message("user", f"q{i}"), Message("assistant", f"a{i}")])
            for i in range(n)
        ],
        source="memory",
    )


# --- ask --------------------------------------------------------------------------------------


def test_ask_keeps_the_dialogue_applies_the_profile_and_knows_the_mood(
    fakes: FakeBackends, hub_kind: str
) -> None:
    fakes.chat.script("Glad to help, great question!", "You are welcome.")
    hub = make_hub(hub_kind, fakes, overrides=ASSISTANTS)
    first = hub.ask("How do I reset my password?", assistant="support")
    assert first.text == "Glad to help, great question!"
    assert first.sentiment is not None
    assert first.sentiment.label.value == "positive"
    assert first.assistant == "support"

    request = fakes.chat.calls[0]
    assert [m.role for m in request.messages] == ["system", "user"]
    assert request.messages[0].text == "You are kind."
    assert request.model == "support-model"
    assert (request.options.temperature, request.options.max_tokens) == (0.1, 100)

    second = hub.ask("Thanks", dialogue=first.dialogue_id, assistant="support",
                     options=ChatOptions(temperature=0.9))  # fmt: skip
    assert second.dialogue_id == first.dialogue_id
    history = fakes.chat.calls[1].messages
    assert [m.role for m in history] == ["system", "user", "assistant", "user"]
    assert fakes.chat.calls[1].options.temperature == 0.9

    stored = hub.dialogue(first.dialogue_id)
    assert [m.text for m in stored.messages] == [
        "How do I reset my password?", "Glad to help, great question!",
        "Thanks", "You are welcome.",
    ]  # fmt: skip
    assert stored.assistant == "support"
    assert stored.messages[1].sentiment == first.sentiment
    assert stored.messages[1].model == "support-model"
    assert all(m.created_at is not None for m in stored.messages)


def test_ask_with_images_sends_image_parts(
    fakes: FakeBackends, tmp_path: Path, hub_kind: str
) -> None:
    (tmp_path / "cat.png").write_bytes(PNG)
    hub = make_hub(hub_kind, fakes)
    hub.ask("what is this?", images=[tmp_path / "cat.png", "https://example.org/cat.jpg"])
    (user,) = fakes.chat.calls[0].messages
    assert [type(p).__name__ for p in user.parts] == ["TextPart", "ImagePart", "ImagePart"]


def test_a_failed_ask_stores_nothing(fakes: FakeBackends, hub_kind: str) -> None:
    hub = make_hub(hub_kind, fakes)
    first = hub.ask("hi")
    fakes.chat.script(UnsupportedError("no", backend="fake-chat"))
    with pytest.raises(UnsupportedError):
        hub.ask("again", dialogue=first.dialogue_id)
    assert len(hub.dialogue(first.dialogue_id).messages) == 2
    assert hub.dialogues().total == 1


def test_observers_see_each_exchange_with_usage_and_dialogue(hub_kind: str) -> None:
    recorder = Recorder()
    hub = make_hub(hub_kind, plugins=[recorder])
    answer = hub.ask("hello there")
    chat = [e for e in recorder.exchanges if e.capability == "chat"]  # type: ignore[attr-defined]
    assert len(chat) == 1
    (exchange,) = chat
    assert exchange.operation == "complete"
    assert exchange.backend == "fake-chat"
    assert exchange.result.text == answer.text
    assert exchange.usage.total_tokens > 0
    ops = [(e.capability.value, e.operation) for e in recorder.exchanges]  # type: ignore[attr-defined]
    assert ops == [("chat", "complete"), ("sentiment", "analyze"), ("storage", "create_dialogue"),
                   ("storage", "append")]  # fmt: skip


# --- stream -----------------------------------------------------------------------------------


def test_stream_yields_deltas_then_stores_the_whole_reply(
    fakes: FakeBackends, hub_kind: str
) -> None:
    fakes.chat.script(["Hel", "lo", StreamDelta(finish_reason="stop")])
    hub = make_hub(hub_kind, fakes)
    stream = hub.stream("hi")
    assert [d.text for d in stream] == ["Hel", "lo", ""]
    assert stream.answer is not None
    assert stream.answer.text == "Hello"
    assert stream.answer.reply.finish_reason == "stop"
    assert hub.dialogue(stream.answer.dialogue_id).messages[-1].text == "Hello"


def test_a_stream_is_retried_before_its_first_delta(fakes: FakeBackends, hub_kind: str) -> None:
    sleep = RecordingSleep()
    fakes.chat.script(RateLimitedError("429", backend="fake-chat", retry_after=1), ["ok"])
    stream = make_hub(hub_kind, fakes, sleep=sleep).stream("hi")
    assert [d.text for d in stream] == ["ok"]
    assert sleep.waits == [1.0]
    assert len(fakes.chat.calls) == 2


def test_a_stream_cut_after_its_first_delta_is_not_retried_and_not_stored(
    fakes: FakeBackends,
    hub_kind: str,
) -> None:
    recorder = Recorder()
    cut = BackendConnectionError("connection reset", backend="fake-chat")
    fakes.chat.script(["Hel", cut], "never used")
    hub = make_hub(hub_kind, fakes, plugins=[recorder])
    stream = hub.stream("hi")
    received: list[str] = []

    def consume() -> None:
        for delta in stream:
            received.append(delta.text)

    with pytest.raises(BackendConnectionError):
        consume()
    assert received == ["Hel"]
    assert stream.text == "Hel"
    assert len(fakes.chat.calls) == 1
    assert stream.answer is None
    assert hub.dialogues().total == 0
    assert [(f.attempt, f.will_retry) for f in recorder.failures] == [(1, False)]  # type: ignore[attr-defined]


def test_closing_a_stream_early_stores_nothing(fakes: FakeBackends, hub_kind: str) -> None:
    fakes.chat.script(["a", "b", "c"])
    hub = make_hub(hub_kind, fakes)
    stream = hub.stream("hi")
    assert next(stream).text == "a"
    stream.close()
    assert hub.dialogues().total == 0


# --- vision, sentiment, models ------------------------------------------------------------------


def test_describe_image_plain_and_structured(
    fakes: FakeBackends, tmp_path: Path, hub_kind: str
) -> None:
    (tmp_path / "a.png").write_bytes(PNG)
    hub = make_hub(hub_kind, fakes)
    reply = hub.describe_image(tmp_path / "a.png", Image.from_bytes(PNG))
    assert reply.text == "2 image(s): 79 bytes of image/png, 79 bytes of image/png"
    schema = {"type": "object", "properties": {"animal": {"type": "string"}}}
    fakes.vision.script({"animal": "cat"})
    reply = hub.describe_image(
        tmp_path / "a.png", prompt="Which animal?", schema=schema, detail="low"
    )
    assert reply.data == {"animal": "cat"}
    request = fakes.vision.calls[-1]
    assert (request.prompt, request.detail, request.options.json_schema) == (
        "Which animal?",
        "low",
        schema,
    )


def test_analyze_and_models(fakes: FakeBackends, hub_kind: str) -> None:
    hub = make_hub(hub_kind, fakes)
    sentiment = hub.analyze("this is awful and wrong")
    assert sentiment.label.value == "negative"
    assert sentiment.score == -1.0
    assert {e.term for e in sentiment.evidence} == {"awful", "wrong"}
    assert [m.id for m in hub.models()] == ["fake-model", "fake-model-large"]


# --- dialogues --------------------------------------------------------------------------------


def test_dialogues_list_page_filter_and_delete(fakes: FakeBackends, hub_kind: str) -> None:
    hub = make_hub(hub_kind, fakes, overrides=ASSISTANTS)
    ids = [hub.ask(f"q{i}", assistant="support" if i % 2 else None).dialogue_id for i in range(5)]
    page = hub.dialogues(limit=2)
    assert len(page.items) == 2
    assert page.total == 5
    assert page.next_offset == 2
    assert [i.id for i in page.items] == ids[::-1][:2]
    assert {i.id for i in hub.dialogues(assistant="support").items} == {ids[1], ids[3]}
    future = datetime.now(UTC) + timedelta(days=1)
    assert hub.dialogues(since=future).items == ()
    hub.delete_dialogue(ids[0])
    assert hub.dialogues().total == 4


# --- training ---------------------------------------------------------------------------------


def test_train_uploads_starts_records_and_waits(fakes: FakeBackends, hub_kind: str) -> None:
    sleep = RecordingSleep()
    hub = make_hub(hub_kind, fakes, sleep=sleep)
    job = hub.train(dataset(), base_model="base", suffix="mine", description="first try",
                    hyperparameters={"n_epochs": 2})  # fmt: skip
    assert job.status is JobStatus.QUEUED
    spec = fakes.trainer.calls[1][1]
    assert (spec.base_model, spec.suffix, spec.hyperparameters) == ("base", "mine", {"n_epochs": 2})
    (record,) = hub.jobs()
    assert (record.job_id, record.description, record.source) == (job.id, "first try", "memory")

    seen: list[JobStatus] = []
    done = hub.wait_job(job.id, poll_s=2, on_update=lambda j: seen.append(j.status))
    assert done.status is JobStatus.SUCCEEDED
    assert done.fine_tuned_model
    assert seen == [JobStatus.RUNNING, JobStatus.SUCCEEDED]
    assert sleep.waits == [2]
    (record,) = hub.jobs()
    assert [c.status.value for c in record.history] == ["queued", "running", "succeeded"]
    assert record.fine_tuned_model == done.fine_tuned_model
    assert [e.message for e in hub.job_events(job.id)][-1] == "status: succeeded"


def test_cancel_and_remote_jobs(fakes: FakeBackends, hub_kind: str) -> None:
    hub = make_hub(hub_kind, fakes)
    job = hub.train(dataset(), base_model="base")
    assert hub.cancel_job(job.id).status is JobStatus.CANCELLED
    assert hub.jobs()[0].status is JobStatus.CANCELLED
    assert [j.id for j in hub.remote_jobs()] == [job.id]


def test_one_job_record_is_read_by_its_id(fakes: FakeBackends, hub_kind: str) -> None:
    hub = make_hub(hub_kind, fakes)
    job = hub.train(dataset(), base_model="base", description="by id")
    record = hub.job_record(job.id)
    assert record is not None
    assert (record.job_id, record.description) == (job.id, "by id")
    assert hub.job_record("no-such-job") is None


def test_wait_gives_up_after_the_timeout_and_says_how_to_resume(
    fakes: FakeBackends, hub_kind: str
) -> None:
    fakes.trainer.progression = (JobStatus.QUEUED, JobStatus.RUNNING)
    hub = make_hub(hub_kind, fakes)
    job = hub.train(dataset(), base_model="base")
    with pytest.raises(WaitTimeoutError, match=f"modelport jobs wait {job.id}"):
        hub.wait_job(job.id, timeout_s=0)


def test_invalid_training_data_is_refused_before_upload(
    fakes: FakeBackends,
    tmp_path: Path,
    hub_kind: str,
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "q"}]}\n{"oops\n', encoding="utf-8")
    hub = make_hub(hub_kind, fakes)
    with pytest.raises(TrainingDataError) as info:
        hub.train(bad, base_model="base")
    assert info.value.problems[0].startswith(f"{bad}:2: not valid JSON")
    good_rows_bad_shape = TrainingDataset([TrainingExample([Message("user", "q")])], source="x")
    with pytest.raises(TrainingDataError, match="no assistant message to learn from"):
        hub.train(good_rows_bad_shape, base_model="base")
    assert fakes.trainer.calls == []


def test_a_vendor_refusing_to_train_is_a_clear_error(fakes: FakeBackends, hub_kind: str) -> None:
    refusal = UnsupportedError(
        "fine-tuning is not available for new jobs", backend="fake-training", status=403
    )
    fakes.trainer.script(None, refusal)
    with pytest.raises(UnsupportedError, match="not available for new jobs"):
        make_hub(hub_kind, fakes).train(dataset(), base_model="base")


def test_dynamic_train_uses_stored_dialogues_filtered_by_assistant_and_mood(
    fakes: FakeBackends,
    hub_kind: str,
) -> None:
    hub = make_hub(hub_kind, fakes, overrides=ASSISTANTS)
    fakes.chat.script("great!", "bad news", "great again")
    happy = hub.ask("one", assistant="support").dialogue_id
    hub.ask("two", assistant="support")
    hub.ask("three")
    job = hub.dynamic_train(assistant="support", labels={"positive"})
    uploaded = fakes.trainer.uploads[fakes.trainer.calls[1][1].training_file]
    assert job.base_model == "support-model"
    assert len(uploaded.examples) == 1
    assert uploaded.source == f"dialogues {happy}"
    assert [m.role for m in uploaded.examples[0].messages] == ["system", "user", "assistant"]


def test_check_without_a_base_model_is_not_ready(fakes: FakeBackends, hub_kind: str) -> None:
    hub = make_hub(hub_kind, fakes)
    assert hub.check_dataset(dataset()).problems == (
        "no base model to train: pass base_model (CLI: --model), set [training] "
        "base_model, or give the default assistant a model",
    )
    assert hub.check_dataset(dataset(), base_model="base").ok
    with_model = make_hub(hub_kind, fakes, overrides={**ASSISTANTS, "default_assistant": "support"})
    assert with_model.check_dataset(dataset()).ok  # the default assistant's model will do


def _jsonl_size(data: TrainingDataset) -> int:
    from modelport.training import dataset_to_jsonl

    return len(dataset_to_jsonl(data).encode())


def test_train_reports_the_progress_of_each_upload(fakes: FakeBackends, hub_kind: str) -> None:
    events: list[UploadProgress] = []
    make_hub(hub_kind, fakes).train(
        dataset(), base_model="base", validation=dataset(3), on_progress=events.append
    )
    one, two = _jsonl_size(dataset()), _jsonl_size(dataset(3))
    assert [(e.file, e.sent, e.total, e.file_id) for e in events] == [
        ("training", 0, None, None),
        ("training", one // 2, one, None),
        ("training", one, one, None),
        ("training", one, one, "file-1"),
        ("validation", 0, None, None),
        ("validation", two // 2, two, None),
        ("validation", two, two, None),
        ("validation", two, two, "file-2"),
    ]
    assert events[-1].done
    assert not events[-2].done


def test_a_job_that_cannot_start_deletes_its_uploads_and_names_them(
    fakes: FakeBackends, hub_kind: str
) -> None:
    refusal = UnsupportedError("no new jobs", backend="fake-training", status=403)
    fakes.trainer.script(None, None, refusal)  # the two uploads pass, start is refused
    with pytest.raises(UnsupportedError) as caught:
        make_hub(hub_kind, fakes).train(dataset(), base_model="base", validation=dataset(3))
    assert str(caught.value) == (
        "fake-training: no new jobs (status 403) (deleted the uploaded files file-1, file-2)"
    )
    deletes = [call for call in fakes.trainer.calls if call[0] == "delete_file"]
    assert deletes == [("delete_file", "file-1"), ("delete_file", "file-2")]
    assert fakes.trainer.uploads == {}


def test_a_failed_validation_upload_deletes_the_training_upload(
    fakes: FakeBackends, hub_kind: str
) -> None:
    fakes.trainer.script(None, BackendConnectionError("connection reset", backend="fake-training"))
    with pytest.raises(BackendConnectionError, match=r"\(deleted the uploaded file file-1\)$"):
        make_hub(hub_kind, fakes).train(dataset(), base_model="base", validation=dataset(3))
    assert fakes.trainer.uploads == {}  # start was never called: no job can hold the file


def test_a_start_that_may_have_happened_keeps_the_upload(
    fakes: FakeBackends, hub_kind: str
) -> None:
    fakes.trainer.script(None, BackendConnectionError("connection reset", backend="fake-training"))
    with pytest.raises(BackendConnectionError) as caught:
        make_hub(hub_kind, fakes).train(dataset(), base_model="base")
    assert str(caught.value).endswith(
        "(a job may have started anyway (check: modelport jobs list --remote), "
        "so the uploaded file file-1 was kept)"
    )
    assert "delete_file" not in [call[0] for call in fakes.trainer.calls]


class _OlderTrainer(FakeTrainer):
    """A trainer written before upload progress and ``delete_file`` existed."""

    delete_file = None  # type: ignore[assignment]

    def upload(self, dataset: TrainingDataset) -> str:  # type: ignore[override]
        return super().upload(dataset)


def test_an_older_trainer_still_reports_each_upload_and_names_its_orphan(hub_kind: str) -> None:
    fakes = FakeBackends(trainer=_OlderTrainer())
    fakes.trainer.script(None, UnsupportedError("no new jobs", backend="fake-training"))
    events: list[UploadProgress] = []
    with pytest.raises(UnsupportedError) as caught:
        make_hub(hub_kind, fakes).train(dataset(), base_model="base", on_progress=events.append)
    assert events == [UploadProgress("training"), UploadProgress("training", file_id="file-1")]
    assert str(caught.value).endswith(
        "(the uploaded file file-1 is left on the backend: delete it there)"
    )
    assert fakes.trainer.uploads  # nobody deleted it


def test_waiting_rides_out_an_outage_backing_off(fakes: FakeBackends, hub_kind: str) -> None:
    sleep = RecordingSleep()
    hub = make_hub(hub_kind, fakes, sleep=sleep, overrides={"retry": {"attempts": 1}})
    job = hub.train(dataset(), base_model="base")
    fakes.trainer.script(
        BackendConnectionError("connection refused", backend="fake-training"),
        TransientError("bad gateway", backend="fake-training", status=502),
        RateLimitedError("slow down", backend="fake-training", status=429, retry_after=30),
    )
    with capture_logs() as logs:
        done = hub.wait_job(job.id, poll_s=2)
    assert done.status is JobStatus.SUCCEEDED
    assert sleep.waits == [2, 4, 30, 2]  # 2x a failure, what the backend asked, then polls
    failed = [e for e in logs if e["event"] == "job_poll_failed"]
    assert [e["failures"] for e in failed] == [1, 2, 3]
    assert failed[0]["error"] == "fake-training: connection refused"


def test_waiting_gives_up_after_a_long_outage_and_says_how_to_resume(
    fakes: FakeBackends, hub_kind: str
) -> None:
    hub = make_hub(hub_kind, fakes, overrides={"retry": {"attempts": 1}})
    job = hub.train(dataset(), base_model="base")
    down = BackendConnectionError("connection refused", backend="fake-training")
    fakes.trainer.script(None, down)  # the first poll sees it running, then the backend is down
    with pytest.raises(WaitTimeoutError) as caught:
        hub.wait_job(job.id, poll_s=1, max_outage_s=0)
    assert re.fullmatch(
        rf"gave up waiting for job {job.id} after \d+s: fake-training: connection refused; "
        rf"it was running when last seen \(it keeps running; resume with: "
        rf"modelport jobs wait {job.id}\)",
        str(caught.value),
    )
    assert caught.value.__cause__ is down


def test_waiting_stops_at_once_on_an_error_that_will_not_pass(
    fakes: FakeBackends, hub_kind: str
) -> None:
    hub = make_hub(hub_kind, fakes, overrides={"retry": {"attempts": 1}})
    job = hub.train(dataset(), base_model="base")
    fakes.trainer.script(AuthenticationError("bad key", backend="fake-training", status=401))
    with pytest.raises(AuthenticationError):
        hub.wait_job(job.id)


# --- async twin -------------------------------------------------------------------------------


async def test_the_async_hub_runs_the_whole_flow(fakes: FakeBackends, tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(PNG)
    fakes.chat.script("Great, hello!")
    async with make_test_async_hub(fakes, overrides=ASSISTANTS) as hub:
        answer = await hub.ask("hi", assistant="support")
        assert answer.text == "Great, hello!"
        assert answer.sentiment is not None
        stream = await hub.stream("more", dialogue=answer.dialogue_id, assistant="support")
        assert "".join([d.text async for d in stream]) == "echo: more"
        assert stream.answer is not None
        dialogue = await hub.dialogue(answer.dialogue_id)
        assert len(dialogue.messages) == 4
        assert (await hub.dialogues()).total == 1
        assert (await hub.describe_image(tmp_path / "a.png")).text.startswith("1 image(s)")
        assert (await hub.analyze("thank you")).label.value == "positive"
        assert len(await hub.models()) == 2
        job = await hub.train(dataset(), base_model="base")
        assert (await hub.wait_job(job.id, poll_s=0)).status is JobStatus.SUCCEEDED
        assert [r.status for r in await hub.jobs()] == [JobStatus.SUCCEEDED]
        assert len(await hub.job_events(job.id)) == 3
        dyn = await hub.dynamic_train(assistant="support")
        assert (await hub.cancel_job(dyn.id)).status is JobStatus.CANCELLED
        await hub.delete_dialogue(answer.dialogue_id)
        assert (await hub.dialogues()).total == 0
    assert isinstance(hub, AsyncHub)


async def test_async_train_reports_progress_and_deletes_an_orphan(fakes: FakeBackends) -> None:
    fakes.trainer.script(None, UnsupportedError("no new jobs", backend="fake-training"))
    events: list[UploadProgress] = []
    async with make_test_async_hub(fakes) as hub:
        with pytest.raises(UnsupportedError, match=r"\(deleted the uploaded file file-1\)$"):
            await hub.train(dataset(), base_model="base", on_progress=events.append)
    size = _jsonl_size(dataset())
    assert events[-1] == UploadProgress("training", size, size, file_id="file-1")
    assert fakes.trainer.uploads == {}


async def test_async_waiting_rides_out_an_outage_and_gives_up_after_a_long_one(
    fakes: FakeBackends,
) -> None:
    sleep = RecordingSleep()
    down = BackendConnectionError("connection refused", backend="fake-training")
    async with make_test_async_hub(fakes, sleep=sleep, overrides={"retry": {"attempts": 1}}) as hub:
        job = await hub.train(dataset(), base_model="base")
        fakes.trainer.script(down, down)
        assert (await hub.wait_job(job.id, poll_s=2)).status is JobStatus.SUCCEEDED
        assert sleep.waits == [2, 4, 2]
        again = await hub.train(dataset(), base_model="base")
        fakes.trainer.script(down)
        with pytest.raises(WaitTimeoutError, match=f"resume with: modelport jobs wait {again.id}"):
            await hub.wait_job(again.id, max_outage_s=0)


async def test_async_stream_is_retried_only_before_its_first_delta(fakes: FakeBackends) -> None:
    sleep = RecordingSleep()
    fakes.chat.script(
        RateLimitedError("429", backend="fake-chat", retry_after=3),
        ["a", BackendConnectionError("cut", backend="fake-chat")],
    )
    hub = make_test_async_hub(fakes, sleep=sleep)
    stream = await hub.stream("hi")
    got: list[str] = []

    async def consume() -> None:
        async for delta in stream:
            got.append(delta.text)

    with pytest.raises(BackendConnectionError):
        await consume()
    assert got == ["a"]
    assert sleep.waits == [3.0]
    assert len(fakes.chat.calls) == 2


class SyncOnlyChat:
    """A backend with no async methods: the async hub must run it in a thread."""

    def __init__(self) -> None:
        import threading

        self.threads: set[int] = set()
        self._threading = threading

    def complete(self, request):  # type: ignore[no-untyped-def]
        from modelport import Reply

        self.threads.add(self._threading.get_ident())
        return Reply(text="sync", model="m")

    def stream(self, request):  # type: ignore[no-untyped-def]
        self.threads.add(self._threading.get_ident())
        yield StreamDelta(text="s1")
        yield StreamDelta(text="s2")

    def models(self):  # type: ignore[no-untyped-def]
        return []


async def test_async_hub_runs_sync_only_backends_off_the_event_loop() -> None:
    import threading

    chat = SyncOnlyChat()

    class Plugin:
        @hookimpl
        def modelport_register_backends(self, registry):  # type: ignore[no-untyped-def]
            registry.add("sync-chat", lambda _ctx: chat, capabilities=["chat"])

    hub = make_test_async_hub(plugins=[Plugin()], overrides={"capabilities": {"chat": "sync-chat"}})
    assert (await hub.ask("hi")).text == "sync"
    stream = await hub.stream("hi")
    assert [d.text async for d in stream] == ["s1", "s2"]
    assert threading.get_ident() not in chat.threads


# --- backends that need secrets ---------------------------------------------------------------


@attrs.frozen
class VendorSettings:
    model: str = "v-1"
    api_key_env: str = "VENDOR_API_KEY"


class VendorChat:
    def __init__(self, context) -> None:  # type: ignore[no-untyped-def]
        self.key = context.secret(context.settings.api_key_env)
        self.model = context.settings.model

    def complete(self, request):  # type: ignore[no-untyped-def]
        from modelport import Reply

        return Reply(text=f"key ok for {self.model}", model=self.model)

    def stream(self, request):  # type: ignore[no-untyped-def]
        yield from ()

    def models(self):  # type: ignore[no-untyped-def]
        return []


class VendorPlugin:
    @hookimpl
    def modelport_register_backends(self, registry):  # type: ignore[no-untyped-def]
        registry.add("vendor", VendorChat, capabilities=["chat"], settings=VendorSettings)


def vendor_hub(env: dict[str, str], backends: dict[str, object] | None = None) -> Hub:
    overrides = {"capabilities": {**FakeBackends.capabilities(), "chat": "vendor"},
                 "backends": {"vendor": backends or {}}}  # fmt: skip
    settings = load_settings(overrides=overrides, env=env, search=False)
    plugins = make_plugins(autoload=False, plugins=[FakeBackends(), VendorPlugin()])
    return Hub(settings, plugins=plugins, env=env)


def test_a_missing_api_key_is_a_one_line_error_naming_the_variable() -> None:
    with pytest.raises(MissingSecretError) as info:
        vendor_hub({}).ask("hi")
    assert "VENDOR_API_KEY" in str(info.value)
    assert "\n" not in str(info.value)


def test_backend_settings_come_from_their_section_and_secrets_from_env() -> None:
    env = {"MY_KEY": "sk-secret-value-123"}
    hub = vendor_hub(env, {"model": "v-2", "api_key_env": "MY_KEY"})
    assert hub.ask("hi").text == "key ok for v-2"
    (stored,) = [hub.dialogue(i.id) for i in hub.dialogues().items]
    assert "sk-secret" not in repr(stored)


def test_the_message_shorthand_and_explicit_messages(hub_kind: str) -> None:
    fakes = FakeBackends()
    hub = make_hub(hub_kind, fakes)
    hub.ask(Message("user", [TextPart("explicit")]))
    assert fakes.chat.calls[0].messages[-1].text == "explicit"


def test_from_config_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[capabilities]\nchat = "fake-chat"\n[retry]\nattempts = 2\n')
    hub = Hub.from_config(
        path, env={}, plugins=make_plugins(autoload=False, plugins=[FakeBackends()])
    )
    assert hub.settings.retry.attempts == 2
    assert hub.backend_name("chat") == "fake-chat"
    assert isinstance(AsyncHub.from_config(path, env={}), AsyncHub)


def test_a_broken_or_closed_stream_never_stores_a_partial_reply(
    fakes: FakeBackends, hub_kind: str
) -> None:
    hub = make_hub(hub_kind, fakes)
    fakes.chat.script(["Hel", BackendConnectionError("cut", backend="fake-chat")])
    broken = hub.stream("hi")
    with pytest.raises(BackendConnectionError):
        list(broken)
    assert list(broken) == []  # iterating again ends at once...
    assert broken.answer is None
    fakes.chat.script(["a", "b", "c"])
    closed = hub.stream("hi")
    next(closed)
    closed.close()
    assert list(closed) == []
    assert closed.answer is None
    assert hub.dialogues().total == 0  # ...and nothing partial was stored


async def test_a_broken_or_closed_async_stream_never_stores_a_partial_reply(
    fakes: FakeBackends,
) -> None:
    hub = make_test_async_hub(fakes)
    fakes.chat.script(["Hel", BackendConnectionError("cut", backend="fake-chat")])
    broken = await hub.stream("hi")
    with pytest.raises(BackendConnectionError):
        _ = [d async for d in broken]
    assert [d async for d in broken] == []
    fakes.chat.script(["a", "b", "c"])
    closed = await hub.stream("hi")
    await anext(closed)
    await closed.aclose()
    assert [d async for d in closed] == []
    assert (await hub.dialogues()).total == 0


class _TrackedChat(FakeChat):
    """A chat backend whose streams say when they were closed."""

    closed: list[str]

    def stream(self, request: Any) -> Iterator[StreamDelta]:
        self.closed = getattr(self, "closed", [])
        try:
            yield from super().stream(request)
        finally:
            self.closed.append("sync")

    async def astream(self, request: Any) -> AsyncIterator[StreamDelta]:
        self.closed = getattr(self, "closed", [])
        try:
            async for delta in super().astream(request):
                yield delta
        finally:
            self.closed.append("async")


def test_closing_a_stream_early_closes_the_backends_stream(hub_kind: str) -> None:
    fakes = FakeBackends(chat=_TrackedChat())
    hub = make_hub(hub_kind, fakes)
    fakes.chat.script(["a", "b", "c"])
    stream = hub.stream("hi")
    assert next(stream).text == "a"
    stream.close()
    assert fakes.chat.closed == [hub_kind]  # the async hub read the native astream


async def test_the_async_hubs_dialogues_are_read_lazily(fakes: FakeBackends) -> None:
    loaded: list[str] = []
    load = fakes.store.load_dialogue

    def counting(dialogue_id: str, **kwargs: Any) -> Any:
        loaded.append(dialogue_id)
        return load(dialogue_id, **kwargs)

    async with make_test_async_hub(fakes) as hub:
        for i in range(3):
            await hub.ask(f"q{i}")
        fakes.store.load_dialogue = counting  # type: ignore[method-assign]
        dialogues = hub._all_dialogues(None, None)  # an async iterator: nothing read yet
        assert loaded == []
        first = await anext(dialogues)
        assert len(loaded) == 1
        assert first.messages[0].text == "q2"
        assert [d.messages[0].text async for d in dialogues] == ["q1", "q0"]
