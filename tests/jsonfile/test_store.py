"""The JSON-file store under real conditions: real files, threads, processes and SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import modelport_jsonfile
from modelport import JobRecord, JobStatus, Message, TrainingJob, load_settings
from modelport.errors import ConfigError, CorruptRecordError, RecordNotFoundError
from modelport.testing import make_test_hub
from modelport_jsonfile import JsonFileStore


@pytest.fixture
def store(tmp_path: Path) -> JsonFileStore:
    return JsonFileStore(tmp_path / "store")


def msg(text: str, role: str = "user", at: datetime | None = None) -> Message:
    return Message(role, text, created_at=at or datetime.now(UTC))  # type: ignore[arg-type]


def test_round_trip(store: JsonFileStore) -> None:
    info = store.create_dialogue(assistant="support", title="Refund")
    store.append(info.id, msg("Hello"))
    store.append(info.id, msg("Hi! 👋 Как дела?", "assistant"))
    dialogue = store.load_dialogue(info.id)
    assert [m.text for m in dialogue.messages] == ["Hello", "Hi! 👋 Как дела?"]
    assert (dialogue.assistant, dialogue.title) == ("support", "Refund")
    (listed,) = store.list_dialogues().items
    assert (listed.id, listed.message_count) == (info.id, 2)
    assert listed.updated_at == dialogue.messages[-1].created_at


def test_files_are_readable_json_lines_with_schema_versions(store: JsonFileStore) -> None:
    info = store.create_dialogue(title="t")
    store.append(info.id, msg("Hello"))
    lines = (store.root / "dialogues" / f"{info.id}.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["schema"] for r in records] == ["dialogue/1", "message/1"]
    assert records[1]["role"] == "user"
    assert records[1]["parts"] == [{"type": "text", "text": "Hello"}]


def test_list_filters_by_assistant_and_date_newest_first_with_paging(store: JsonFileStore) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    ids = []
    for day in range(5):
        info = store.create_dialogue(assistant="a" if day % 2 else "b")
        store.append(info.id, msg(f"day {day}", at=base + timedelta(days=day)))
        ids.append(info.id)
    page = store.list_dialogues(limit=2)
    assert [i.id for i in page.items] == [ids[4], ids[3]]
    assert (page.total, page.next_offset) == (5, 2)
    assert [i.id for i in store.list_dialogues(limit=2, offset=4).items] == [ids[0]]
    assert [i.id for i in store.list_dialogues(assistant="a").items] == [ids[3], ids[1]]
    window = store.list_dialogues(since=base + timedelta(days=1), until=base + timedelta(days=3))
    assert [i.id for i in window.items] == [ids[2], ids[1]]


def test_delete_and_unknown_ids(store: JsonFileStore) -> None:
    info = store.create_dialogue()
    store.delete_dialogue(info.id)
    for call in (store.load_dialogue, store.delete_dialogue, lambda i: store.append(i, msg("x"))):
        with pytest.raises(RecordNotFoundError, match=info.id):
            call(info.id)
    with pytest.raises(RecordNotFoundError):
        store.load_dialogue("../../etc/passwd")


# --- damage -----------------------------------------------------------------------------------


def _file(store: JsonFileStore, dialogue_id: str) -> Path:
    return store.root / "dialogues" / f"{dialogue_id}.jsonl"


def test_a_torn_last_record_is_set_aside_and_the_rest_kept(
    store: JsonFileStore, caplog: pytest.LogCaptureFixture
) -> None:
    info = store.create_dialogue()
    store.append(info.id, msg("one"))
    store.append(info.id, msg("two"))
    path = _file(store, info.id)
    with path.open("ab") as file:
        file.write(b'{"schema":"message/1","role":"user","parts":[{"type":"te')  # cut short
    before = path.read_bytes()
    dialogue = store.load_dialogue(info.id)
    assert [m.text for m in dialogue.messages] == ["one", "two"]
    assert path.read_bytes() == before, "reading never writes"
    assert not (store.root / "damaged").exists()
    store.append(info.id, msg("three"))  # the next write sets the torn line aside
    (aside,) = (store.root / "damaged").iterdir()
    assert aside.read_bytes().endswith(b'"type":"te')
    assert "torn record set aside" in caplog.text
    assert f"{path}" in caplog.text
    assert [m.text for m in store.load_dialogue(info.id).messages] == ["one", "two", "three"]


def test_an_append_after_a_torn_record_repairs_first(store: JsonFileStore) -> None:
    info = store.create_dialogue()
    store.append(info.id, msg("one"))
    with _file(store, info.id).open("ab") as file:
        file.write(b'{"schema":"mess')
    store.append(info.id, msg("two"))
    assert [m.text for m in store.load_dialogue(info.id).messages] == ["one", "two"]


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (b'{"schema":"message/1","role":"robot","parts":"hi"}\n', "role"),
        (b"not json at all\n", "not valid JSON"),
        (b'{"schema":"message/9","role":"user","parts":"hi"}\n', "upgrade modelport"),
        (b'{"role":"user","parts":"hi"}\n', "no valid 'schema'"),
    ],
)
def test_a_damaged_record_names_file_and_line_and_nothing_is_touched(
    store: JsonFileStore, damage: bytes, match: str
) -> None:
    info = store.create_dialogue()
    store.append(info.id, msg("one"))
    path = _file(store, info.id)
    with path.open("ab") as file:
        file.write(damage)
    store.append(info.id, msg("after"))
    before = path.read_bytes()
    with pytest.raises(CorruptRecordError, match=match) as caught:
        store.load_dialogue(info.id)
    assert f"{path}:3:" in str(caught.value)
    assert caught.value.line == 3
    assert path.read_bytes() == before
    assert not (store.root / "damaged").exists()


def test_a_damaged_dialogue_is_named_and_skipped_in_the_listing(
    store: JsonFileStore, caplog: pytest.LogCaptureFixture
) -> None:
    kept = store.create_dialogue().id
    bad_header = _file(store, store.create_dialogue().id)
    bad_header.write_text('{"schema":"dialogue/1","id":3}\n')
    bad_last = store.create_dialogue().id
    store.append(bad_last, msg("one"))
    with _file(store, bad_last).open("ab") as file:
        file.write(b'{"schema":"message/1","role":"robot","parts":"hi"}\n')
    page = store.list_dialogues()
    assert [i.id for i in page.items] == [kept]
    assert page.total == 1
    assert f"{bad_header}:1:" in caplog.text
    assert f"{_file(store, bad_last)}:3:" in caplog.text
    with pytest.raises(CorruptRecordError, match=f"{bad_header}:1:"):
        store.load_dialogue(bad_header.stem)


# --- concurrency --------------------------------------------------------------------------------

WRITER = """
import sys
from datetime import UTC, datetime
from modelport import Message
from modelport_jsonfile import JsonFileStore
store = JsonFileStore(sys.argv[1])
name, count = sys.argv[3], int(sys.argv[4])
for i in range(count):
    store.append(sys.argv[2], Message("user", f"{name}-{i} " + "x" * 3000,
                                      created_at=datetime.now(UTC)))
    print(i, flush=True)
"""


def test_threads_and_processes_appending_at_once_lose_and_interleave_nothing(
    store: JsonFileStore,
) -> None:
    shared = store.create_dialogue().id
    own = [store.create_dialogue().id for _ in range(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.root), target, f"p{n}", "40"],
            stdout=subprocess.DEVNULL,
        )
        for n, target in enumerate([shared, shared, shared, *own])
    ]

    def thread_writer(n: int) -> None:
        for i in range(40):
            store.append(shared, msg(f"t{n}-{i} " + "y" * 3000))

    threads = [threading.Thread(target=thread_writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [p.wait(timeout=60) for p in processes] == [0] * len(processes)

    texts = [m.text.split(" ")[0] for m in store.load_dialogue(shared).messages]
    assert len(texts) == 7 * 40
    for writer in [f"p{n}" for n in range(3)] + [f"t{n}" for n in range(4)]:
        mine = [t for t in texts if t.startswith(f"{writer}-")]
        assert mine == [f"{writer}-{i}" for i in range(40)]  # all there, each in order
    for dialogue_id in own:
        assert len(store.load_dialogue(dialogue_id).messages) == 40


def test_a_process_killed_mid_write_never_corrupts_earlier_records(
    store: JsonFileStore,
) -> None:
    dialogue_id = store.create_dialogue().id
    acknowledged = 0
    for round_ in range(6):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.root), dialogue_id, f"k{round_}", "100000"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        lines = 0
        deadline = time.monotonic() + 0.05 + 0.03 * round_
        while time.monotonic() < deadline or lines < 5:
            if writer.stdout.readline():
                lines += 1
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        lines += len(writer.stdout.readlines())  # acknowledged, still in the pipe
        writer.stdout.close()
        acknowledged += lines
        texts = [m.text for m in store.load_dialogue(dialogue_id).messages]
        # every acknowledged append is there, at most the one in flight beyond
        assert acknowledged <= len(texts) <= acknowledged + 1
        acknowledged = len(texts)
    assert len(store.load_dialogue(dialogue_id).messages) == acknowledged


# --- job records ----------------------------------------------------------------------------------


def _job(job_id: str, status: str = "running") -> TrainingJob:
    return TrainingJob(id=job_id, backend="fake", base_model="m", status=JobStatus(status))


def test_job_records_round_trip_replace_and_list(store: JsonFileStore) -> None:
    first = JobRecord(
        "ftjob/1", "fake", "m", "data.jsonl", "first", exchanges=("k1", "k2")
    ).with_status(_job("ftjob/1"))
    store.save_job(first)
    second = JobRecord("ftjob-2", "fake", "m", "dialogues", "").with_status(_job("ftjob-2"))
    store.save_job(second)
    done = first.with_status(_job("ftjob/1", "succeeded"))
    store.save_job(done)
    assert store.load_job("ftjob/1") == done
    assert [r.job_id for r in store.list_jobs()] == ["ftjob/1", "ftjob-2"]
    text = (store.root / "jobs" / "ftjob%2F1.json").read_text()
    assert json.loads(text)["schema"] == "job/1"
    with pytest.raises(RecordNotFoundError, match="ftjob-3"):
        store.load_job("ftjob-3")
    assert not list((store.root / "jobs").glob(".*.tmp"))
    # a record written before job records kept their exchanges still loads
    old = json.loads(text)
    del old["exchanges"]
    (store.root / "jobs" / "ftjob-old.json").write_text(json.dumps({**old, "job_id": "ftjob-old"}))
    assert store.load_job("ftjob-old").exchanges == ()


def test_a_damaged_job_record_is_named_and_skipped(
    store: JsonFileStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.save_job(JobRecord("ftjob-1", "fake", "m", "data.jsonl"))
    (store.root / "jobs" / "bad.json").write_text("{")
    (store.root / "jobs" / "latin.json").write_bytes(b'{"schema":"job/1","job_id":"\xff"}')
    assert [r.job_id for r in store.list_jobs()] == ["ftjob-1"]
    assert "bad.json:1: not valid JSON" in caplog.text
    assert "latin.json:1: not valid UTF-8" in caplog.text
    with pytest.raises(CorruptRecordError, match=r"bad\.json:1: not valid JSON"):
        store.load_job("bad")


# --- as a plugin ----------------------------------------------------------------------------------


def test_the_hub_keeps_dialogues_across_hubs_and_processes(tmp_path: Path) -> None:
    overrides = {
        "capabilities": {"storage": "jsonfile"},
        "backends": {"jsonfile": {"root": str(tmp_path / "s")}},
    }
    plugin = [("jsonfile", modelport_jsonfile)]
    with make_test_hub(overrides=overrides, plugins=plugin) as hub:
        answer = hub.ask("Hello")
    with make_test_hub(overrides=overrides, plugins=plugin) as hub:
        again = hub.ask("Again", dialogue=answer.dialogue_id)
        assert [m.text for m in hub.dialogue(again.dialogue_id).messages] == [
            "Hello", "echo: Hello", "Again", "echo: Again"
        ]  # fmt: skip
    code = (
        "import sys; from modelport_jsonfile import JsonFileStore;"
        "print(len(JsonFileStore(sys.argv[1]).load_dialogue(sys.argv[2]).messages))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "s"), answer.dialogue_id],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "4"


def test_it_is_the_default_store_under_the_user_data_dir() -> None:
    from modelport import Capability, make_plugins

    plugins = make_plugins()
    assert plugins.registry.select(Capability.STORAGE, None).name == "jsonfile"
    data_home = Path(os.environ["XDG_DATA_HOME"])
    from modelport_jsonfile._store import default_root

    assert default_root() == data_home / "modelport" / "store"


def test_an_unknown_setting_names_the_key(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={"capabilities": {"storage": "jsonfile"}, "backends": {"jsonfile": {"rot": "x"}}},
        env={},
        search=False,
    )
    from modelport import Hub, make_plugins

    hub = Hub(
        settings, plugins=make_plugins(autoload=False, plugins=[("jsonfile", modelport_jsonfile)])
    )
    with pytest.raises(ConfigError, match=r"backends\.jsonfile\.rot"):
        hub.dialogues()
