"""modelport's SQL storage plugin: dialogues, job records and usage in a SQL database, through
SQLAlchemy 2 Core, with one code path for SQLite (embedded, a file, no server) and PostgreSQL
(a URL, psycopg 3).

* ``modelport_dialogues``: one row per dialogue (its id, times, assistant, title and message
  count); ``modelport_messages``: one row per message, ``(dialogue_id, seq)`` its key, the
  message itself a ``message/1`` record (parts included) from the shared converter in a JSON
  column. A turn (a question and its reply) is one transaction: whole or absent.
* ``modelport_jobs`` and ``modelport_job_history``: a training job's record, and its status
  changes one row each.
* ``modelport_usage``: one row per backend call's usage (``modelport usage``).

The schema is managed by Alembic (its version in ``modelport_alembic_version``): applied on
first use by default (``migrate = "auto"``), or only by ``modelport store migrate``
(``migrate = "manual"``). A database written by a newer modelport is refused. Every failure
is a ``StorageError`` naming the database URL, its password masked, and what to do.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Literal

import attrs

from modelport import BackendContext, BackendRegistry, EffectiveSetting, hookimpl
from modelport.errors import ConfigError

if TYPE_CHECKING:
    from ._store import SqlStore

__all__ = ["SqlSettings", "SqlStore", "modelport_register_backends"]


@attrs.frozen(kw_only=True)
class SqlSettings:
    """The keys of ``[backends.sql]``.

    :ivar url: a SQLAlchemy URL: ``sqlite:///path/to/file.sqlite3`` or
        ``postgresql+psycopg://user@host:5432/dbname`` (put a password in the
        ``MODELPORT_SQL_PASSWORD`` environment variable, not in the file). Default: the SQLite
        file ``store.sqlite3`` in the user data directory
        (``~/.local/share/modelport/store.sqlite3`` on Linux).
    :ivar migrate: ``"auto"`` brings an older schema up to date on first use; ``"manual"``
        refuses it until ``modelport store migrate`` has run (for a database whose schema
        changes are deployed on purpose).
    :ivar timeout_s: how long to wait for a connection, and for another writer's lock.
    :ivar statement_timeout_s: PostgreSQL only: the longest a statement may run.
    :ivar pool_size: PostgreSQL only: connections kept open (as many again may be opened
        when busy).
    :ivar prepared_statements: PostgreSQL only: whether psycopg prepares the statements it
        runs often; set it to false behind PgBouncer in transaction mode (whose server
        connections change from one transaction to the next).
    """

    url: str | None = None
    migrate: Literal["auto", "manual"] = "auto"
    timeout_s: float = 30.0
    statement_timeout_s: float = 60.0
    pool_size: int = 5
    prepared_statements: bool = True

    def effective(self, backend: str, env: Mapping[str, str]) -> dict[str, EffectiveSetting]:
        """The settings in effect (``modelport config show``): the real URL, masked."""
        store = _store_module()
        default_url, shown_url = store.default_url, store.shown_url
        if self.url:
            url = EffectiveSetting(shown_url(self.url))
        else:
            url = EffectiveSetting(shown_url(default_url()), "default")
        return {
            "url": url,
            "migrate": EffectiveSetting(self.migrate),
            "timeout_s": EffectiveSetting(self.timeout_s),
            "statement_timeout_s": EffectiveSetting(self.statement_timeout_s),
            "pool_size": EffectiveSetting(self.pool_size),
            "prepared_statements": EffectiveSetting(self.prepared_statements),
        }


def _store_module() -> ModuleType:
    """``._store``, or a :class:`ConfigError` naming the missing module when the ``[sql]``
    extra (SQLAlchemy, psycopg) is not installed."""
    try:
        return importlib.import_module("._store", __name__)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        if missing.startswith(__name__):  # a real bug in this plugin: let it show
            raise
        raise ConfigError(
            f"storage 'sql' needs the Python module {missing!r}, which is not installed",
            key="capabilities.storage",
            hint="pip install 'modelport[sql]'",
        ) from exc


def _build(context: BackendContext[SqlSettings]) -> SqlStore:
    store: type[SqlStore] = _store_module().SqlStore
    return store.from_settings(context.settings, env=context.env)


@hookimpl
def modelport_register_backends(registry: BackendRegistry) -> None:
    """Offer ``sql``."""
    registry.add(
        "sql",
        _build,
        capabilities=["storage"],
        settings=SqlSettings,
        description="dialogues, job records and usage in SQLite or PostgreSQL",
    )


def __getattr__(name: str) -> object:
    if name == "SqlStore":
        return _store_module().SqlStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
