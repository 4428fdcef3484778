"""The SQL store's own promises: migrations, typed errors naming the masked URL, a server
restarted mid-run, indexed reads, job history and usage rows."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

import modelport_sql
from modelport import Dialogue, JobRecord, JobStatus, Message, TrainingJob, UsageRecord
from modelport.errors import ConfigError, RecordNotFoundError, StorageError
from modelport.logs import get_logger, redact
from modelport.testing import make_test_hub
from modelport_sql import SqlStore, _migrate

from .conftest import POSTGRES_CTL, POSTGRES_URL, needs_postgres


def _at(minute: int) -> datetime:
    return datetime(2026, 1, 1, 12, minute, tzinfo=UTC)


def _usage(minute: int, **fields: Any) -> UsageRecord:
    return UsageRecord(
        at=_at(minute), capability="chat", backend="fake", operation="complete", **fields
    )


# --- migrations ---------------------------------------------------------------------------------


def test_the_known_revisions_are_the_migration_scripts() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(_migrate.__file__).parent / "migrations"))
    script = ScriptDirectory.from_config(config)
    walked = [r.revision for r in script.walk_revisions()][::-1]
    assert tuple(walked) == _migrate.REVISIONS
    assert script.get_current_head() == _migrate.HEAD


def test_the_migrations_make_the_tables_the_code_uses(url: str) -> None:
    from modelport_sql._schema import metadata

    store = SqlStore(url)
    store.create_dialogue()
    inspector = sa.inspect(store.engine)
    for table in metadata.tables.values():
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == set(table.columns.keys()), table.name
    store.close()


def _at_revision(url: str, revision: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        _migrate.upgrade(conn, revision)
    engine.dispose()


def test_an_older_schema_is_migrated_on_first_use_keeping_its_records(url: str) -> None:
    _at_revision(url, "0001")
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO modelport_dialogues (id, created_at, updated_at, message_count) "
                "VALUES ('old1', :at, :at, 0)"
            ),
            {"at": datetime(2025, 1, 1)},
        )
    engine.dispose()
    store = SqlStore(url)
    assert store.revision() == "0001"
    assert [i.id for i in store.list_dialogues().items] == ["old1"]
    assert store.revision() == _migrate.HEAD
    store.record_usage(_usage(1, prompt_tokens=3))
    assert [u.prompt_tokens for u in store.list_usage()] == [3]
    store.close()


def test_manual_migration_refuses_an_older_schema_until_the_command_runs(url: str) -> None:
    _at_revision(url, "0001")
    store = SqlStore(url, migrate="manual")
    with pytest.raises(StorageError, match="modelport store migrate") as caught:
        store.list_dialogues()
    assert "revision 0001" in str(caught.value)
    assert store.migrate() == ("0001", _migrate.HEAD)
    assert store.list_dialogues().total == 0
    assert store.migrate() == (_migrate.HEAD, _migrate.HEAD)
    store.close()


def test_a_schema_from_a_newer_modelport_is_refused_and_left_alone(url: str) -> None:
    store = SqlStore(url)
    store.create_dialogue()
    store.close()
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE modelport_alembic_version SET version_num = '0099'"))
    engine.dispose()
    again = SqlStore(url)
    for call in (again.list_dialogues, again.create_dialogue, again.migrate):
        with pytest.raises(StorageError, match="newer than this modelport") as caught:
            call()
        assert "upgrade modelport" in str(caught.value)
    assert again.revision() == "0099"
    again.close()


def test_reading_a_store_never_used_writes_nothing(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path}/sub/store.sqlite3")
    assert store.list_dialogues().total == 0
    assert store.list_jobs() == []
    with pytest.raises(RecordNotFoundError):
        store.load_dialogue("abc")
    assert not (tmp_path / "sub").exists()
    store.create_dialogue()
    assert (tmp_path / "sub" / "store.sqlite3").is_file()


# --- typed errors -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_server_that_is_down_is_a_storage_error_naming_the_masked_url() -> None:
    port = _free_port()
    store = SqlStore(f"postgresql+psycopg://ann:hunter2secret@127.0.0.1:{port}/db", timeout_s=2)
    with pytest.raises(StorageError) as caught:
        store.create_dialogue()
    text = str(caught.value)
    assert f"127.0.0.1:{port}/db" in text
    assert "hunter2secret" not in text
    assert "down" in text
    assert "hunter2secret" not in repr(store)
    store.close()


def test_the_password_comes_from_the_environment_and_is_never_shown() -> None:
    store = SqlStore(
        "postgresql+psycopg://ann@127.0.0.1:1/db", env={"MODELPORT_SQL_PASSWORD": "pw-from-env"}
    )
    assert store.url.password == "pw-from-env"
    assert "pw-from-env" not in store.shown_url
    store.close()


def test_a_writer_holding_sqlite_too_long_is_a_timeout_saying_what_to_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.sqlite3"
    store = SqlStore(url, timeout_s=0.2)
    info = store.create_dialogue()
    blocker = sa.create_engine(url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    with blocker.connect() as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        with pytest.raises(StorageError, match="timeout_s") as caught:
            store.append(info.id, Message("user", "blocked"))
        assert str(tmp_path) in str(caught.value)
        conn.exec_driver_sql("ROLLBACK")
    blocker.dispose()
    store.append(info.id, Message("user", "later"))
    assert [m.text for m in store.load_dialogue(info.id).messages] == ["later"]
    store.close()


def test_an_unknown_setting_or_mode_is_a_config_error(tmp_path: Path) -> None:
    from modelport.errors import ConfigError

    hub = make_test_hub(
        overrides={
            "capabilities": {"storage": "sql"},
            "backends": {"sql": {"url": f"sqlite:///{tmp_path}/s.db", "migrate": "sometimes"}},
        },
        plugins=[("sql", modelport_sql)],
    )
    with pytest.raises(ConfigError, match="migrate"):
        hub.backend("storage")


def _pg_ctl(*args: str) -> None:
    data = Path(POSTGRES_CTL["DATA"])
    argv = [POSTGRES_CTL["CTL"], "-D", str(data), "-l", str(data.parent / "server.log"), *args]
    if POSTGRES_CTL["USER"]:
        argv = ["runuser", "-u", POSTGRES_CTL["USER"], "--", *argv]
    subprocess.run(argv, check=True, capture_output=True, timeout=120, cwd=data.parent)


@needs_postgres
@pytest.mark.skipif(not POSTGRES_CTL["CTL"], reason="needs the server started by tools/services.py")
def test_a_postgres_restarted_mid_run_loses_nothing_acknowledged(postgres_url: str) -> None:
    store = SqlStore(postgres_url, timeout_s=3)
    info = store.create_dialogue()
    acknowledged = []
    for n in range(5):
        store.append(info.id, Message("user", f"q{n}"), Message("assistant", f"a{n}"))
        acknowledged += [f"q{n}", f"a{n}"]
    _pg_ctl("-m", "fast", "-w", "stop")
    try:
        with pytest.raises(StorageError) as caught:
            store.append(info.id, Message("user", "while down"))
        assert str(sa.make_url(postgres_url).host) in str(caught.value)
        assert "down" in str(caught.value)
    finally:
        _pg_ctl("-w", "start")
    for n in range(5, 8):  # the pool's stale connections are replaced: no error after
        store.append(info.id, Message("user", f"q{n}"), Message("assistant", f"a{n}"))
        acknowledged += [f"q{n}", f"a{n}"]
    assert [m.text for m in store.load_dialogue(info.id).messages] == acknowledged
    store.close()


# --- reads, jobs and usage ------------------------------------------------------------------------


def test_the_last_messages_are_read_by_a_limited_indexed_query(url: str) -> None:
    store = SqlStore(url)
    info = store.create_dialogue()
    for n in range(50):
        store.append(info.id, Message("user", f"m{n}"))
    statements: list[str] = []
    sa.event.listen(
        store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]), named=False
    )
    tail = store.load_dialogue(info.id, last=3)
    assert [m.text for m in tail.messages] == ["m47", "m48", "m49"]
    (query,) = [s for s in statements if "modelport_messages" in s]
    assert "LIMIT" in query.upper()
    assert "ORDER BY modelport_messages.seq DESC" in query
    store.close()


def test_job_records_keep_their_status_history_as_rows(url: str) -> None:
    store = SqlStore(url)
    record = JobRecord("ftjob-1", "fake", "base", "data.csv", exchanges=["k"])
    for status, minute in ((JobStatus.QUEUED, 1), (JobStatus.RUNNING, 2)):
        record = record.with_status(TrainingJob("ftjob-1", "fake", "base", status), _at(minute))
    store.save_job(record)
    store.save_job(record)  # replaced, not doubled
    engine = store.engine
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT status FROM modelport_job_history ORDER BY seq")).all()
    assert [r[0] for r in rows] == ["queued", "running"]
    assert store.load_job("ftjob-1") == record
    with pytest.raises(RecordNotFoundError):
        store.load_job("nope\x00")
    store.close()


def test_usage_is_kept_in_order_and_filtered_by_time(url: str) -> None:
    store = SqlStore(url)
    records = [_usage(m, model="m", cost_usd=0.5, prompt_tokens=m) for m in (3, 1, 2)]
    for record in records:
        store.record_usage(record)
    assert [u.prompt_tokens for u in store.list_usage()] == [1, 2, 3]
    window = store.list_usage(since=_at(2), until=_at(3))
    assert window == [records[2]]
    assert store.list_usage(since=_at(2) + timedelta(hours=1)) == []
    store.close()


def test_the_hub_keeps_its_turns_in_the_sql_store(tmp_path: Path) -> None:
    from modelport.testing import FakeBackends

    fakes = FakeBackends()
    fakes.chat.script("Paris.", "Madrid.")
    overrides: dict[str, Any] = {
        "capabilities": {"storage": "sql"},
        "backends": {"sql": {"url": f"sqlite:///{tmp_path}/store.sqlite3"}},
    }
    hub = make_test_hub(fakes, overrides=overrides, plugins=[("sql", modelport_sql)])
    answer = hub.ask("Capital of France?")
    hub.ask("And of Spain?", dialogue=answer.dialogue_id)
    texts = [m.text for m in hub.dialogue(answer.dialogue_id).messages]
    assert texts == ["Capital of France?", "Paris.", "And of Spain?", "Madrid."]
    hub.close()


def test_postgres_url_is_masked_in_effective_settings() -> None:
    from modelport_sql import SqlSettings

    shown = SqlSettings(url="postgresql+psycopg://u:topsecret@db.example/x").effective("sql", {})
    assert "topsecret" not in str(shown["url"].value)
    assert POSTGRES_URL is None or "postgresql" in POSTGRES_URL


# --- the extra, secrets, SQLite's journal, PgBouncer and concurrent first writes --------------


def test_sql_without_its_extra_is_a_config_error_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # import sqlalchemy fails
    monkeypatch.delitem(sys.modules, "modelport_sql._store")
    context = SimpleNamespace(settings=modelport_sql.SqlSettings(), env={})
    for call in (
        lambda: modelport_sql._build(context),  # type: ignore[arg-type]
        lambda: modelport_sql.SqlSettings().effective("sql", {}),
    ):
        with pytest.raises(ConfigError) as caught:
            call()
        assert caught.value.key == "capabilities.storage"
        assert "'sqlalchemy'" in str(caught.value)
        assert caught.value.hint == "pip install 'modelport[sql]'"


def test_the_password_from_the_environment_is_masked_everywhere() -> None:
    store = SqlStore(
        "postgresql+psycopg://ann@127.0.0.1:1/db",
        env={"MODELPORT_SQL_PASSWORD": "env-only-pw-7Qx2"},
    )
    assert "env-only-pw-7Qx2" not in redact("the server said: password env-only-pw-7Qx2 wrong")
    with capture_logs() as logs:
        get_logger().warning("echo", detail="login with env-only-pw-7Qx2 failed")
    assert "env-only-pw-7Qx2" not in str(logs)
    store.close()


def test_sqlite_without_wal_writes_with_synchronous_full_and_says_so(tmp_path: Path) -> None:
    # The unix-none VFS has no shared memory: SQLite keeps its rollback journal, as on NFS.
    url = f"sqlite:///file:{tmp_path}/store.sqlite3?vfs=unix-none&uri=true"
    with capture_logs() as logs:
        store = SqlStore(url)
        store.create_dialogue()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        store.engine.dispose()
        store.create_dialogue()  # a new connection: no second warning
    warned = [e for e in logs if "WAL" in str(e.get("event"))]
    assert len(warned) == 1, logs
    assert warned[0]["journal_mode"] == "delete"
    store.close()

    wal = SqlStore(f"sqlite:///{tmp_path}/wal.sqlite3")
    wal.create_dialogue()
    with wal.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    wal.close()


@needs_postgres
def test_postgres_timeouts_hold_per_transaction_for_pgbouncer(postgres_url: str) -> None:
    store = SqlStore(postgres_url, timeout_s=7, statement_timeout_s=11, prepared_statements=False)
    store.create_dialogue()
    with store._transaction("test", write=False) as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "11s"
        assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "7s"
        assert conn.connection.dbapi_connection.prepare_threshold is None  # type: ignore[union-attr]
    raw = store.engine.raw_connection()  # outside modelport's transactions: no startup
    try:  # parameter (which PgBouncer refuses), the session's own values
        cursor = raw.cursor()
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone() == ("0",)
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("0",)
    finally:
        raw.close()
    store.close()
    default = SqlStore(postgres_url)
    with default._transaction("test", write=False) as conn:
        assert conn.connection.dbapi_connection.prepare_threshold == 5  # type: ignore[union-attr]
    default.close()


def test_concurrent_first_saves_of_one_job_all_succeed(url: str) -> None:
    store = SqlStore(url)
    store.create_dialogue()  # the schema exists before the race
    records = [
        JobRecord("ftjob-race", "fake", f"base-{n}", "data.csv").with_status(
            TrainingJob("ftjob-race", "fake", f"base-{n}", JobStatus.RUNNING)
        )
        for n in range(8)
    ]
    barrier = threading.Barrier(len(records))
    errors: list[BaseException] = []

    def save(record: JobRecord) -> None:
        barrier.wait()
        try:
            store.save_job(record)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(r,)) for r in records]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.load_job("ftjob-race") in records
    assert len(store.list_jobs()) == 1
    store.close()


def test_concurrent_imports_of_one_dialogue_are_one_import_and_exists_errors(url: str) -> None:
    store = SqlStore(url)
    store.create_dialogue()
    dialogue = Dialogue(
        id="imported-1", created_at=_at(0), messages=[Message("user", "hi", created_at=_at(1))]
    )
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def run() -> None:
        barrier.wait()
        try:
            store.import_dialogue(dialogue)
            outcomes.append("ok")
        except StorageError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == 1, outcomes
    assert all("'imported-1' exists already" in o for o in outcomes if o != "ok"), outcomes
    assert store.load_dialogue("imported-1") == dialogue
    store.close()
