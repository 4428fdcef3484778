"""Conformance suites: subclass one, name your backend, and pytest checks the contract.

::

    from modelport.testing.conformance import StoreConformance

    class TestMyStore(StoreConformance):
        backend = "mystore"                     # the name your plugin registers
        plugins = [("mystore", my_plugin)]      # or () to load installed entry points

        def settings(self, tmp_path):           # your [backends.mystore] section
            return {"root": str(tmp_path)}

Every suite builds a hub on :func:`modelport.testing.make_test_hub` (the fakes serve the
other capabilities) with your backend chosen for its capability. This module imports pytest;
import it only from tests.

* :class:`StoreConformance`: round trips, ordering, paging and filters, missing ids, job
  records, and several threads appending at once.
* :class:`SentimentConformance`: scores in [-1, 1], labels, evidence from the text,
  determinism, and texts of every kind (empty, emoji, other scripts, long).
* :class:`ChatConformance`: complete, a stream assembled equals the complete reply, sync and
  async parity, models, and vendor failures mapped into the core's error tree. You arrange
  the vendor's answers (a respx route, say) in :meth:`ChatConformance.arrange_reply` and
  :meth:`ChatConformance.arrange_failure`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ..async_hub import AsyncHub
from ..errors import (
    AuthenticationError,
    BackendError,
    ConfigError,
    InvalidRequestError,
    ModelportError,
    RateLimitedError,
    RecordNotFoundError,
    TransientError,
)
from ..hub import Hub
from ..types import (
    Capability,
    ChatRequest,
    Image,
    ImagePart,
    JobRecord,
    JobStatus,
    Message,
    ModelInfo,
    Reply,
    Sentiment,
    SentimentLabel,
    StatusChange,
    TextPart,
    TrainingJob,
)
from . import TINY_PNG, FakeBackends, make_test_async_hub, make_test_hub

__all__ = ["ChatConformance", "SentimentConformance", "StoreConformance"]


class _Conformance:
    """What every suite shares: the backend under test and how to build a hub on it."""

    #: The backend's registered name.
    backend: ClassVar[str]
    #: The capability the suite checks.
    capability: ClassVar[Capability]
    #: Plugin objects to register, as ``(name, object)``; ``None`` loads the plugins installed
    #: under the ``modelport`` entry-point group (what a user of your package gets).
    plugins: ClassVar[Sequence[tuple[str, object]] | None] = None
    #: The fakes that serve the other capabilities (a fresh set per test).
    fakes: FakeBackends

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        """The backend's config section (``[backends.<name>]``)."""
        return {}

    def env(self) -> Mapping[str, str]:
        """The environment the backend reads its secrets from."""
        return {}

    def overrides(self, tmp_path: Path) -> dict[str, Any]:
        return {
            "capabilities": {self.capability.value: self.backend},
            "backends": {self.backend: dict(self.settings(tmp_path))},
            "retry": {"attempts": 1},
        }

    def _plugins(self) -> list[object]:
        if self.plugins is not None:
            return list(self.plugins)
        found = entry_points(group="modelport")
        return [(ep.name, ep.load()) for ep in found]

    def make_hub(self, tmp_path: Path) -> Hub:
        """A hub with the backend under test chosen for its capability."""
        return make_test_hub(
            self.fakes, overrides=self.overrides(tmp_path), plugins=self._plugins(), env=self.env()
        )

    def make_async_hub(self, tmp_path: Path) -> AsyncHub:
        return make_test_async_hub(
            self.fakes, overrides=self.overrides(tmp_path), plugins=self._plugins(), env=self.env()
        )

    @pytest.fixture
    def hub(self, tmp_path: Path) -> Iterator[Hub]:
        self.fakes = FakeBackends()
        hub = self.make_hub(tmp_path)
        yield hub
        hub.close()

    @pytest.fixture
    def backend_object(self, hub: Hub) -> Any:
        return hub.backend(self.capability)


# --- storage -----------------------------------------------------------------------------------


def _message(role: str, text: str, minute: int) -> Message:
    at = datetime(2026, 1, 1, 12, minute, tzinfo=UTC)
    return Message(role, text, created_at=at)  # type: ignore[arg-type]


class StoreConformance(_Conformance):
    """The storage contract (see :class:`modelport.backends.Store`)."""

    capability = Capability.STORAGE
    #: Threads appending to one dialogue at once, and messages each.
    threads: ClassVar[int] = 4
    appends_per_thread: ClassVar[int] = 25

    def test_a_dialogue_round_trips_with_every_part(self, backend_object: Any) -> None:
        store = backend_object
        info = store.create_dialogue(assistant="support", title="Ünïcode ✓")
        image = Image.from_bytes(TINY_PNG, source="cat.png")
        mood = Sentiment(SentimentLabel.POSITIVE, 0.5)
        sent = [
            _message("system", "Be brief.", 0),
            Message(
                "user",
                [TextPart("What is this? Что это? 🐈"), ImagePart(image, detail="low")],
                created_at=datetime(2026, 1, 1, 12, 1, tzinfo=UTC),
            ),
            Message(
                "assistant",
                "A cat.\nOn two lines.",
                sentiment=mood,
                created_at=datetime(2026, 1, 1, 12, 2, tzinfo=UTC),
            ),
        ]
        for message in sent:
            store.append(info.id, message)
        loaded = store.load_dialogue(info.id)
        assert (loaded.id, loaded.assistant, loaded.title) == (info.id, "support", "Ünïcode ✓")
        assert loaded.messages == tuple(sent)

    def test_missing_ids_are_record_not_found(self, backend_object: Any) -> None:
        store = backend_object
        calls: list[tuple[str, tuple[Any, ...]]] = [
            ("load_dialogue", ("no-such-dialogue",)),
            ("append", ("no-such-dialogue", Message("user", "hi"))),
            ("delete_dialogue", ("no-such-dialogue",)),
            ("load_job", ("no-such-job",)),
        ]
        for method, args in calls:
            with pytest.raises(RecordNotFoundError):
                getattr(store, method)(*args)

    def test_delete_removes_the_dialogue(self, backend_object: Any) -> None:
        store = backend_object
        kept = store.create_dialogue().id
        gone = store.create_dialogue().id
        store.delete_dialogue(gone)
        with pytest.raises(RecordNotFoundError):
            store.load_dialogue(gone)
        assert [i.id for i in store.list_dialogues().items] == [kept]

    def test_listing_is_newest_first_paged_and_filtered(self, backend_object: Any) -> None:
        store = backend_object
        ids = []
        for n in range(5):
            info = store.create_dialogue(assistant="a" if n % 2 == 0 else "b")
            store.append(info.id, _message("user", f"m{n}", n))
            ids.append(info.id)
        page = store.list_dialogues(limit=2)
        assert [i.id for i in page.items] == [ids[4], ids[3]]
        assert (page.total, page.next_offset) == (5, 2)
        last = store.list_dialogues(limit=2, offset=4)
        assert ([i.id for i in last.items], last.next_offset) == ([ids[0]], None)
        assert [i.id for i in store.list_dialogues(assistant="b").items] == [ids[3], ids[1]]
        since = datetime(2026, 1, 1, 12, 2, tzinfo=UTC)
        assert [i.id for i in store.list_dialogues(since=since).items] == ids[:1:-1]
        until = since + timedelta(seconds=1)
        assert [i.id for i in store.list_dialogues(until=until).items] == ids[2::-1]
        counts = {i.id: i.message_count for i in store.list_dialogues().items}
        assert set(counts.values()) == {1}

    def test_job_records_are_created_replaced_and_listed(self, backend_object: Any) -> None:
        store = backend_object
        job = TrainingJob("ftjob/1 x", "fake", "base", JobStatus.QUEUED)
        record = JobRecord("ftjob/1 x", "fake", "base", "data.csv", "first", exchanges=["k1"])
        store.save_job(record.with_status(job))
        done = record.with_status(job).with_status(
            TrainingJob("ftjob/1 x", "fake", "base", JobStatus.SUCCEEDED, fine_tuned_model="ft")
        )
        store.save_job(done)
        store.save_job(JobRecord("ftjob-2", "fake", "base", "dialogues"))
        assert store.load_job("ftjob/1 x") == done
        assert {r.job_id for r in store.list_jobs()} == {"ftjob/1 x", "ftjob-2"}
        assert isinstance(done.history[-1], StatusChange)

    def test_threads_appending_at_once_lose_and_interleave_nothing(
        self, backend_object: Any
    ) -> None:
        store = backend_object
        dialogue = store.create_dialogue().id

        def write(n: int) -> None:
            for i in range(self.appends_per_thread):
                store.append(dialogue, Message("user", f"t{n}-{i}"))

        workers = [threading.Thread(target=write, args=(n,)) for n in range(self.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        texts = [m.text for m in store.load_dialogue(dialogue).messages]
        assert len(texts) == self.threads * self.appends_per_thread
        for n in range(self.threads):
            mine = [t for t in texts if t.startswith(f"t{n}-")]
            assert mine == [f"t{n}-{i}" for i in range(self.appends_per_thread)]


# --- sentiment ---------------------------------------------------------------------------------


class SentimentConformance(_Conformance):
    """The sentiment contract (see :class:`modelport.backends.SentimentAnalyzer`)."""

    capability = Capability.SENTIMENT
    #: Texts your analyzer must read as clearly positive, negative and neutral.
    positive: ClassVar[Sequence[str]] = ("Thank you, this is great!", "I love it.")
    negative: ClassVar[Sequence[str]] = ("This is terrible and I hate it.", "Awful service.")
    neutral: ClassVar[Sequence[str]] = ("The meeting is at noon.",)
    #: Anything at all: the analyzer must return a valid result for each.
    awkward: ClassVar[Sequence[str]] = (
        "", "   ", "😀😀", "!!!", "Это очень хорошо", "这是好的", "ok " * 2000, "a\x00b",
    )  # fmt: skip

    def _valid(self, text: str, result: Any) -> None:
        assert isinstance(result, Sentiment), type(result)
        assert isinstance(result.label, SentimentLabel)
        assert -1.0 <= result.score <= 1.0
        for evidence in result.evidence:
            assert isinstance(evidence.term, str)
            assert evidence.term
            assert isinstance(evidence.weight, float)

    def test_results_are_in_range_for_any_text(self, backend_object: Any) -> None:
        for text in (*self.positive, *self.negative, *self.neutral, *self.awkward):
            self._valid(text, backend_object.analyze(text))

    def test_clear_texts_get_their_label_and_sign(self, backend_object: Any) -> None:
        for text in self.positive:
            result = backend_object.analyze(text)
            assert (result.label, result.score > 0) == (SentimentLabel.POSITIVE, True), text
        for text in self.negative:
            result = backend_object.analyze(text)
            assert (result.label, result.score < 0) == (SentimentLabel.NEGATIVE, True), text
        for text in self.neutral:
            assert backend_object.analyze(text).label is SentimentLabel.NEUTRAL, text

    def test_the_same_text_gives_the_same_result(self, backend_object: Any) -> None:
        for text in (*self.positive, *self.negative):
            assert backend_object.analyze(text) == backend_object.analyze(text)

    def test_the_hubs_agree(self, hub: Hub, tmp_path: Path) -> None:
        async_hub = self.make_async_hub(tmp_path)
        text = self.positive[0]
        assert asyncio.run(async_hub.analyze(text)) == hub.analyze(text)


# --- chat --------------------------------------------------------------------------------------


class ChatConformance(_Conformance):
    """The chat contract (see :class:`modelport.backends.ChatBackend`).

    Override :meth:`arrange_reply` and :meth:`arrange_failure` to make the vendor (faked at
    its transport) answer as asked. ``model`` is sent with every request.
    """

    capability = Capability.CHAT
    model: ClassVar[str | None] = None

    def arrange_reply(self, text: str) -> None:
        """Make every following call (complete or stream) answer ``text``."""
        raise NotImplementedError

    def arrange_failure(self, kind: str) -> None:
        """Make every following call fail as the vendor would: ``kind`` is ``"auth"`` (bad
        key), ``"rate_limit"`` (429), ``"server"`` (a 5xx) or ``"bad_request"`` (a 400)."""
        raise NotImplementedError

    def _request(self, text: str = "Say hello.") -> ChatRequest:
        return ChatRequest([Message("user", text)], model=self.model)

    def test_complete_answers_with_text_and_model(self, backend_object: Any) -> None:
        self.arrange_reply("Hello there, friend.")
        reply = backend_object.complete(self._request())
        assert isinstance(reply, Reply)
        assert reply.text == "Hello there, friend."
        assert reply.model

    def test_a_stream_assembled_equals_the_complete_reply(self, backend_object: Any) -> None:
        self.arrange_reply("Hello there, friend.")
        complete = backend_object.complete(self._request())
        deltas = list(backend_object.stream(self._request()))
        assert "".join(d.text for d in deltas) == complete.text
        assert any(d.finish_reason for d in deltas)

    def test_async_matches_sync(self, hub: Hub, tmp_path: Path) -> None:
        self.arrange_reply("Hello there, friend.")
        async_hub = self.make_async_hub(tmp_path)

        async def both() -> tuple[str, str]:
            answer = await async_hub.ask("Say hello.", model=self.model)
            stream = await async_hub.stream("Say hello.", model=self.model)
            streamed = "".join([d.text async for d in stream])
            await async_hub.aclose()
            return answer.text, streamed

        answer, streamed = asyncio.run(both())
        assert answer == streamed == hub.ask("Say hello.", model=self.model).text

    def test_models_are_listed(self, backend_object: Any) -> None:
        self.arrange_reply("unused")
        models = list(backend_object.models())
        assert models, "models() returned nothing"
        assert all(isinstance(m, ModelInfo) and m.id for m in models)

    @pytest.mark.parametrize(
        ("kind", "error", "retryable"),
        [
            ("auth", AuthenticationError, False),
            ("rate_limit", RateLimitedError, True),
            ("server", TransientError, True),
            ("bad_request", InvalidRequestError, False),
        ],
    )
    def test_vendor_failures_map_into_the_core_tree(
        self,
        backend_object: Any,
        kind: str,
        error: type[BackendError],
        retryable: bool,
    ) -> None:
        self.arrange_failure(kind)
        with pytest.raises(error) as caught:
            backend_object.complete(self._request())
        assert caught.value.retryable is retryable
        assert caught.value.backend
        assert caught.value.__cause__ is not None or caught.value.status is not None

    def test_unknown_settings_are_config_errors(self, hub: Hub, tmp_path: Path) -> None:
        overrides = self.overrides(tmp_path)
        overrides["backends"][self.backend]["no_such_setting_xyz"] = 1
        hub = make_test_hub(
            self.fakes, overrides=overrides, plugins=self._plugins(), env=self.env()
        )
        with pytest.raises(ConfigError, match="no_such_setting_xyz"):
            hub.backend(self.capability)

    def test_errors_are_modelport_errors(self, backend_object: Any) -> None:
        self.arrange_failure("server")
        with pytest.raises(ModelportError):
            list(backend_object.stream(self._request()))
