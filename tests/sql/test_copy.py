"""``modelport store copy``: jsonfile to sql and back, losing nothing, resumable."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from modelport import JobRecord, JobStatus, Message, Page, TrainingJob, UsageRecord, _storecopy
from modelport._storecopy import copy_store
from modelport.cli import CliState, cli
from modelport.errors import StorageError
from modelport.testing import MemoryStore
from modelport_jsonfile import JsonFileStore
from modelport_sql import SqlStore


def _fill(store: JsonFileStore, dialogues: int = 5) -> list[str]:
    ids = []
    for n in range(dialogues):
        info = store.create_dialogue(assistant="a" if n % 2 else None, title=f"t{n} ✓")
        for i in range(3):
            at = datetime(2026, 1, 1, 12, n, i, tzinfo=UTC)
            store.append(
                info.id,
                Message("user", f"q{n}-{i} Что?", created_at=at),
                Message("assistant", f"a{n}-{i}", created_at=at, model="m"),
            )
        ids.append(info.id)
    job = JobRecord("ftjob-1", "fake", "base", "data.csv").with_status(
        TrainingJob("ftjob-1", "fake", "base", JobStatus.RUNNING)
    )
    store.save_job(job)
    return ids


def _content(store: object) -> list[tuple[object, ...]]:
    found = []
    for info in store.list_dialogues(limit=1000).items:  # type: ignore[attr-defined]
        dialogue = store.load_dialogue(info.id)  # type: ignore[attr-defined]
        found.append((dialogue.title, dialogue.assistant, dialogue.messages))
    return sorted(found, key=lambda c: str(c[0]))


def _copy(config: Path, *args: str) -> dict[str, object]:
    result = CliRunner().invoke(
        cli, ["--config", str(config), "store", "copy", *args, "--json"], obj=CliState()
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _config(path: Path, root: Path, url: str) -> Path:
    path.write_text(f'[backends.jsonfile]\nroot = "{root}"\n\n[backends.sql]\nurl = "{url}"\n')
    return path


def test_jsonfile_to_sql_and_back_loses_nothing(tmp_path: Path) -> None:
    source = JsonFileStore(tmp_path / "a")
    ids = _fill(source)
    url = f"sqlite:///{tmp_path}/store.sqlite3"
    there = _config(tmp_path / "there.toml", tmp_path / "a", url)
    report = _copy(there, "--from", "jsonfile", "--to", "sql")
    assert (report["dialogues_created"], report["messages"], report["jobs"]) == (5, 30, 1)
    sql = SqlStore(url)
    assert sorted(i.id for i in sql.list_dialogues().items) == sorted(ids), "ids are kept"
    for dialogue_id in ids:
        assert sql.load_dialogue(dialogue_id) == source.load_dialogue(dialogue_id)
    assert sql.list_jobs() == source.list_jobs()
    again = _copy(there, "--from", "jsonfile", "--to", "sql")
    assert (again["dialogues_unchanged"], again["messages"], again["jobs"]) == (5, 0, 0)

    back = _config(tmp_path / "back.toml", tmp_path / "b", url)
    report = _copy(back, "--from", "sql", "--to", "jsonfile")
    assert (report["dialogues_created"], report["messages"]) == (5, 30)
    returned = JsonFileStore(tmp_path / "b")
    assert sorted(i.id for i in returned.list_dialogues().items) == sorted(ids), "ids are kept"
    assert _content(returned) == _content(source)
    assert returned.list_jobs() == source.list_jobs()
    assert _copy(back, "--from", "sql", "--to", "jsonfile")["messages"] == 0
    sql.close()


def test_an_interrupted_copy_carries_on_without_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = JsonFileStore(tmp_path / "a")
    _fill(source)
    sql = SqlStore(f"sqlite:///{tmp_path}/store.sqlite3")
    real = SqlStore.import_dialogue
    calls = []

    def failing(self: SqlStore, dialogue: object) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise StorageError("the disk went away")
        real(self, dialogue)  # type: ignore[arg-type]

    monkeypatch.setattr(SqlStore, "import_dialogue", failing)
    with pytest.raises(StorageError):
        copy_store(source, sql)
    assert sql.list_dialogues().total == 2
    monkeypatch.undo()
    report = copy_store(source, sql)
    assert (report.dialogues_created, report.dialogues_unchanged) == (3, 2)
    # The source grows; the next copy appends only what is new.
    newest = source.list_dialogues().items[0].id
    source.append(newest, Message("user", "one more"))
    report = copy_store(source, sql)
    assert (report.dialogues_extended, report.messages) == (1, 1)
    assert _content(sql) == _content(source)

    # Into a store that picks its own ids, through the journal, interrupted mid-dialogue.
    target = MemoryStore()
    journal = tmp_path / "journal.jsonl"
    appended = []
    real_append = MemoryStore.append

    def flaky(self: MemoryStore, dialogue_id: str, *messages: Message) -> None:
        appended.append(1)
        if len(appended) == 7:
            raise StorageError("full")
        real_append(self, dialogue_id, *messages)

    monkeypatch.setattr(MemoryStore, "append", flaky)
    with pytest.raises(StorageError):
        copy_store(sql, target, journal=journal)
    monkeypatch.undo()
    copy_store(sql, target, journal=journal)
    assert _content(target) == _content(source)
    report = copy_store(sql, target, journal=journal)
    assert (report.dialogues_unchanged, report.messages) == (5, 0)
    sql.close()


def test_a_dialogue_changed_on_both_sides_is_a_conflict_left_alone(tmp_path: Path) -> None:
    source = JsonFileStore(tmp_path / "a")
    (first, *_rest) = _fill(source, 2)
    sql = SqlStore(f"sqlite:///{tmp_path}/store.sqlite3")
    copy_store(source, sql)
    sql.append(first, Message("user", "only in sql"))
    source.append(first, Message("user", "only in jsonfile"))
    report = copy_store(source, sql)
    assert report.conflicts == [first]
    assert sql.load_dialogue(first, last=1).messages[0].text == "only in sql"
    sql.close()


def test_a_dialogue_that_moves_to_the_first_page_during_the_listing_is_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_storecopy, "_PAGE", 2)
    source = MemoryStore()
    ids = []
    for n in range(5):
        info = source.create_dialogue(title=f"t{n}")
        source.append(
            info.id, Message("user", f"q{n}", created_at=datetime(2026, 1, 1, n, 0, tzinfo=UTC))
        )
        ids.append(info.id)
    oldest = ids[0]  # on the last page
    listings = []
    real = MemoryStore.list_dialogues

    def moving(self: MemoryStore, **kwargs: Any) -> Page:
        listings.append(kwargs.get("offset"))
        if len(listings) == 2:  # after the first page: the oldest gets a message
            source.append(
                oldest, Message("user", "new", created_at=datetime(2027, 1, 1, tzinfo=UTC))
            )
        return real(self, **kwargs)

    monkeypatch.setattr(MemoryStore, "list_dialogues", moving)
    sql = SqlStore(f"sqlite:///{tmp_path}/store.sqlite3")
    report = copy_store(source, sql)
    monkeypatch.undo()
    assert report.dialogues_created == 5
    assert sorted(i.id for i in sql.list_dialogues().items) == sorted(ids)
    assert sql.load_dialogue(oldest) == source.load_dialogue(oldest)
    sql.close()


def test_a_copy_stopped_between_creating_and_journaling_makes_no_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = JsonFileStore(tmp_path / "a")
    _fill(source, 3)
    target = MemoryStore()
    journal = tmp_path / "journal.jsonl"
    real_add = _storecopy._Journal.add
    adds = []

    def crash(self: Any, source_id: str, target_id: str) -> None:
        adds.append(1)
        if len(adds) == 2:  # the second dialogue is created; the process dies before its line
            raise StorageError("killed")
        real_add(self, source_id, target_id)

    monkeypatch.setattr(_storecopy._Journal, "add", crash)
    with pytest.raises(StorageError):
        copy_store(source, target, journal=journal)
    monkeypatch.undo()
    assert target.list_dialogues().total == 2  # one copied, one empty orphan
    report = copy_store(source, target, journal=journal)
    assert target.list_dialogues().total == 3, "the orphan is taken up, not duplicated"
    assert report.dialogues_created == 2
    assert _content(target) == _content(source)
    again = copy_store(source, target, journal=journal)
    assert (again.dialogues_unchanged, again.messages) == (3, 0)


def test_usage_copied_to_a_store_with_new_ids_names_the_new_dialogue(tmp_path: Path) -> None:
    source = SqlStore(f"sqlite:///{tmp_path}/store.sqlite3")
    info = source.create_dialogue(title="t")
    source.append(info.id, Message("user", "q"))
    at = datetime(2026, 1, 1, tzinfo=UTC)
    source.record_usage(
        UsageRecord(
            at=at, capability="chat", backend="fake", operation="complete", dialogue_id=info.id
        )
    )
    source.record_usage(UsageRecord(at=at, capability="chat", backend="fake", operation="complete"))
    target = MemoryStore()
    journal = tmp_path / "journal.jsonl"
    report = copy_store(source, target, journal=journal)
    assert report.usage == 2
    (new_id,) = [i.id for i in target.list_dialogues().items]
    assert new_id != info.id
    assert sorted(str(u.dialogue_id) for u in target.list_usage()) == sorted([new_id, "None"])
    assert copy_store(source, target, journal=journal).usage == 0, "nothing copied twice"
    source.close()
