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
  records, several threads appending at once, a failed append changing nothing, and (for
  stores that persist) records outliving the hub and a writer process killed mid-append.
* :class:`SentimentConformance`: scores in [-1, 1], labels, evidence from the text,
  determinism, and texts of every kind (empty, emoji, other scripts, long).
* :class:`ChatConformance`: complete, a stream assembled equals the complete reply, sync and
  async parity, models, and vendor failures mapped into the core's error tree. You arrange
  the vendor's answers (a respx route, say) in ``arrange_reply`` and ``arrange_failure``.
* :class:`VisionConformance`: text and structured descriptions, several images at once,
  images through the hub's preparation, sync and async parity, error mapping.
* :class:`TrainingConformance`: upload, start, follow, list, cancel and events, a job
  started through the hub and recorded, missing jobs, error mapping, and the optional
  attributes the core reads (``min_examples``, ``training_price``...).

Every suite also checks that an unknown setting is a :class:`~modelport.errors.ConfigError`
naming it (set ``validates_settings = False`` for a backend that takes no settings).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from ..async_hub import AsyncHub
from ..backends import HasExampleTokenLimit, HasMediaTypes, HasMinExamples, HasTrainingPrice
from ..errors import (
    AuthenticationError,
    BackendError,
    ConfigError,
    InvalidRequestError,
    ModelportError,
    NotFoundError,
    RateLimitedError,
    RecordNotFoundError,
    TransientError,
)
from ..hub import Hub
from ..types import (
    Capability,
    ChatOptions,
    ChatRequest,
    Image,
    ImagePart,
    JobEvent,
    JobRecord,
    JobSpec,
    JobStatus,
    Message,
    ModelInfo,
    Reply,
    Sentiment,
    SentimentLabel,
    StatusChange,
    TextPart,
    TrainingDataset,
    TrainingExample,
    TrainingJob,
    Usage,
    VisionRequest,
)
from . import TINY_PNG, FakeBackends, make_test_async_hub, make_test_hub

__all__ = [
    "ChatConformance",
    "SentimentConformance",
    "StoreConformance",
    "TrainingConformance",
    "VisionConformance",
]


class _Conformance:
    """What every suite shares: the backend under test and how to build a hub on it."""

    #: The backend's registered name.
    backend: ClassVar[str]
    #: The capability the suite checks.
    capability: ClassVar[Capability]
    #: Plugin objects to register, as ``(name, object)``; ``None`` loads the plugins installed
    #: under the ``modelport`` entry-point group (what a user of your package gets).
    plugins: ClassVar[Sequence[tuple[str, object]] | None] = None
    #: Whether an unknown key in the backend's section must be a ConfigError.
    validates_settings: ClassVar[bool] = True
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

    def test_unknown_settings_are_config_errors(self, hub: Hub, tmp_path: Path) -> None:
        if not self.validates_settings:
            pytest.skip("this backend takes no settings (validates_settings = False)")
        overrides = self.overrides(tmp_path)
        overrides["backends"][self.backend]["no_such_setting_xyz"] = 1
        other = make_test_hub(
            self.fakes, overrides=overrides, plugins=self._plugins(), env=self.env()
        )
        with pytest.raises(ConfigError, match="no_such_setting_xyz"):
            other.backend(self.capability)


#: The vendor failures every remote backend must map, and what each becomes.
_FAILURES = pytest.mark.parametrize(
    ("kind", "error", "retryable"),
    [
        ("auth", AuthenticationError, False),
        ("rate_limit", RateLimitedError, True),
        ("server", TransientError, True),
        ("bad_request", InvalidRequestError, False),
    ],
)


class _RemoteConformance(_Conformance):
    """What suites for backends that call a vendor share: failures mapped into the core tree."""

    def arrange_failure(self, kind: str) -> None:
        """Make every following call fail as the vendor would: ``kind`` is ``"auth"`` (bad
        key), ``"rate_limit"`` (429), ``"server"`` (a 5xx) or ``"bad_request"`` (a 400)."""
        raise NotImplementedError

    def call_that_fails(self, backend_object: Any) -> object:
        """One call to the backend, made after :meth:`arrange_failure`."""
        raise NotImplementedError

    @_FAILURES
    def test_vendor_failures_map_into_the_core_tree(
        self,
        backend_object: Any,
        kind: str,
        error: type[BackendError],
        retryable: bool,
    ) -> None:
        self.arrange_failure(kind)
        with pytest.raises(error) as caught:
            self.call_that_fails(backend_object)
        assert caught.value.retryable is retryable
        assert caught.value.backend, "the error does not name its backend"
        assert caught.value.__cause__ is not None or caught.value.status is not None, (
            "chain the vendor's error with `raise ... from exc`, or give the HTTP status"
        )


# --- storage -----------------------------------------------------------------------------------


def _in_threads(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(0)`` ... ``work(count - 1)`` in threads at once; return when all are done."""
    workers = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _message(role: str, text: str, minute: int) -> Message:
    at = datetime(2026, 1, 1, 12, minute, tzinfo=UTC)
    return Message(role, text, created_at=at)  # type: ignore[arg-type]


class StoreConformance(_Conformance):
    """The storage contract (see :class:`modelport.backends.Store`)."""

    capability = Capability.STORAGE
    #: Threads appending to one dialogue at once, and messages each.
    threads: ClassVar[int] = 4
    appends_per_thread: ClassVar[int] = 25
    #: Whether records outlive the hub (and the process): a store that keeps them in memory
    #: sets this to False and skips the reopen and crash checks.
    persistent: ClassVar[bool] = True

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

    def test_a_turn_is_appended_whole_and_the_tail_can_be_read(self, backend_object: Any) -> None:
        store = backend_object
        info = store.create_dialogue()
        for n in range(4):
            question = _message("user", f"q{n}", 2 * n)
            answer = attrs.evolve(
                _message("assistant", f"a{n}", 2 * n + 1), model="m", usage=Usage(5, n)
            )
            store.append(info.id, question, answer)
        loaded = store.load_dialogue(info.id)
        assert [m.text for m in loaded.messages] == [
            t for n in range(4) for t in (f"q{n}", f"a{n}")
        ], "a turn's messages must be stored together, in order"
        assert loaded.messages[-1].usage == Usage(5, 3), "the reply's usage was not kept"
        for last in (0, 1, 3, 8, 20):
            tail = store.load_dialogue(info.id, last=last)
            assert tail.messages == loaded.messages[max(0, len(loaded.messages) - last) :], (
                f"load_dialogue(last={last}) must give the last {last} messages"
            )
        (listed,) = store.list_dialogues().items
        assert listed.message_count == 8, f"message_count is {listed.message_count}, not 8"
        assert listed.updated_at == loaded.messages[-1].created_at

    def test_concurrent_turns_into_one_dialogue_stay_paired(self, backend_object: Any) -> None:
        store = backend_object
        dialogue = store.create_dialogue().id

        def write(n: int) -> None:
            for i in range(self.appends_per_thread):
                store.append(
                    dialogue, Message("user", f"q{n}-{i}"), Message("assistant", f"a{n}-{i}")
                )

        _in_threads(self.threads, write)
        texts = [m.text for m in store.load_dialogue(dialogue).messages]
        assert len(texts) == 2 * self.threads * self.appends_per_thread
        unpaired = [q for q, a in zip(texts[::2], texts[1::2], strict=True) if a != "a" + q[1:]]
        assert not unpaired, f"{len(unpaired)} questions not followed by their own reply"

    def test_threads_appending_at_once_lose_and_interleave_nothing(
        self, backend_object: Any
    ) -> None:
        store = backend_object
        dialogue = store.create_dialogue().id

        def write(n: int) -> None:
            for i in range(self.appends_per_thread):
                store.append(dialogue, Message("user", f"t{n}-{i}"))

        _in_threads(self.threads, write)
        texts = [m.text for m in store.load_dialogue(dialogue).messages]
        assert len(texts) == self.threads * self.appends_per_thread
        for n in range(self.threads):
            mine = [t for t in texts if t.startswith(f"t{n}-")]
            assert mine == [f"t{n}-{i}" for i in range(self.appends_per_thread)]

    def test_a_failed_append_changes_nothing(self, backend_object: Any) -> None:
        store = backend_object
        info = store.create_dialogue()
        store.append(info.id, Message("user", "kept"))
        before = store.list_dialogues()
        with pytest.raises(RecordNotFoundError):
            store.append("no-such-dialogue", Message("user", "lost"))
        assert store.list_dialogues() == before
        assert [m.text for m in store.load_dialogue(info.id).messages] == ["kept"]

    def test_records_outlive_the_hub(self, hub: Hub, tmp_path: Path) -> None:
        if not self.persistent:
            pytest.skip("the store keeps nothing past its hub (persistent = False)")
        store = hub.backend(self.capability)
        info = store.create_dialogue(assistant="a")
        store.append(info.id, _message("user", "still here", 1))
        store.save_job(JobRecord("ftjob-1", "fake", "base", "data.csv"))
        hub.close()
        again = self.make_hub(tmp_path)
        try:
            reopened = again.backend(self.capability)
            assert [m.text for m in reopened.load_dialogue(info.id).messages] == ["still here"]
            assert reopened.load_job("ftjob-1").source == "data.csv"
        finally:
            again.close()

    def test_a_process_killed_mid_append_loses_only_that_append(
        self, backend_object: Any, tmp_path: Path
    ) -> None:
        """A writer process is killed (SIGKILL) while appending turns, three times over: every
        turn it acknowledged is there, whole, with at most the one in flight beyond, and no
        question is left without its reply."""
        if not self.persistent:
            pytest.skip("the store keeps nothing past its process (persistent = False)")
        if not hasattr(signal, "SIGKILL"):
            pytest.skip("needs SIGKILL")
        plugins = self._plugin_modules()
        store = backend_object
        dialogue = store.create_dialogue().id
        acknowledged = 0
        for round_ in range(3):
            job = {
                "overrides": self.overrides(tmp_path),
                "plugins": plugins,
                "env": dict(self.env()),
                "dialogue": dialogue,
                "prefix": f"k{round_}",
            }
            writer = subprocess.Popen(
                [sys.executable, "-c", _KILLED_WRITER, json.dumps(job)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert writer.stdout is not None
            lines = 0
            deadline = time.monotonic() + 0.05 * (round_ + 1)
            while time.monotonic() < deadline or lines < 3:
                line = writer.stdout.readline()
                if not line:
                    writer.wait()
                    pytest.fail(f"the writer process ended early (exit {writer.returncode})")
                lines += 1
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            lines += len(writer.stdout.readlines())  # acknowledged, still in the pipe
            writer.stdout.close()
            acknowledged += lines
            texts = [m.text for m in store.load_dialogue(dialogue).messages]
            assert len(texts) % 2 == 0, "a half turn was stored: a question without its reply"
            turns = list(zip(texts[::2], texts[1::2], strict=True))
            assert acknowledged <= len(turns) <= acknowledged + 1
            for question, answer in turns:
                assert question.startswith("k"), f"damaged record {question[:40]!r}"
                assert question.endswith("?"), f"damaged record {question[-40:]!r}"
                assert answer == question[:-1] + ".", f"half turn: {question[:20]}/{answer[:20]}"
            acknowledged = len(turns)

    def _plugin_modules(self) -> list[tuple[str, str]] | None:
        """The plugins as importable module names, for the writer process."""
        if self.plugins is None:
            return None
        names = []
        for name, plugin in self.plugins:
            if not isinstance(plugin, types.ModuleType):
                pytest.skip(
                    "the crash check runs a second process: register your plugin as a module "
                    "or through its entry point (plugins = None)"
                )
            names.append((name, plugin.__name__))
        return names


_KILLED_WRITER = """
import importlib, json, sys
from importlib.metadata import entry_points
from modelport.testing import make_test_hub
from modelport.types import Message
job = json.loads(sys.argv[1])
if job["plugins"] is None:
    plugins = [(ep.name, ep.load()) for ep in entry_points(group="modelport")]
else:
    plugins = [(name, importlib.import_module(module)) for name, module in job["plugins"]]
hub = make_test_hub(overrides=job["overrides"], plugins=plugins, env=job["env"])
store = hub.backend("storage")
n = 0
while True:
    text = f"{job['prefix']}-{n}-" + "x" * 2000
    store.append(job["dialogue"], Message("user", text + "?"), Message("assistant", text + "."))
    print(n, flush=True)
    n += 1
"""


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


class ChatConformance(_RemoteConformance):
    """The chat contract (see :class:`modelport.backends.ChatBackend`).

    Override :meth:`arrange_reply` and :meth:`arrange_failure` to make the vendor (faked at
    its transport) answer as asked. ``model`` is sent with every request.
    """

    capability = Capability.CHAT
    model: ClassVar[str | None] = None

    def arrange_reply(self, text: str) -> None:
        """Make every following call (complete or stream) answer ``text``."""
        raise NotImplementedError

    def call_that_fails(self, backend_object: Any) -> object:
        return backend_object.complete(self._request())

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

    def test_errors_are_modelport_errors(self, backend_object: Any) -> None:
        self.arrange_failure("server")
        with pytest.raises(ModelportError):
            list(backend_object.stream(self._request()))


# --- vision ------------------------------------------------------------------------------------


class VisionConformance(_RemoteConformance):
    """The vision contract (see :class:`modelport.backends.VisionBackend`).

    Override :meth:`arrange_reply` and :meth:`arrange_failure`. ``model`` is sent with every
    request.
    """

    capability = Capability.VISION
    model: ClassVar[str | None] = None

    def arrange_reply(self, text: str) -> None:
        """Make every following description answer ``text`` (a JSON text for a structured
        request: the suite passes ``json.dumps`` of what it expects in ``reply.data``)."""
        raise NotImplementedError

    def call_that_fails(self, backend_object: Any) -> object:
        return backend_object.describe(self._request())

    def _request(self, *images: Image, schema: Mapping[str, Any] | None = None) -> VisionRequest:
        image = Image.from_bytes(TINY_PNG, source="red.png")
        return VisionRequest(
            images or (image,),
            prompt="What is in this picture?",
            model=self.model,
            options=ChatOptions(json_schema=schema),
        )

    def test_describe_answers_with_text_and_model(self, backend_object: Any) -> None:
        self.arrange_reply("A small red square.")
        reply = backend_object.describe(self._request())
        assert isinstance(reply, Reply)
        assert (reply.text, bool(reply.model)) == ("A small red square.", True)

    def test_several_images_go_in_one_request(self, backend_object: Any) -> None:
        self.arrange_reply("Two red squares.")
        images = [Image.from_bytes(TINY_PNG, source=f"{n}.png") for n in range(2)]
        assert backend_object.describe(self._request(*images)).text == "Two red squares."

    def test_a_schema_gives_parsed_data(self, backend_object: Any) -> None:
        schema = {
            "type": "object",
            "properties": {"colour": {"type": "string"}, "count": {"type": "integer"}},
            "required": ["colour", "count"],
        }
        self.arrange_reply(json.dumps({"colour": "red", "count": 1}))
        reply = backend_object.describe(self._request(schema=schema))
        assert reply.data == {"colour": "red", "count": 1}

    def test_declared_media_types_are_media_types(self, backend_object: Any) -> None:
        if not isinstance(backend_object, HasMediaTypes):
            pytest.skip("the backend declares no media_types (the core's defaults apply)")
        media_types = backend_object.media_types
        assert media_types, "media_types is empty: no image could ever be sent"
        assert all(isinstance(t, str) and t.startswith("image/") for t in media_types)

    def test_the_hubs_prepare_images_and_agree(self, hub: Hub, tmp_path: Path) -> None:
        self.arrange_reply("A small red square.")
        (tmp_path / "red.png").write_bytes(TINY_PNG)
        sync = hub.describe_image(tmp_path / "red.png", TINY_PNG, model=self.model)
        async_hub = self.make_async_hub(tmp_path)

        async def describe() -> Reply:
            try:
                return await async_hub.describe_image(
                    tmp_path / "red.png", TINY_PNG, model=self.model
                )
            finally:
                await async_hub.aclose()

        assert asyncio.run(describe()).text == sync.text == "A small red square."


# --- training ----------------------------------------------------------------------------------


class TrainingConformance(_RemoteConformance):
    """The training contract (see :class:`modelport.backends.Trainer`).

    Override :meth:`arrange_service` to fake the vendor's fine-tuning service: it keeps the
    files uploaded and the jobs started, answers for them by id, cancels them, lists them
    newest first, and answers "not found" for any other id. Override
    :meth:`arrange_failure` as for chat. ``base_model`` is the model jobs start from.
    """

    capability = Capability.TRAINING
    base_model: ClassVar[str] = "base-model"

    def arrange_service(self) -> None:
        """Make the vendor serve uploads and jobs statefully (called before every test)."""
        raise NotImplementedError

    def call_that_fails(self, backend_object: Any) -> object:
        return backend_object.get_job("ftjob-1")

    @pytest.fixture(autouse=True)
    def _service(self, hub: Hub) -> None:
        self.arrange_service()

    def _dataset(self, backend_object: Any, extra: int = 0) -> TrainingDataset:
        minimum = backend_object.min_examples if isinstance(backend_object, HasMinExamples) else 1
        count = max(int(minimum), 1) + extra
        return TrainingDataset(
            [
                TrainingExample(
                    [
                        Message("system", "Answer in one word."),
                        Message("user", f"Question {n}?"),
                        Message("assistant", f"Answer{n}."),
                    ]
                )
                for n in range(count)
            ],
            source="conformance",
        )

    def _started(self, backend_object: Any) -> TrainingJob:
        file_id = backend_object.upload(self._dataset(backend_object))
        return backend_object.start(JobSpec(self.base_model, file_id))  # type: ignore[no-any-return]

    def test_upload_returns_a_file_id(self, backend_object: Any) -> None:
        file_id = backend_object.upload(self._dataset(backend_object))
        assert isinstance(file_id, str)
        assert file_id

    def test_a_started_job_is_found_by_its_id(self, backend_object: Any) -> None:
        job = self._started(backend_object)
        assert isinstance(job, TrainingJob)
        assert job.id
        assert job.base_model
        assert isinstance(job.status, JobStatus)
        assert not job.status.is_terminal, "a job that was just started cannot be over"
        again = backend_object.get_job(job.id)
        assert (again.id, isinstance(again.status, JobStatus)) == (job.id, True)

    def test_jobs_are_listed_newest_first_within_the_limit(self, backend_object: Any) -> None:
        first = self._started(backend_object)
        second = self._started(backend_object)
        listed = list(backend_object.list_jobs(limit=20))
        ids = [j.id for j in listed]
        assert all(isinstance(j, TrainingJob) for j in listed)
        assert {first.id, second.id} <= set(ids)
        assert ids.index(second.id) < ids.index(first.id), "list_jobs must be newest first"
        assert len(backend_object.list_jobs(limit=1)) <= 1

    def test_a_cancelled_job_says_so(self, backend_object: Any) -> None:
        job = self._started(backend_object)
        cancelled = backend_object.cancel_job(job.id)
        assert (cancelled.id, cancelled.status) == (job.id, JobStatus.CANCELLED)
        assert backend_object.get_job(job.id).status is JobStatus.CANCELLED

    def test_events_are_oldest_first(self, backend_object: Any) -> None:
        job = self._started(backend_object)
        events = list(backend_object.job_events(job.id))
        assert all(isinstance(e, JobEvent) and e.created_at.tzinfo for e in events)
        times = [e.created_at for e in events]
        assert times == sorted(times), "job_events must be oldest first"

    def test_a_missing_job_is_not_found(self, backend_object: Any) -> None:
        for method in ("get_job", "cancel_job", "job_events"):
            with pytest.raises(NotFoundError):
                getattr(backend_object, method)("ftjob-no-such-job")

    def test_the_hubs_train_record_and_agree(self, hub: Hub, tmp_path: Path) -> None:
        trainer = hub.backend(self.capability)
        job = hub.train(self._dataset(trainer), base_model=self.base_model, description="c")
        records = {r.job_id: r for r in hub.jobs()}
        assert (records[job.id].backend, records[job.id].description) == (self.backend, "c")
        async_hub = self.make_async_hub(tmp_path)

        async def follow() -> TrainingJob:
            try:
                return await async_hub.job(job.id)
            finally:
                await async_hub.aclose()

        assert asyncio.run(follow()).id == hub.job(job.id).id == job.id

    def test_optional_attributes_have_the_right_shape(self, backend_object: Any) -> None:
        """The optional protocols the core reads (``HasMinExamples``, ...), when present."""
        if isinstance(backend_object, HasMinExamples):
            minimum = backend_object.min_examples
            assert isinstance(minimum, int)
            assert minimum >= 1
        if isinstance(backend_object, HasExampleTokenLimit):
            limit = backend_object.example_token_limit
            assert isinstance(limit, int)
            assert limit > 0
        if isinstance(backend_object, HasTrainingPrice):
            value = backend_object.training_price(self.base_model)
            assert value is None or (isinstance(value, float) and value >= 0)
