"""A SQLite store on modelport's storage kit: one table, and the kit keeps every rule."""

import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import closing

import attrs

from modelport import BackendContext, BackendRegistry, hookimpl
from modelport.storage import Key, RecordStore


@attrs.frozen
class SqliteSettings:
    """:ivar path: the database file."""

    path: str = "modelport.sqlite3"


class SqliteStore(RecordStore):
    errors = (sqlite3.Error, OSError)  # what the kit turns into StorageError

    def __init__(self, context: BackendContext[SqliteSettings]) -> None:
        super().__init__(context.name, where=context.settings.path)
        with self.storage_errors("open the database"), self._connect() as db:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS records (tbl TEXT, key TEXT, value TEXT NOT NULL,"
                " PRIMARY KEY (tbl, key)) WITHOUT ROWID"
            )

    def _connect(self) -> closing[sqlite3.Connection]:
        path = self.where or self.name
        return closing(sqlite3.connect(path, timeout=30, isolation_level=None))

    def read(self, table: str, key: str) -> str | None:
        with self._connect() as db:
            query = "SELECT value FROM records WHERE tbl = ? AND key = ?"
            row = db.execute(query, (table, key)).fetchone()
        return None if row is None else str(row[0])

    def scan(
        self, table: str, start: str = "", stop: str | None = None
    ) -> Iterable[tuple[str, str]]:
        query = "SELECT key, value FROM records WHERE tbl = ? AND key >= ?"
        if stop is not None:
            query += " AND key < ?"
        with self._connect() as db:
            args = (table, start) if stop is None else (table, start, stop)
            return db.execute(query + " ORDER BY key", args).fetchall()

    def commit(self, writes: Mapping[Key, str | None], expect: Mapping[Key, str | None]) -> bool:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # the write lock, until COMMIT or ROLLBACK
            try:
                for (table, key), value in expect.items():
                    query = "SELECT value FROM records WHERE tbl = ? AND key = ?"
                    row = db.execute(query, (table, key)).fetchone()
                    if (None if row is None else row[0]) != value:
                        db.execute("ROLLBACK")
                        return False
                for (table, key), value in writes.items():
                    if value is None:
                        db.execute("DELETE FROM records WHERE tbl = ? AND key = ?", (table, key))
                    else:
                        db.execute("REPLACE INTO records VALUES (?, ?, ?)", (table, key, value))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return True


@hookimpl
def modelport_register_backends(registry: BackendRegistry) -> None:
    registry.add("sqlitestore", SqliteStore, capabilities=["storage"], settings=SqliteSettings)
