"""The storage kit (``modelport.storage``): a store of three primitives passes the storage
conformance suite, in memory and as the documented SQLite example (docs/kits.md), and the kit
maps what its primitives raise."""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modelport import (
    BackendContext,
    BackendRegistry,
    Capability,
    Dialogue,
    JobRecord,
    Message,
    UsageRecord,
    hookimpl,
)
from modelport.backends import ImportsDialogues, Store, UsageStore
from modelport.errors import CorruptRecordError, RecordNotFoundError, StorageError
from modelport.storage import DIALOGUES, MESSAGES, Key, RecordStore
from modelport.testing.conformance import StoreConformance

KITS = Path(__file__).resolve().parents[2] / "examples" / "kits"
sys.path.insert(0, str(KITS))

import sqlitestore  # noqa: E402  (examples/kits, the store docs/kits.md shows)


class MemoryRecords(RecordStore):
    """The kit's primitives over a dict (what the tests and the scaffold use)."""

    def __init__(self, name: str = "memory-kit") -> None:
        super().__init__(name)
        self.lock = threading.Lock()
        self.records: dict[Key, str] = {}
        self.commits = 0
        self.conflicts = 0

    def read(self, table: str, key: str) -> str | None:
        with self.lock:
            return self.records.get((table, key))

    def scan(
        self, table: str, start: str = "", stop: str | None = None
    ) -> Iterable[tuple[str, str]]:
        with self.lock:
            keys = sorted(
                k
                for t, k in self.records
                if t == table and start <= k and (stop is None or k < stop)
            )
            return [(k, self.records[(table, k)]) for k in keys]

    def commit(self, writes: Mapping[Key, str | None], expect: Mapping[Key, str | None]) -> bool:
        with self.lock:
            if any(self.records.get(k) != v for k, v in expect.items()):
                self.conflicts += 1
                return False
            for k, v in writes.items():
                if v is None:
                    self.records.pop(k, None)
                else:
                    self.records[k] = v
            self.commits += 1
            return True


class _MemoryPlugin:
    @hookimpl
    def modelport_register_backends(self, registry: BackendRegistry) -> None:
        registry.add(
            "memory-kit",
            lambda context: MemoryRecords(context.name),
            capabilities=["storage"],
        )


class TestMemoryRecordStore(StoreConformance):
    backend = "memory-kit"
    plugins = (("memory-kit", _MemoryPlugin()),)
    persistent = False
    validates_settings = False


@pytest.fixture
def _examples_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The crash check's writer process imports the example by its module name."""
    path = [str(KITS), *(p for p in sys.path if p)]
    monkeypatch.setenv("PYTHONPATH", ":".join(path))


@pytest.mark.usefixtures("_examples_importable")
class TestSqliteExample(StoreConformance):
    """The 80-line SQLite store of docs/kits.md, word for word (tests/docs/test_kits.py)."""

    backend = "sqlitestore"
    plugins = (("sqlitestore", sqlitestore),)

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"path": str(tmp_path / "store.sqlite3")}


# --- the kit's own rules -------------------------------------------------------------------------


def test_a_record_store_is_every_store_protocol() -> None:
    store = MemoryRecords()
    assert isinstance(store, Store)
    assert isinstance(store, UsageStore)
    assert isinstance(store, ImportsDialogues)


def test_a_subclass_must_implement_the_primitives() -> None:
    class Half(RecordStore):
        def read(self, table: str, key: str) -> str | None:
            return None

    with pytest.raises(TypeError, match="commit"):
        Half()  # type: ignore[abstract]


def test_a_primitives_error_is_a_storage_error_naming_the_store() -> None:
    class Broken(MemoryRecords):
        errors = (sqlite3.Error, OSError)

        def read(self, table: str, key: str) -> str | None:
            raise sqlite3.OperationalError("database is locked")

        def commit(
            self, writes: Mapping[Key, str | None], expect: Mapping[Key, str | None]
        ) -> bool:
            raise PermissionError(13, "Permission denied")

    store = Broken("broken")
    store.where = "/data/store.db"
    with pytest.raises(StorageError, match="database is locked") as raised:
        store.load_dialogue("x")
    assert "broken" in str(raised.value)
    assert raised.value.path == "/data/store.db"
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    with pytest.raises(StorageError, match="Permission denied"):
        store.create_dialogue()
    with pytest.raises(StorageError, match="Permission denied"):
        store.save_job(JobRecord("ftjob-1", "fake", "base", "data.csv"))


def test_an_error_not_named_is_not_swallowed() -> None:
    class Buggy(MemoryRecords):
        def read(self, table: str, key: str) -> str | None:
            raise KeyError(key)

    with pytest.raises(KeyError):
        Buggy().load_dialogue("x")


def test_an_append_retries_when_another_writer_got_there_first() -> None:
    store = MemoryRecords()
    info = store.create_dialogue()
    original = store.read
    raced: list[bool] = []

    def racing_read(table: str, key: str) -> str | None:
        value = original(table, key)
        if table == DIALOGUES and not raced:  # another writer appends meanwhile
            raced.append(True)
            MemoryRecords.append(store, info.id, Message("user", "theirs"))
        return value

    store.read = racing_read  # type: ignore[method-assign]
    store.append(info.id, Message("user", "mine"), Message("assistant", "reply"))
    store.read = original  # type: ignore[method-assign]
    assert store.conflicts >= 1
    texts = [m.text for m in store.load_dialogue(info.id).messages]
    assert texts[-2:] == ["mine", "reply"]
    assert "theirs" in texts


def test_an_append_gives_up_when_the_record_keeps_changing() -> None:
    class Contended(MemoryRecords):
        retry_for_s = 0.05

        def commit(
            self, writes: Mapping[Key, str | None], expect: Mapping[Key, str | None]
        ) -> bool:
            if expect and any(k[0] == MESSAGES for k in writes):
                return False
            return super().commit(writes, expect)

    store = Contended()
    info = store.create_dialogue()
    with pytest.raises(StorageError, match="other writers kept changing"):
        store.append(info.id, Message("user", "hi"))
    assert store.load_dialogue(info.id).messages == ()


def test_the_tail_is_read_without_the_rest() -> None:
    store = MemoryRecords()
    info = store.create_dialogue()
    for n in range(10):
        store.append(info.id, Message("user", f"m{n}"))
    scanned: list[tuple[str, str | None]] = []
    original = store.scan

    def scan(table: str, start: str = "", stop: str | None = None) -> Iterable[tuple[str, str]]:
        scanned.append((start, stop))
        return original(table, start, stop)

    store.scan = scan  # type: ignore[method-assign]
    tail = store.load_dialogue(info.id, last=2)
    assert [m.text for m in tail.messages] == ["m8", "m9"]
    ((start, _stop),) = scanned
    assert start.endswith("/000000000008")
    assert store.load_dialogue(info.id, last=0).messages == ()
    assert len(scanned) == 1  # last=0 reads no message


def test_a_damaged_record_is_a_corrupt_record_error() -> None:
    store = MemoryRecords()
    info = store.create_dialogue()
    store.records[(DIALOGUES, info.id)] = '{"schema": "dialogue-info/1", "id": 3}'
    with pytest.raises(CorruptRecordError, match=info.id):
        store.load_dialogue(info.id)
    other = store.create_dialogue()
    store.append(other.id, Message("user", "a"), Message("user", "b"))
    del store.records[(MESSAGES, f"{other.id}/000000000001")]
    with pytest.raises(CorruptRecordError, match="not all there"):
        store.load_dialogue(other.id)


def test_naive_times_are_read_as_utc() -> None:
    store = MemoryRecords()
    info = store.create_dialogue()
    store.append(info.id, Message("user", "hi", created_at=datetime(2026, 1, 1, 12)))
    (message,) = store.load_dialogue(info.id).messages
    assert message.created_at == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert store.list_dialogues(since=datetime(2026, 1, 1, 11, 59)).total == 1


def test_dialogues_are_imported_whole_keeping_their_id() -> None:
    store = MemoryRecords()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    dialogue = Dialogue(
        "kept-id",
        at,
        [Message("user", "q", created_at=at), Message("assistant", "a")],
        assistant="support",
    )
    store.import_dialogue(dialogue)
    loaded = store.load_dialogue("kept-id")
    assert [m.text for m in loaded.messages] == ["q", "a"]
    assert loaded.messages[1].created_at == at  # a message without a time: the dialogue's
    (listed,) = store.list_dialogues().items
    assert (listed.message_count, listed.assistant, listed.updated_at) == (2, "support", at)
    with pytest.raises(StorageError, match="exists already"):
        store.import_dialogue(dialogue)
    with pytest.raises(StorageError, match="cannot keep the dialogue id"):
        store.import_dialogue(Dialogue("a/b", at))


def test_usage_is_listed_oldest_first_within_its_window() -> None:
    store = MemoryRecords()
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    for minutes in (3, 1, 2, 0):
        at = start + timedelta(minutes=minutes)
        record = UsageRecord(
            at=at, capability=Capability.CHAT, backend="fake", operation="complete"
        )
        store.record_usage(record)
    everything = store.list_usage()
    assert [r.at for r in everything] == [start + timedelta(minutes=m) for m in range(4)]
    window = store.list_usage(
        since=start + timedelta(minutes=1), until=start + timedelta(minutes=3)
    )
    assert [r.at for r in window] == [start + timedelta(minutes=m) for m in (1, 2)]


def test_the_sqlite_example_maps_an_unusable_file(tmp_path: Path) -> None:
    settings = sqlitestore.SqliteSettings(path=str(tmp_path / "missing" / "store.sqlite3"))
    with pytest.raises(StorageError, match="open the database") as raised:
        sqlitestore.SqliteStore(BackendContext("sqlitestore", settings))
    assert raised.value.path == settings.path


def test_a_missing_dialogue_is_not_found_everywhere() -> None:
    memory = MemoryRecords()
    for call in (
        lambda: memory.load_dialogue("nope", last=3),
        lambda: memory.append("nope"),
        lambda: memory.delete_dialogue("nope"),
        lambda: memory.load_job("nope"),
    ):
        with pytest.raises(RecordNotFoundError):
            call()
