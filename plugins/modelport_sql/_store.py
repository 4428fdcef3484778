"""The SQL store (see the package docstring for the tables and guarantees)."""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite

from modelport import Dialogue, DialogueInfo, JobRecord, Message, Page, UsageRecord
from modelport.errors import CorruptRecordError, RecordNotFoundError, StorageError
from modelport.logs import get_logger, redact, register_secret
from modelport.serialization import converter, dump_record, load_record

from . import _migrate
from ._schema import dialogues, job_history, jobs, messages, usage

if TYPE_CHECKING:
    from . import SqlSettings

__all__ = ["SqlStore", "default_url", "shown_url"]

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: The environment variable a PostgreSQL password is read from when the URL holds none.
PASSWORD_VARIABLE = "MODELPORT_SQL_PASSWORD"
_WRITE = "modelport_write"


def default_url() -> str:
    return f"sqlite:///{platformdirs.user_data_path('modelport') / 'store.sqlite3'}"


def shown_url(url: str | sa.URL) -> str:
    """``url`` fit to show: its password (and any other secret in it) masked."""
    if isinstance(url, str):
        text = url
        try:
            url = sa.make_url(text)
        except sa.exc.ArgumentError:
            return redact(text)
    return redact(url.render_as_string(hide_password=True))


def _hint(exc: BaseException, sqlite: bool) -> str:
    text = str(getattr(exc, "orig", None) or exc).lower()
    if isinstance(exc, sa.exc.TimeoutError) or "timeout" in text or "timed out" in text:
        return (
            "the database was too slow to answer: retry, or raise [backends.sql] timeout_s "
            "(statement_timeout_s for long statements)"
        )
    if sqlite and "locked" in text:
        return "another process held the database too long: retry, or raise timeout_s"
    if sqlite and ("readonly" in text or "read-only" in text or "unable to open" in text):
        return "make the database file and its directory writable, or set [backends.sql] url"
    if sqlite and ("full" in text or "disk i/o" in text):
        return "free some disk space and try again; the failed write changed nothing"
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or "connect" in text:
        return (
            "the database server is down, restarting or unreachable: start it (or wait for "
            "it) and retry; check the host, port, database and credentials in [backends.sql] "
            f"url (a password goes in {PASSWORD_VARIABLE})"
        )
    return "check [backends.sql] url and the database server's log"


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


class SqlStore:
    """Dialogues, job records and usage in a SQL database (SQLite or PostgreSQL).

    Safe to share between threads, and between processes using the same database.
    """

    def __init__(
        self,
        url: str | sa.URL,
        *,
        migrate: str = "auto",
        timeout_s: float = 30.0,
        statement_timeout_s: float = 60.0,
        pool_size: int = 5,
        prepared_statements: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        try:
            parsed = sa.make_url(url) if isinstance(url, str) else url
        except sa.exc.ArgumentError as exc:
            raise StorageError(
                f"not a database URL: {exc}",
                path=redact(str(url)),
                hint="set [backends.sql] url to sqlite:///PATH or postgresql+psycopg://HOST/DB",
            ) from None
        env = os.environ if env is None else env
        if parsed.password is None and env.get(PASSWORD_VARIABLE):
            parsed = parsed.set(password=env[PASSWORD_VARIABLE])
        if parsed.password:  # masked wherever it may be echoed (logs, errors)
            register_secret(str(parsed.password))
        self.url = parsed
        self.shown_url = shown_url(parsed)
        self.migrate_mode = migrate
        self.timeout_s = timeout_s
        self.sqlite = parsed.get_backend_name() == "sqlite"
        self._file = self._sqlite_file(parsed) if self.sqlite else None
        self._ready = False
        self._ready_lock = threading.Lock()
        self._warned_journal = False
        self.engine = self._make_engine(statement_timeout_s, pool_size, prepared_statements)

    @classmethod
    def from_settings(cls, settings: SqlSettings, env: Mapping[str, str] | None = None) -> SqlStore:
        return cls(
            settings.url or default_url(),
            migrate=settings.migrate,
            timeout_s=settings.timeout_s,
            statement_timeout_s=settings.statement_timeout_s,
            pool_size=settings.pool_size,
            prepared_statements=settings.prepared_statements,
            env=env,
        )

    def __repr__(self) -> str:
        return f"SqlStore({self.shown_url!r})"

    def close(self) -> None:
        """Close the pooled connections (the hub calls this when it is closed)."""
        self.engine.dispose()

    # --- the engine -------------------------------------------------------------------------

    @staticmethod
    def _sqlite_file(url: sa.URL) -> Path | None:
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            return None
        return Path(database).expanduser()

    def _journal_mode(self, mode: str | None, error: BaseException | None) -> str:
        """The ``synchronous`` level safe with the journal mode SQLite chose: ``NORMAL`` only
        in WAL mode; in rollback-journal mode (WAL refused: a network file system, a read-only
        directory, ...) ``NORMAL`` could corrupt the file on a power cut, so ``FULL``."""
        if mode == "wal":
            return "NORMAL"
        if mode != "memory" and not self._warned_journal:  # an in-memory database: no file
            self._warned_journal = True
            get_logger().warning(
                "sqlite WAL mode unavailable: using synchronous=FULL (slower writes)",
                url=self.shown_url,
                journal_mode=mode,
                error=_reason(error) if error is not None else None,
            )
        return "FULL"

    def _make_engine(
        self, statement_timeout_s: float, pool_size: int, prepared_statements: bool
    ) -> sa.Engine:
        if self.sqlite:
            url = self.url
            if self._file is not None:
                url = url.set(database=str(self._file))
            engine = sa.create_engine(url, connect_args={"timeout": self.timeout_s})
            busy_ms = int(self.timeout_s * 1000)

            @event.listens_for(engine, "connect")
            def _connect(dbapi: Any, _record: Any) -> None:
                dbapi.isolation_level = None  # we say when a transaction begins, and how
                cursor = dbapi.cursor()
                try:
                    cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
                    cursor.execute("PRAGMA foreign_keys = ON")
                    mode: str | None = None
                    error: BaseException | None = None
                    try:  # a read-only file is still read, whatever this says
                        row = cursor.execute("PRAGMA journal_mode = WAL").fetchone()
                        mode = str(row[0]).lower() if row else None
                    except Exception as exc:  # reported by _journal_mode
                        error = exc
                    # NORMAL is crash-safe with WAL only; FULL otherwise.
                    cursor.execute(f"PRAGMA synchronous = {self._journal_mode(mode, error)}")
                finally:
                    cursor.close()

            @event.listens_for(engine, "begin")
            def _begin(conn: sa.Connection) -> None:
                # A writer takes the write lock first (waiting busy_timeout for it), so it can
                # never fail half-way on a lock another writer holds.
                write = conn.get_execution_options().get(_WRITE)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

            return engine
        timeouts = sa.text(
            "SELECT set_config('statement_timeout', :statement, true), "
            "set_config('lock_timeout', :lock, true)"
        ).bindparams(
            statement=str(int(statement_timeout_s * 1000)), lock=str(int(self.timeout_s * 1000))
        )
        connect_args: dict[str, Any] = {"connect_timeout": max(1, round(self.timeout_s))}
        if not prepared_statements:  # PgBouncer in transaction mode
            connect_args["prepare_threshold"] = None
        engine = sa.create_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=self.timeout_s,
            pool_pre_ping=True,  # a restarted server: stale connections are replaced
            connect_args=connect_args,
        )

        @event.listens_for(engine, "begin")
        def _begin_pg(conn: sa.Connection) -> None:
            # The timeouts hold for this transaction (SET LOCAL), not the session: no startup
            # parameter, which PgBouncer refuses, and nothing left on a pooled connection.
            conn.execute(timeouts)

        return engine

    def _insert(self, table: sa.Table) -> Any:
        """An ``INSERT`` with ``ON CONFLICT`` clauses, in this database's dialect."""
        return (sqlite if self.sqlite else postgresql).insert(table)

    # --- errors, transactions and the schema -----------------------------------------------

    def _error(self, action: str, exc: BaseException) -> StorageError:
        return StorageError(
            f"cannot {action}: {_reason(exc)}",
            path=self.shown_url,
            hint=_hint(exc, self.sqlite),
        )

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn any database failure into a :class:`StorageError` naming the (masked) URL."""
        try:
            yield
        except StorageError:
            raise
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self._error(action, exc) from exc

    @contextmanager
    def _transaction(self, action: str, *, write: bool) -> Iterator[sa.Connection]:
        with self._errors(action), self.engine.connect() as conn:
            if write:
                conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    def _exists(self) -> bool:
        """Whether the schema is there, brought up to date when it is older (``auto``).

        Reading never writes a store modelport never used: a read of a database (or SQLite
        file) with no tables finds nothing. The first write creates them.
        """
        if self._ready:
            return True
        return self._prepare(write=False)

    def _writable(self) -> None:
        if not self._ready:
            self._prepare(write=True)

    def _prepare(self, *, write: bool) -> bool:
        if self._file is not None and not write and not self._file.exists():
            return False
        with self._ready_lock, self._errors("open the database"):
            if self._ready:
                return True
            if self._file is not None:
                self._file.parent.mkdir(parents=True, exist_ok=True)
            with self.engine.connect() as conn:
                revision = _migrate.current_revision(conn)
                conn.rollback()
            if revision != _migrate.HEAD:
                if revision is None and not write:
                    return False
                self._check_revision(revision)
                if self.migrate_mode != "auto":
                    raise StorageError(
                        f"the database's schema is at revision {revision or 'none'}, this "
                        f"modelport needs {_migrate.HEAD}, and [backends.sql] migrate is "
                        f"{self.migrate_mode!r}",
                        path=self.shown_url,
                        hint="run: modelport store migrate --store <this backend's name>",
                    )
                self._upgrade()
            self._ready = True
            return True

    def _check_revision(self, revision: str | None) -> None:
        if revision is not None and revision not in _migrate.REVISIONS:
            raise StorageError(
                f"the database's schema is at revision {revision!r}, newer than this "
                f"modelport knows (up to {_migrate.HEAD}): a newer modelport wrote it",
                path=self.shown_url,
                hint="upgrade modelport (pip install -U modelport[sql]) on every machine "
                "that uses this database; nothing was changed",
            )

    def _upgrade(self) -> None:
        """Run the migrations, one process at a time, in one transaction."""
        log = get_logger()
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                if self.url.get_backend_name() == "postgresql":
                    # Several processes starting at once: one migrates, the others wait.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7016220919)"))
                before = _migrate.current_revision(conn)  # again, now that we hold the lock
                if before == _migrate.HEAD:
                    return
                self._check_revision(before)
                _migrate.upgrade(conn)
        log.info("store schema migrated", url=self.shown_url, before=before, after=_migrate.HEAD)

    def migrate(self) -> tuple[str | None, str]:
        """Bring the schema up to date now, whatever ``migrate`` says (``modelport store
        migrate``): the revisions before and after.

        :raises StorageError: for a database a newer modelport wrote.
        """
        with self._errors("migrate the database"):
            if self._file is not None:
                self._file.parent.mkdir(parents=True, exist_ok=True)
            with self.engine.connect() as conn:
                before = _migrate.current_revision(conn)
                conn.rollback()
            self._check_revision(before)
            if before != _migrate.HEAD:
                self._upgrade()
        self._ready = True
        return before, _migrate.HEAD

    def revision(self) -> str | None:
        """The database's schema revision (``None`` when modelport never wrote to it)."""
        if self._file is not None and not self._file.exists():
            return None
        with self._errors("read the schema revision"), self.engine.connect() as conn:
            return _migrate.current_revision(conn)

    # --- dialogues --------------------------------------------------------------------------

    @staticmethod
    def _missing(dialogue_id: str) -> RecordNotFoundError:
        return RecordNotFoundError(
            f"no dialogue {dialogue_id!r}", hint="list them with: modelport dialogues list"
        )

    def create_dialogue(
        self, *, assistant: str | None = None, title: str | None = None
    ) -> DialogueInfo:
        self._writable()
        now = datetime.now(UTC)
        info = DialogueInfo(
            id=uuid.uuid4().hex[:16], created_at=now, updated_at=now, assistant=assistant,
            title=title,
        )  # fmt: skip
        with self._transaction("create a dialogue", write=True) as conn:
            conn.execute(
                dialogues.insert().values(
                    id=info.id, created_at=now, updated_at=now, assistant=assistant, title=title
                )
            )
        return info

    def _message_rows(self, dialogue_id: str, start: int, sent: Sequence[Message]) -> list[Any]:
        return [
            {
                "dialogue_id": dialogue_id,
                "seq": start + n,
                "role": message.role,
                "created_at": message.created_at,
                "record": dump_record(message),
            }
            for n, message in enumerate(sent)
        ]

    def append(self, dialogue_id: str, *messages_: Message) -> None:
        if not messages_:
            return
        if not _ID.fullmatch(dialogue_id):
            raise self._missing(dialogue_id)
        self._writable()
        rows = self._message_rows(dialogue_id, 0, messages_)  # serialised outside the lock
        latest = next((m.created_at for m in reversed(messages_) if m.created_at), None)
        table = dialogues
        with self._transaction("append to the dialogue", write=True) as conn:
            # The row's lock orders concurrent appends: each takes the next sequence numbers.
            changed = conn.execute(
                table.update()
                .where(table.c.id == dialogue_id)
                .values(
                    message_count=table.c.message_count + len(rows),
                    updated_at=table.c.updated_at if latest is None else latest,
                )
            )
            if not changed.rowcount:
                raise self._missing(dialogue_id)
            count = conn.execute(
                sa.select(table.c.message_count).where(table.c.id == dialogue_id)
            ).scalar_one()
            start = count - len(rows)
            for n, row in enumerate(rows):
                row["seq"] = start + n
            conn.execute(messages.insert(), rows)

    def import_dialogue(self, dialogue: Dialogue) -> None:
        """Create ``dialogue`` whole, keeping its id, creation time and messages, in one
        transaction (``modelport store copy`` keeps ids this way).

        :raises StorageError: when a dialogue with that id exists (nothing is changed).
        """
        if not _ID.fullmatch(dialogue.id):
            raise StorageError(
                f"cannot keep the dialogue id {dialogue.id!r}: ids are 1 to 64 letters, "
                "digits, '-' or '_'",
                path=self.shown_url,
            )
        self._writable()
        latest = next(
            (m.created_at for m in reversed(dialogue.messages) if m.created_at),
            dialogue.created_at,
        )
        rows = self._message_rows(dialogue.id, 0, dialogue.messages)
        exists = StorageError(f"a dialogue {dialogue.id!r} exists already", path=self.shown_url)
        with self._transaction("import the dialogue", write=True) as conn:
            # ON CONFLICT: two imports of one id at once are one import and one "exists".
            try:
                created = conn.execute(
                    self._insert(dialogues)
                    .values(
                        id=dialogue.id,
                        created_at=dialogue.created_at,
                        updated_at=latest,
                        assistant=dialogue.assistant,
                        title=dialogue.title,
                        message_count=len(rows),
                    )
                    .on_conflict_do_nothing(index_elements=[dialogues.c.id])
                    .returning(dialogues.c.id)
                ).first()
            except sa.exc.IntegrityError:
                raise exists from None
            if created is None:
                raise exists
            if rows:
                conn.execute(messages.insert(), rows)

    def _message(self, row: Any) -> Message:
        where = f"{self.shown_url} ({messages.name} {row.dialogue_id}/{row.seq})"
        return load_record(row.record, Message, path=where)

    def load_dialogue(self, dialogue_id: str, *, last: int | None = None) -> Dialogue:
        if not _ID.fullmatch(dialogue_id) or not self._exists():
            raise self._missing(dialogue_id)
        with self._transaction("read the dialogue", write=False) as conn:
            head = conn.execute(sa.select(dialogues).where(dialogues.c.id == dialogue_id)).first()
            if head is None:
                raise self._missing(dialogue_id)
            query = sa.select(messages).where(messages.c.dialogue_id == dialogue_id)
            if last is None:
                rows = conn.execute(query.order_by(messages.c.seq)).all()
            else:  # the newest `last` by the key's index, never the whole dialogue
                limited = query.order_by(messages.c.seq.desc()).limit(max(0, last))
                rows = conn.execute(limited).all()[::-1]
        return Dialogue(
            id=head.id,
            created_at=head.created_at,
            messages=[self._message(row) for row in rows],
            assistant=head.assistant,
            title=head.title,
        )

    def list_dialogues(
        self,
        *,
        assistant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        if not self._exists():
            return Page((), offset=offset, total=0)
        where = []
        if assistant is not None:
            where.append(dialogues.c.assistant == assistant)
        if since is not None:
            where.append(dialogues.c.updated_at >= since)
        if until is not None:
            where.append(dialogues.c.updated_at < until)
        query = (
            sa.select(dialogues)
            .where(*where)
            .order_by(dialogues.c.updated_at.desc(), dialogues.c.id.desc())
            .limit(max(0, limit))
            .offset(max(0, offset))
        )
        counted = sa.select(sa.func.count()).select_from(dialogues).where(*where)
        with self._transaction("list the dialogues", write=False) as conn:
            rows = conn.execute(query).all()
            total = conn.execute(counted).scalar_one()
        return Page(
            [
                DialogueInfo(
                    id=row.id,
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                    assistant=row.assistant,
                    title=row.title,
                    message_count=row.message_count,
                )
                for row in rows
            ],
            offset=offset,
            total=total,
        )

    def delete_dialogue(self, dialogue_id: str) -> None:
        if not _ID.fullmatch(dialogue_id) or not self._exists():
            raise self._missing(dialogue_id)
        with self._transaction("delete the dialogue", write=True) as conn:
            conn.execute(messages.delete().where(messages.c.dialogue_id == dialogue_id))
            gone = conn.execute(dialogues.delete().where(dialogues.c.id == dialogue_id))
            if not gone.rowcount:
                raise self._missing(dialogue_id)

    # --- job records ------------------------------------------------------------------------

    @staticmethod
    def _job_missing(job_id: str) -> RecordNotFoundError:
        return RecordNotFoundError(
            f"no training job {job_id!r} in this store", hint="list them with: modelport jobs list"
        )

    @staticmethod
    def _storable(text: str) -> bool:
        """Whether every database can hold ``text`` (PostgreSQL refuses NUL; nobody takes a
        lone surrogate)."""
        if "\x00" in text:
            return False
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True

    def save_job(self, record: JobRecord) -> None:
        if not self._storable(record.job_id):
            raise StorageError(
                f"cannot save the job record: its id {record.job_id!r} is not storable text",
                path=self.shown_url,
            )
        self._writable()
        body = dump_record(record)
        body.pop("history", None)
        history = record.history
        row = {
            "backend": record.backend,
            "status": history[-1].status.value if history else None,
            "started_at": history[0].at if history else None,
            "updated_at": history[-1].at if history else None,
            "record": body,
        }
        insert = self._insert(jobs).values(job_id=record.job_id, **row)
        upsert = insert.on_conflict_do_update(
            index_elements=[jobs.c.job_id], set_={key: insert.excluded[key] for key in row}
        )
        with self._transaction("save the job record", write=True) as conn:
            # Replace whole: insert the row or update it in one statement (taking its lock, so
            # two first saves of one id at once are one insert and one update), then its history.
            conn.execute(upsert)
            conn.execute(job_history.delete().where(job_history.c.job_id == record.job_id))
            if history:
                conn.execute(
                    job_history.insert(),
                    [
                        {"job_id": record.job_id, "seq": n, "status": c.status.value, "at": c.at}
                        for n, c in enumerate(history)
                    ],
                )

    def _job(self, row: Any, changes: Sequence[Any]) -> JobRecord:
        data = dict(row.record)
        data["history"] = [converter.unstructure({"status": c.status, "at": c.at}) for c in changes]
        where = f"{self.shown_url} ({jobs.name} {row.job_id!r})"
        return load_record(data, JobRecord, path=where)

    def load_job(self, job_id: str) -> JobRecord:
        if not self._storable(job_id) or not self._exists():
            raise self._job_missing(job_id)
        with self._transaction("read the job record", write=False) as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).first()
            if row is None:
                raise self._job_missing(job_id)
            changes = conn.execute(
                sa.select(job_history)
                .where(job_history.c.job_id == job_id)
                .order_by(job_history.c.seq)
            ).all()
        return self._job(row, changes)

    def list_jobs(self) -> Sequence[JobRecord]:
        if not self._exists():
            return []
        with self._transaction("list the job records", write=False) as conn:
            rows = conn.execute(sa.select(jobs)).all()
            changes: dict[str, list[Any]] = {}
            history = sa.select(job_history).order_by(job_history.c.job_id, job_history.c.seq)
            for change in conn.execute(history):
                changes.setdefault(change.job_id, []).append(change)
        records = []
        for row in rows:
            try:
                records.append(self._job(row, changes.get(row.job_id, ())))
            except CorruptRecordError as exc:  # as jsonfile: log it, list the others
                get_logger().warning("damaged record skipped", path=exc.path, error=str(exc))
        return sorted(records, key=_job_started)

    # --- usage ------------------------------------------------------------------------------

    def record_usage(self, record: UsageRecord) -> None:
        self._writable()
        with self._transaction("record usage", write=True) as conn:
            conn.execute(
                usage.insert().values(
                    at=record.at,
                    capability=record.capability.value,
                    backend=record.backend,
                    model=record.model,
                    cost_usd=record.cost_usd,
                    record=dump_record(record),
                )
            )

    def list_usage(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> Sequence[UsageRecord]:
        if not self._exists():
            return []
        where = []
        if since is not None:
            where.append(usage.c.at >= since)
        if until is not None:
            where.append(usage.c.at < until)
        query = sa.select(usage.c.id, usage.c.record).where(*where).order_by(usage.c.at, usage.c.id)
        with self._transaction("list usage", write=False) as conn:
            rows = conn.execute(query).all()
        return [
            load_record(row.record, UsageRecord, path=f"{self.shown_url} (usage {row.id})")
            for row in rows
        ]


def _job_started(record: JobRecord) -> Any:
    first = record.history[0].at if record.history else datetime.min.replace(tzinfo=UTC)
    return (first, record.job_id)
