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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import attrs

from modelport import BackendContext, BackendRegistry, EffectiveSetting, hookimpl

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
    """

    url: str | None = None
    migrate: Literal["auto", "manual"] = "auto"
    timeout_s: float = 30.0
    statement_timeout_s: float = 60.0
    pool_size: int = 5

    def effective(self, backend: str, env: Mapping[str, str]) -> dict[str, EffectiveSetting]:
        """The settings in effect (``modelport config show``): the real URL, masked."""
        from ._store import default_url, shown_url

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
        }


def _build(context: BackendContext) -> SqlStore:
    from ._store import SqlStore

    return SqlStore.from_settings(context.settings, env=context.env)


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
        from ._store import SqlStore

        return SqlStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
