"""Conformance suites: subclass one, name your backend, and pytest checks the contract.

::

    from modelport.testing.conformance import StoreConformance

    class TestMyStore(StoreConformance):
        backend = "mystore"                     # the name your plugin registers
        plugins = [("mystore", my_plugin)]      # or None to load installed entry points

        def settings(self, tmp_path):           # your [backends.mystore] section
            return {"root": str(tmp_path)}

``plugins`` lists the plugin objects to register as ``(name, object)`` pairs; ``()`` registers
none (the fakes alone), and ``None`` (the default) loads the plugins installed under the
``modelport`` entry-point group, as your users get them.

Every suite builds a hub on :func:`modelport.testing.make_test_hub` (the fakes serve the
other capabilities) with your backend chosen for its capability, and runs with the network
blocked (:func:`modelport.testing.block_network`: loopback and Unix sockets still work). This
module imports pytest; import it only from tests. The rules each suite checks are stated, test
by test, in the backend contracts (``docs/contracts/``).

* :class:`StoreConformance`: round trips, time zones, creation and last-activity times,
  ordering, paging and totals, filters, message counts, missing ids, job records, several
  threads appending at once, a failed append changing nothing, and (for stores that
  persist) records outliving the hub and a writer process killed mid-append.
* :class:`SentimentConformance`: scores in [-1, 1], labels agreeing with scores, negation,
  evidence from the text, determinism, texts of every kind (empty, emoji, other scripts,
  long), and declared settings taking effect.
* :class:`ChatConformance`: complete, a stream assembled equals the complete reply, system
  messages sent, usage (on streams too, prompt and completion apart), sync and async parity,
  models, vendor failures mapped into the core's error tree on ``complete`` and on
  ``stream``, ``retry-after`` kept, and streams cut short or failing midway raised. You
  arrange the vendor's answers (a respx route, say) in the ``arrange_*`` hooks.
* :class:`VisionConformance`: text and structured descriptions, several images at once,
  images through the hub's preparation, sync and async parity, error mapping.
* :class:`TrainingConformance`: upload, start, follow, list, cancel and events, a job
  started through the hub and recorded, missing jobs, error mapping, and the optional
  attributes the core reads (``min_examples``, ``training_price``...).

Every suite also checks that an unknown setting is a :class:`~modelport.errors.ConfigError`
naming it (set ``validates_settings = False`` for a backend that takes no settings).

A hook a suite offers but your test class does not implement skips the tests that need it,
saying which hook to write: a suite never passes a check it could not make.
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
from datetime import UTC, datetime, timedelta, timezone
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from ..async_hub import AsyncHub
from ..backends import (
    HasExampleTokenLimit,
    HasJobEvents,
    HasMediaTypes,
    HasMinExamples,
    HasTrainingPrice,
)
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
from ..sentiment import agrees
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
    StreamDelta,
    TextPart,
    TrainingDataset,
    TrainingExample,
    TrainingJob,
    Usage,
    VisionRequest,
)
from . import TINY_PNG, FakeBackends, block_network, make_test_async_hub, make_test_hub

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
    #: Plugin objects to register, as ``(name, object)`` pairs; ``()`` registers none (the
    #: fakes alone serve the hub); ``None`` loads the plugins installed under the
    #: ``modelport`` entry-point group (what a user of your package gets).
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

    @pytest.fixture(autouse=True)
    def _no_network(self) -> Iterator[None]:
        """Every check runs with the network blocked: fake the vendor at its transport."""
        with block_network():
            yield

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
        _check_failure(lambda: self.call_that_fails(backend_object), error, retryable)


def _check_failure(call: Callable[[], object], error: type[BackendError], retryable: bool) -> None:
    """``call()`` raises ``error``, ``retryable`` or not, naming its backend and its cause."""
    raised = _raised(call)
    if raised is None:
        pytest.fail(f"expected {error.__name__} (retryable={retryable}); the call succeeded")
    if not isinstance(raised, error):
        flag = f" (retryable={raised.retryable})" if isinstance(raised, BackendError) else ""
        pytest.fail(
            f"expected {error.__name__} (retryable={retryable}), got "
            f"{type(raised).__name__}{flag}: {raised}"
        )
    assert raised.retryable is retryable, (
        f"{type(raised).__name__} has retryable={raised.retryable}; expected {retryable}"
    )
    assert raised.backend, "the error does not name its backend"
    assert raised.__cause__ is not None or raised.status is not None, (
        "chain the vendor's error with `raise ... from exc`, or give the HTTP status"
    )


def _raised(call: Callable[[], object]) -> Exception | None:
    """What ``call()`` raises (``None`` when it returns)."""
    try:
        call()
    except Exception as exc:
        return exc
    return None


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


def _utc(value: datetime) -> datetime:
    """``value`` as an aware time (a naive one read as UTC: the time-zone test reports it)."""
    return value if value.utcoffset() is not None else value.replace(tzinfo=UTC)


def _kwargs(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


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
            raised = _raised(lambda: getattr(store, method)(*args))  # noqa: B023 - called at once
            if not isinstance(raised, RecordNotFoundError):
                what = "returned" if raised is None else f"raised {type(raised).__name__}: {raised}"
                pytest.fail(
                    f"{method}({args[0]!r}) {what}; a missing id must raise RecordNotFoundError"
                )

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
        listed = [i.id for i in store.list_dialogues().items]
        assert listed == ids[::-1], f"expected newest first {ids[::-1]}, got {listed}"
        page = [i.id for i in store.list_dialogues(limit=2).items]
        assert page == [ids[4], ids[3]], f"limit=2: expected {[ids[4], ids[3]]}, got {page}"
        last = [i.id for i in store.list_dialogues(limit=2, offset=4).items]
        assert last == [ids[0]], f"offset=4: expected {[ids[0]]}, got {last}"
        b = [i.id for i in store.list_dialogues(assistant="b").items]
        assert b == [ids[3], ids[1]], f"assistant='b': expected {[ids[3], ids[1]]}, got {b}"
        since = datetime(2026, 1, 1, 12, 2, tzinfo=UTC)
        found = [i.id for i in store.list_dialogues(since=since).items]
        assert found == ids[:1:-1], f"since= (inclusive): expected {ids[:1:-1]}, got {found}"
        until = since + timedelta(seconds=1)
        found = [i.id for i in store.list_dialogues(until=until).items]
        assert found == ids[2::-1], f"until= (exclusive): expected {ids[2::-1]}, got {found}"

    def test_newest_first_means_last_activity(self, backend_object: Any) -> None:
        """A dialogue created first but written to last is listed first."""
        store = backend_object
        older = store.create_dialogue().id
        newer = store.create_dialogue().id
        store.append(newer, _message("user", "written first", 1))
        store.append(older, _message("user", "written last", 2))
        listed = [i.id for i in store.list_dialogues().items]
        assert listed == [older, newer], (
            f"expected [{older!r} (last message at 12:02), {newer!r} (at 12:01)], got {listed}: "
            "newest first means by last activity (updated_at), not by creation"
        )

    def test_pages_know_their_total(self, backend_object: Any) -> None:
        """``Page.total`` counts every dialogue the filters match, on every page."""
        store = backend_object
        for n in range(5):
            info = store.create_dialogue(assistant="a" if n % 2 == 0 else "b")
            store.append(info.id, _message("user", f"m{n}", n))
        cases: list[tuple[dict[str, Any], int, int | None]] = [
            ({"limit": 2}, 5, 2),
            ({"limit": 2, "offset": 2}, 5, 4),
            ({"limit": 2, "offset": 4}, 5, None),
            ({"assistant": "b", "limit": 1}, 2, 1),
            ({"since": datetime(2026, 1, 1, 12, 3, tzinfo=UTC)}, 2, None),
            ({"offset": 10}, 5, None),
        ]
        for kwargs, total, next_offset in cases:
            page = store.list_dialogues(**kwargs)
            got = (page.total, page.next_offset)
            assert got == (total, next_offset), (
                f"list_dialogues({_kwargs(kwargs)}): expected (total, next_offset) == "
                f"{(total, next_offset)}, got {got}"
            )

    def test_message_count_follows_every_append(self, backend_object: Any) -> None:
        """``DialogueInfo.message_count`` is the number of messages, after every append."""
        store = backend_object
        info = store.create_dialogue()
        other = store.create_dialogue().id

        def count(dialogue_id: str) -> int:
            counts = {i.id: i.message_count for i in store.list_dialogues().items}
            return int(counts[dialogue_id])

        counts = [info.message_count, count(info.id)]
        store.append(info.id, _message("user", "one", 1))
        counts.append(count(info.id))
        store.append(info.id, _message("user", "two", 2), _message("assistant", "three", 3))
        counts.append(count(info.id))
        store.append(other, _message("user", "elsewhere", 4))
        counts.append(count(info.id))
        assert counts == [0, 0, 1, 3, 3], (
            f"message_count after create (returned, listed), 1, 2 and 0 more messages: "
            f"expected [0, 0, 1, 3, 3], got {counts}"
        )
        assert count(other) == 1, f"message_count of a dialogue with 1 message: {count(other)}"

    def test_created_at_is_when_the_dialogue_was_created(self, backend_object: Any) -> None:
        """``created_at`` is when ``create_dialogue`` ran, the same wherever it is read, and
        appends do not move it; a dialogue without messages was last active then."""
        store = backend_object
        before = datetime.now(UTC) - timedelta(seconds=1)
        info = store.create_dialogue(title="t")
        after = datetime.now(UTC) + timedelta(seconds=1)
        created = _utc(info.created_at)
        assert before <= created <= after, (
            f"create_dialogue ran between {before} and {after}; created_at is {created}"
        )
        (fresh,) = [i for i in store.list_dialogues().items if i.id == info.id]
        assert _utc(fresh.updated_at) == created, (
            f"a dialogue without messages was last active when created ({created}); "
            f"updated_at is {fresh.updated_at}"
        )
        store.append(info.id, _message("user", "q", 5), _message("assistant", "a", 6))
        loaded = _utc(store.load_dialogue(info.id).created_at)
        (listed,) = [i for i in store.list_dialogues().items if i.id == info.id]
        where = {"load_dialogue": loaded, "list_dialogues": _utc(listed.created_at)}
        wrong = {k: str(v) for k, v in where.items() if v != created}
        assert not wrong, f"create_dialogue said created_at {created}; after appends {wrong}"

    def test_timestamps_keep_their_time_zone(self, backend_object: Any) -> None:
        """Every timestamp comes back aware, and a time given in another zone comes back as
        the same instant."""
        store = backend_object
        india = timezone(timedelta(hours=5, minutes=30))
        at = datetime(2026, 1, 1, 17, 30, tzinfo=india)  # 12:00 UTC
        info = store.create_dialogue()
        store.append(info.id, Message("user", "namaste", created_at=at))
        loaded = store.load_dialogue(info.id)
        (listed,) = [i for i in store.list_dialogues().items if i.id == info.id]
        stamps = {
            "create_dialogue().created_at": info.created_at,
            "load_dialogue().created_at": loaded.created_at,
            "the message's created_at": loaded.messages[0].created_at,
            "list_dialogues() created_at": listed.created_at,
            "list_dialogues() updated_at": listed.updated_at,
        }
        naive = [
            name for name, value in stamps.items() if value is None or value.utcoffset() is None
        ]
        assert not naive, f"naive timestamps (no time zone): {naive}"
        got = loaded.messages[0].created_at
        assert got == at, (
            f"a message created at {at.isoformat()} (12:00 UTC) came back as "
            f"{got.isoformat() if got else got}: the zone was lost on the way"
        )
        assert listed.updated_at == at, f"updated_at is {listed.updated_at}, not {at}"
        since = datetime(2026, 1, 1, 17, 29, tzinfo=india)
        found = [i.id for i in store.list_dialogues(since=since).items]
        assert info.id in found, f"since={since.isoformat()} left out a dialogue active at {at}"

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
        assert listed.updated_at == loaded.messages[-1].created_at, (
            f"updated_at is {listed.updated_at}, not the last message's created_at "
            f"{loaded.messages[-1].created_at}"
        )

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
    #: Positive words negated: none may come out positive. Set both negated lists to ``()``
    #: for an analyzer that does not read negation (and say so in its docs).
    negated_positive: ClassVar[Sequence[str]] = ("This is not good.", "I do not love it.")
    #: Negative words negated: none may come out negative.
    negated_negative: ClassVar[Sequence[str]] = ("This is not bad.",)
    #: Settings that must change what the analyzer says, as ``{key: (value, other value,
    #: text)}``: analyzing ``text`` with ``[backends.<name>] key = value`` and with ``key =
    #: other value`` must give different results (a setting read but not used passes every
    #: other check). Empty, the check is skipped.
    settings_that_change_results: ClassVar[Mapping[str, tuple[Any, Any, str]]] = {}

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

    def test_label_and_score_agree(self, backend_object: Any) -> None:
        texts = (
            *self.positive, *self.negative, *self.neutral, *self.negated_positive,
            *self.negated_negative, *self.awkward,
        )  # fmt: skip
        for text in texts:
            result = backend_object.analyze(text)
            assert agrees(result.label, result.score), (
                f"{text[:40]!r}: label {result.label.value} with score {result.score} "
                "(positive needs a score above 0, negative below 0, neutral within [-0.5, 0.5])"
            )

    def test_negation_turns_the_mood(self, backend_object: Any) -> None:
        if not (self.negated_positive or self.negated_negative):
            pytest.skip("no negated texts (negated_positive = negated_negative = ())")
        for text in self.negated_positive:
            result = backend_object.analyze(text)
            assert result.label is not SentimentLabel.POSITIVE, (
                f"{text!r} came out {result.label.value} ({result.score}): the negation was ignored"
            )
        for text in self.negated_negative:
            result = backend_object.analyze(text)
            assert result.label is not SentimentLabel.NEGATIVE, (
                f"{text!r} came out {result.label.value} ({result.score}): the negation was ignored"
            )

    def test_declared_settings_change_the_result(self, hub: Hub, tmp_path: Path) -> None:
        if not self.settings_that_change_results:
            pytest.skip(
                "no settings declared: set settings_that_change_results = {key: (value, "
                "other value, text)} to check that your settings take effect"
            )
        for key, (one, other, text) in self.settings_that_change_results.items():
            results = []
            for value in (one, other):
                overrides = self.overrides(tmp_path)
                overrides["backends"][self.backend][key] = value
                with make_test_hub(
                    self.fakes, overrides=overrides, plugins=self._plugins(), env=self.env()
                ) as other_hub:
                    results.append(other_hub.analyze(text))
            assert results[0] != results[1], (
                f"{key} = {one!r} and {key} = {other!r} give the same result for {text!r} "
                f"({results[0].label.value}, {results[0].score}): the setting is ignored"
            )


# --- chat --------------------------------------------------------------------------------------


class ChatConformance(_RemoteConformance):
    """The chat contract (see :class:`modelport.backends.ChatBackend`).

    Override :meth:`arrange_reply` and :meth:`arrange_failure` to make the vendor (faked at
    its transport) answer as asked; the other hooks (:meth:`arrange_stream`,
    :meth:`arrange_complete`, :meth:`arrange_rate_limit`, :meth:`last_request_messages`)
    each unlock more checks, and a test whose hook is missing is skipped, saying so. Fake
    everything else the backend calls on the way too, for the whole class (an autouse
    fixture is the place): its model list above all, which :meth:`test_models_are_listed`
    reads and which some backends read before answering. ``model`` is sent with every
    request.
    """

    capability = Capability.CHAT
    model: ClassVar[str | None] = None

    def arrange_reply(self, text: str) -> None:
        """Make every following call (complete or stream) answer ``text``."""
        raise NotImplementedError

    def arrange_stream(
        self,
        pieces: Sequence[str],
        *,
        usage: Usage | None = None,
        cut: bool = False,
        error_mid_stream: bool = False,
    ) -> None:
        """Make every following stream send ``pieces`` of text, one event each, then end as
        the vendor ends a stream (its finish reason, its end marker).

        :param usage: the token counts the vendor reports with the stream (wherever its
            wire format puts them), or none.
        :param cut: the body ends right after the pieces, cleanly but before the vendor's
            end: no finish reason, no end marker (the connection dropped, say).
        :param error_mid_stream: after the pieces, the vendor sends an error event (a
            server error, in its own format) instead of finishing.
        """
        pytest.skip(
            "arrange_stream(pieces, *, usage, cut, error_mid_stream) is not implemented: "
            "implement it to check streams (usage, cut short, errors midway)"
        )

    def arrange_complete(self, text: str, *, usage: Usage) -> None:
        """Make every following ``complete`` answer ``text``, the vendor reporting ``usage``
        (prompt and completion tokens, in its own fields)."""
        pytest.skip(
            "arrange_complete(text, *, usage) is not implemented: implement it to check "
            "the usage of complete replies"
        )

    def arrange_rate_limit(self, retry_after: float) -> None:
        """Make every following call (complete or stream) fail as the vendor's rate limit
        does (a 429, say), asking to wait ``retry_after`` seconds the way the vendor asks
        (a ``retry-after`` header, a field of the error body...)."""
        pytest.skip(
            "arrange_rate_limit(retry_after) is not implemented: implement it to check that "
            "retry-after reaches the core"
        )

    def last_request_messages(self) -> Sequence[tuple[str, str]]:
        """The messages of the last request the vendor received, decoded from the wire as
        ``(role, text)`` pairs in order: the roles as modelport names them (``"system"``,
        ``"user"``, ``"assistant"``), the system prompt first wherever the vendor's format
        puts it (a top-level field, say)."""
        pytest.skip(
            "last_request_messages() is not implemented: implement it to check that every "
            "message (system messages above all) reaches the vendor"
        )

    def call_that_fails(self, backend_object: Any) -> object:
        return backend_object.complete(self._request())

    def _request(self, text: str = "Say hello.") -> ChatRequest:
        return ChatRequest([Message("user", text)], model=self.model)

    def test_complete_answers_with_text_and_model(self, backend_object: Any) -> None:
        self.arrange_reply("Hello there, friend.")
        reply = backend_object.complete(self._request())
        assert isinstance(reply, Reply), f"complete() returned {type(reply).__name__}, not Reply"
        assert reply.text == "Hello there, friend."
        assert reply.model, "the reply does not name its model"

    def test_a_stream_assembled_equals_the_complete_reply(self, backend_object: Any) -> None:
        self.arrange_reply("Hello there, friend.")
        complete = backend_object.complete(self._request())
        deltas = list(backend_object.stream(self._request()))
        assert "".join(d.text for d in deltas) == complete.text
        assert any(d.finish_reason for d in deltas), "no delta carries a finish reason"

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
        assert all(isinstance(m, ModelInfo) and m.id for m in models), models

    def test_errors_are_modelport_errors(self, backend_object: Any) -> None:
        self.arrange_failure("server")
        with pytest.raises(ModelportError):
            list(backend_object.stream(self._request()))

    @_FAILURES
    def test_vendor_failures_on_a_stream_map_into_the_core_tree(
        self,
        backend_object: Any,
        kind: str,
        error: type[BackendError],
        retryable: bool,
    ) -> None:
        """What ``complete`` maps, ``stream`` maps alike: a 401 on a stream is an
        AuthenticationError (not retried), not a dropped connection (retried)."""
        self.arrange_failure(kind)
        _check_failure(lambda: list(backend_object.stream(self._request())), error, retryable)

    @pytest.mark.parametrize("call", ["complete", "stream"])
    def test_a_rate_limit_says_how_long_to_wait(self, backend_object: Any, call: str) -> None:
        self.arrange_rate_limit(7)
        if call == "complete":
            raised = _raised(lambda: backend_object.complete(self._request()))
        else:
            raised = _raised(lambda: list(backend_object.stream(self._request())))
        if not isinstance(raised, RateLimitedError):
            pytest.fail(f"{call}() after a 429: expected RateLimitedError, got {raised!r}")
        waited = raised.retry_after
        assert waited is not None, (
            f"the vendor asked to wait 7 s; the RateLimitedError from {call}() has no retry_after"
        )
        assert abs(waited - 7) < 1, (
            f"the vendor asked to wait 7 s; the RateLimitedError from {call}() has "
            f"retry_after={waited!r}"
        )

    def test_a_stream_cut_short_is_an_error(self, backend_object: Any) -> None:
        self.arrange_stream(["Hello ", "there"], cut=True)
        deltas: list[StreamDelta] = []
        raised = _raised(lambda: deltas.extend(backend_object.stream(self._request())))
        if not isinstance(raised, TransientError):
            what = "finished" if raised is None else f"raised {raised!r}"
            pytest.fail(
                f"the stream ended before the vendor's end marker, yet stream() {what} "
                f"({''.join(d.text for d in deltas)!r}, finish reasons "
                f"{[d.finish_reason for d in deltas if d.finish_reason]}): a cut stream must "
                "raise BackendConnectionError (a TransientError)"
            )

    def test_an_error_in_the_middle_of_a_stream_is_raised(self, backend_object: Any) -> None:
        self.arrange_stream(["Hello ", "there"], error_mid_stream=True)
        deltas: list[StreamDelta] = []
        raised = _raised(lambda: deltas.extend(backend_object.stream(self._request())))
        if not isinstance(raised, BackendError):
            pytest.fail(
                f"the vendor sent an error event after 'Hello there', yet stream() "
                f"{'finished' if raised is None else f'raised {raised!r}'} "
                f"({''.join(d.text for d in deltas)!r}): an error midway must raise a "
                "BackendError"
            )
        assert raised.backend, "the error does not name its backend"

    def test_system_messages_reach_the_vendor(self, backend_object: Any) -> None:
        sent = [
            ("system", "Answer in French."),
            ("user", "Say hello."),
            ("assistant", "Bonjour."),
            ("user", "Again, please."),
        ]
        request = ChatRequest([Message(r, t) for r, t in sent], model=self.model)  # type: ignore[arg-type]
        self.arrange_reply("Bonjour encore.")
        backend_object.complete(request)
        received = [tuple(m) for m in self.last_request_messages()]
        assert received == sent, f"complete() sent {sent}; the vendor received {received}"
        list(backend_object.stream(request))
        received = [tuple(m) for m in self.last_request_messages()]
        assert received == sent, f"stream() sent {sent}; the vendor received {received}"

    def test_a_stream_reports_its_usage(self, backend_object: Any) -> None:
        self.arrange_stream(["Hello ", "there"], usage=Usage(11, 7))
        deltas = list(backend_object.stream(self._request()))
        usage = next((d.usage for d in reversed(deltas) if d.usage is not None), None)
        assert usage is not None, (
            "the vendor reported 11 + 7 tokens with the stream; no delta carries a usage "
            "(the last delta should)"
        )
        assert usage.total_tokens == 18, f"the vendor reported 11 + 7 tokens; got {usage}"

    def test_usage_counts_prompt_and_completion_apart(self, backend_object: Any) -> None:
        expected = Usage(prompt_tokens=11, completion_tokens=7)
        self.arrange_complete("Hello there.", usage=expected)
        reply = backend_object.complete(self._request())
        assert reply.usage == expected, (
            f"complete(): the vendor reported {expected}, got {reply.usage}"
        )
        self.arrange_stream(["Hello ", "there."], usage=expected)
        deltas = list(backend_object.stream(self._request()))
        usage = next((d.usage for d in reversed(deltas) if d.usage is not None), None)
        if usage is not None:  # a stream without usage fails test_a_stream_reports_its_usage
            assert usage == expected, f"stream(): the vendor reported {expected}, got {usage}"


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
        assert cancelled.id == job.id
        # A vendor that stops a job asynchronously may answer a status that is still active
        # ("cancel requested" is running); it must say cancelled within a few reads after.
        assert cancelled.status is JobStatus.CANCELLED or not cancelled.status.is_terminal, (
            f"cancel_job answered {cancelled.status.value}, expected cancelled (or a status "
            "still active while the vendor stops the job)"
        )
        seen = [backend_object.get_job(job.id).status for _ in range(3)]
        assert JobStatus.CANCELLED in seen, (
            f"get_job after cancel_job said {[s.value for s in seen]}, never cancelled"
        )

    def test_events_are_oldest_first(self, backend_object: Any) -> None:
        if not isinstance(backend_object, HasJobEvents):
            pytest.skip("no job_events (optional: the hub makes events from status changes)")
        job = self._started(backend_object)
        events = list(backend_object.job_events(job.id))
        assert all(isinstance(e, JobEvent) and e.created_at.tzinfo for e in events)
        times = [e.created_at for e in events]
        assert times == sorted(times), "job_events must be oldest first"

    def test_a_missing_job_is_not_found(self, backend_object: Any) -> None:
        methods = ("get_job", "cancel_job", "job_events")
        for method in (m for m in methods if hasattr(backend_object, m)):
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
