"""The JSON-file store when the disk fights back: read-only, full, deleted under it, damaged
records, invalid UTF-8, a record that lost its newline, and dialogues too long to read whole."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modelport import Message, Usage
from modelport.errors import CorruptRecordError, StorageError
from modelport_jsonfile import JsonFileStore


@pytest.fixture
def store(tmp_path: Path) -> JsonFileStore:
    return JsonFileStore(tmp_path / "store")


def msg(text: str, role: str = "user") -> Message:
    return Message(role, text, created_at=datetime.now(UTC))  # type: ignore[arg-type]


def _old_record(role: str, text: str) -> str:
    parts = [{"type": "text", "text": text}]
    return json.dumps({"schema": "message/1", "role": role, "parts": parts})


def _file(store: JsonFileStore, dialogue_id: str) -> Path:
    return store.root / "dialogues" / f"{dialogue_id}.jsonl"


def _leftovers(store: JsonFileStore) -> list[Path]:
    return [p for p in store.root.rglob("*") if p.name.endswith(".tmp")]


# --- turns ----------------------------------------------------------------------------------


def test_a_turn_is_one_line_and_loads_as_its_messages(store: JsonFileStore) -> None:
    info = store.create_dialogue()
    reply = Message("assistant", "Hi", model="m", usage=Usage(3, 1))
    store.append(info.id, msg("Hello"), reply)
    lines = _file(store, info.id).read_text().splitlines()
    assert [json.loads(line)["schema"] for line in lines] == ["dialogue/1", "turn/1"]
    loaded = store.load_dialogue(info.id).messages
    assert [m.text for m in loaded] == ["Hello", "Hi"]
    assert loaded[1].usage == Usage(3, 1)
    (listed,) = store.list_dialogues().items
    assert listed.message_count == 2


def test_files_written_as_single_messages_still_load(store: JsonFileStore) -> None:
    info = store.create_dialogue()
    path = _file(store, info.id)
    with path.open("a") as file:  # as modelport wrote dialogues before turns were records
        for role, text in [("user", "old q"), ("assistant", "old a")]:
            file.write(_old_record(role, text) + "\n")
    store.append(info.id, msg("new q"), msg("new a", "assistant"))
    assert [m.text for m in store.load_dialogue(info.id).messages] == [
        "old q", "old a", "new q", "new a"
    ]  # fmt: skip
    assert [m.text for m in store.load_dialogue(info.id, last=3).messages] == [
        "old a", "new q", "new a"
    ]  # fmt: skip
    assert store.list_dialogues().items[0].message_count == 4


def test_the_last_messages_are_read_from_the_end_of_a_long_dialogue(
    store: JsonFileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = store.create_dialogue(assistant="a")
    for n in range(3000):
        store.append(info.id, msg(f"q{n} " + "x" * 100), msg(f"a{n}", "assistant"))
    size = _file(store, info.id).stat().st_size
    read: list[int] = []
    real_pread = os.pread

    def pread(fd: int, n: int, offset: int) -> bytes:
        data = real_pread(fd, n, offset)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", pread)
    tail = store.load_dialogue(info.id, last=5)
    assert [m.text.split(" ")[0] for m in tail.messages] == [
        "a2997",
        "q2998",
        "a2998",
        "q2999",
        "a2999",
    ]
    assert tail.assistant == "a"
    assert sum(read) < size / 10, f"read {sum(read)} of {size} bytes for 5 messages"
    assert store.load_dialogue(info.id, last=0).messages == ()
    assert len(store.load_dialogue(info.id, last=10**6).messages) == 6000


def test_a_damaged_record_in_the_tail_names_its_line(store: JsonFileStore) -> None:
    info = store.create_dialogue()
    for n in range(3):
        store.append(info.id, msg(f"q{n}"), msg(f"a{n}", "assistant"))
    with _file(store, info.id).open("ab") as file:
        file.write(b'{"schema":"turn/1","messages":7}\n')
    with pytest.raises(CorruptRecordError, match=rf"{info.id}\.jsonl:5:"):
        store.load_dialogue(info.id, last=2)


# --- damage ---------------------------------------------------------------------------------


def test_a_valid_last_record_missing_only_its_newline_is_kept(store: JsonFileStore) -> None:
    info = store.create_dialogue()
    store.append(info.id, msg("one"))
    path = _file(store, info.id)
    line = _old_record("user", "two")
    with path.open("a") as file:
        file.write(line)  # whole, but without its newline
    assert [m.text for m in store.load_dialogue(info.id).messages] == ["one", "two"]
    assert [m.text for m in store.load_dialogue(info.id, last=1).messages] == ["two"]
    store.append(info.id, msg("three"))
    assert [m.text for m in store.load_dialogue(info.id).messages] == ["one", "two", "three"]
    assert not (store.root / "damaged").exists()


def test_invalid_utf8_is_an_error_naming_file_and_line(store: JsonFileStore) -> None:
    info = store.create_dialogue()
    store.append(info.id, msg("one"))
    path = _file(store, info.id)
    with path.open("ab") as file:
        file.write(b'{"schema":"message/1","role":"user","parts":"caf\xe9"}\n')
    for last in (None, 1):
        with pytest.raises(CorruptRecordError, match=rf"{path}:3: not valid UTF-8") as caught:
            store.load_dialogue(info.id, last=last)
        assert caught.value.line == 3


def test_an_escaped_lone_surrogate_is_an_error_naming_file_and_line(
    store: JsonFileStore,
) -> None:
    info = store.create_dialogue()
    path = _file(store, info.id)
    with path.open("a") as file:
        file.write(_old_record("user", "fine \U0001f600") + "\n")  # a pair, escaped: fine
        file.write(_old_record("user", "lone \ud800") + "\n")
    with pytest.raises(CorruptRecordError, match=rf"{path}:3: .*surrogate"):
        store.load_dialogue(info.id)


# --- the disk fights back -------------------------------------------------------------------


def _failing_opens(
    monkeypatch: pytest.MonkeyPatch, error: int, when: Callable[[int], bool]
) -> None:
    real_open = os.open

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if when(flags):
            raise OSError(error, os.strerror(error), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def _writes(flags: int) -> bool:
    return bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))


def test_a_read_only_store_can_be_read_and_fails_writes_clearly(
    store: JsonFileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = store.create_dialogue(title="kept")
    store.append(info.id, msg("one"), msg("two", "assistant"))
    _failing_opens(monkeypatch, errno.EROFS, _writes)
    monkeypatch.setattr(Path, "mkdir", _raise(errno.EROFS))
    assert [m.text for m in store.load_dialogue(info.id).messages] == ["one", "two"]
    assert [i.title for i in store.list_dialogues().items] == ["kept"]
    with pytest.raises(StorageError) as caught:
        store.append(info.id, msg("three"))
    text = str(caught.value)
    assert str(_file(store, info.id)) in text or ".locks" in text
    assert "Read-only file system" in text
    assert "writable" in text
    assert "\n" not in text
    with pytest.raises(StorageError, match="cannot create a dialogue"):
        store.create_dialogue()


def _raise(code: int) -> Callable[..., None]:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(code, os.strerror(code))

    return fail


def test_a_store_opened_read_only_from_the_start_can_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = JsonFileStore(tmp_path / "s")
    info = first.create_dialogue()
    first.append(info.id, msg("one"))
    (tmp_path / "s" / ".locks").rename(tmp_path / "s" / ".gone")
    _failing_opens(monkeypatch, errno.EROFS, _writes)
    monkeypatch.setattr(Path, "mkdir", _raise(errno.EROFS))
    again = JsonFileStore(tmp_path / "s")  # building it writes nothing and fails nothing
    assert [m.text for m in again.load_dialogue(info.id).messages] == ["one"]
    assert again.list_jobs() == []


def test_a_full_disk_mid_append_leaves_the_file_as_it_was(
    store: JsonFileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = store.create_dialogue()
    store.append(info.id, msg("one"))
    path = _file(store, info.id)
    before = path.read_bytes()
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        if len(data) > 20:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(StorageError, match="No space left on device") as caught:
        store.append(info.id, msg("two " + "x" * 100), msg("reply", "assistant"))
    assert "free some disk space" in str(caught.value)
    assert path.read_bytes() == before
    monkeypatch.setattr(os, "write", real_write)
    assert [m.text for m in store.load_dialogue(info.id).messages] == ["one"]


def test_a_full_disk_leaves_no_temporary_files(
    store: JsonFileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelport import JobRecord

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(StorageError, match="cannot create a dialogue"):
        store.create_dialogue()
    with pytest.raises(StorageError, match="cannot save the job record"):
        store.save_job(JobRecord("ftjob-1", "fake", "m", "data.jsonl"))
    assert _leftovers(store) == []
    assert list((store.root / "dialogues").iterdir()) == []


def test_a_store_directory_deleted_under_a_running_store_is_made_again(
    store: JsonFileStore,
) -> None:
    import shutil

    from modelport import JobRecord

    shutil.rmtree(store.root)
    assert store.list_dialogues().items == ()
    assert store.list_jobs() == []
    info = store.create_dialogue()
    store.append(info.id, msg("back"))
    store.save_job(JobRecord("ftjob-1", "fake", "m", "data.jsonl"))
    assert [m.text for m in store.load_dialogue(info.id).messages] == ["back"]
    assert store.load_job("ftjob-1").source == "data.jsonl"


# --- the kept tail ----------------------------------------------------------------------------


def test_the_kept_tail_sees_appends_from_another_writer(tmp_path: Path) -> None:
    mine, other = JsonFileStore(tmp_path / "s"), JsonFileStore(tmp_path / "s")
    info = mine.create_dialogue()
    mine.append(info.id, msg("q0"), msg("a0", "assistant"))
    assert [m.text for m in mine.load_dialogue(info.id, last=4).messages] == ["q0", "a0"]
    other.append(info.id, msg("q1"), msg("a1", "assistant"))
    other.append(info.id, msg("q2"), msg("a2", "assistant"))
    assert [m.text for m in mine.load_dialogue(info.id, last=3).messages] == ["a1", "q2", "a2"]
    assert [m.text for m in mine.load_dialogue(info.id, last=6).messages] == [
        "q0", "a0", "q1", "a1", "q2", "a2"
    ]  # fmt: skip


def test_the_kept_tail_is_dropped_when_the_file_is_replaced_or_rewritten(
    store: JsonFileStore,
) -> None:
    info = store.create_dialogue()
    store.append(info.id, msg("q0"), msg("a0", "assistant"))
    assert [m.text for m in store.load_dialogue(info.id, last=2).messages] == ["q0", "a0"]
    path = _file(store, info.id)
    header = path.read_text().splitlines()[0]
    replaced = path.with_suffix(".new")
    replaced.write_text(header + "\n" + _old_record("user", "other") + "\n")
    os.replace(replaced, path)  # a new file (as a restore from backup would be)
    assert [m.text for m in store.load_dialogue(info.id, last=2).messages] == ["other"]
    text = path.read_text()
    path.write_text(text.replace("other", "again"))  # rewritten in place, same size
    assert [m.text for m in store.load_dialogue(info.id, last=2).messages] == ["again"]


def test_own_appends_join_the_kept_tail_without_being_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelport_jsonfile._store as store_module

    mine, other = JsonFileStore(tmp_path / "s"), JsonFileStore(tmp_path / "s")
    info = mine.create_dialogue()
    mine.append(info.id, msg("q0 " + "x" * 80), msg("a0", "assistant"))
    mine.load_dialogue(info.id, last=10)
    parsed: list[bytes] = []
    real = store_module.loads_messages

    def counting(line: bytes, **kwargs: Any) -> Any:
        parsed.append(line)
        return real(line, **kwargs)

    monkeypatch.setattr(store_module, "loads_messages", counting)
    mine.append(info.id, msg("q1 " + "x" * 80), msg("a1", "assistant"))
    assert [m.text[:2] for m in mine.load_dialogue(info.id, last=10).messages] == [
        "q0", "a0", "q1", "a1"
    ]  # fmt: skip
    assert parsed == [], "its own append was parsed again"
    other.append(info.id, msg("q2 " + "x" * 80), msg("a2", "assistant"))
    mine.append(info.id, msg("q3 " + "x" * 80), msg("a3", "assistant"))
    assert [m.text[:2] for m in mine.load_dialogue(info.id, last=10).messages] == [
        "q0", "a0", "q1", "a1", "q2", "a2", "q3", "a3"
    ]  # fmt: skip
