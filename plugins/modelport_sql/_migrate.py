"""The schema's revisions and how a database is brought up to date (Alembic, run from code).

The revisions this code knows are listed here, so that the common case (a database already at
``HEAD``) costs one small query and never loads Alembic. The version is kept in
``modelport_alembic_version``, apart from any ``alembic_version`` of the application sharing
the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

__all__ = ["HEAD", "REVISIONS", "VERSION_TABLE", "current_revision", "upgrade"]

VERSION_TABLE = "modelport_alembic_version"
#: Every revision in ``migrations/versions``, oldest first (a test checks that they agree).
REVISIONS: tuple[str, ...] = ("0001", "0002")
HEAD = REVISIONS[-1]
_SCRIPTS = Path(__file__).parent / "migrations"


def current_revision(conn: sa.Connection) -> str | None:
    """The database's schema revision; ``None`` for a database modelport never used."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:  # branches: this code has none, so a newer modelport made them
        return ",".join(sorted(rows))
    return rows[0] if rows else None


def upgrade(conn: sa.Connection, target: str = "head") -> None:
    """Run the migrations from the database's revision up to ``target``, inside the caller's
    transaction (both engines have transactional DDL: a failed upgrade changes nothing)."""
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    script = ScriptDirectory.from_config(config)

    def steps(revision: Any, _context: Any) -> Any:
        return script._upgrade_revs(target, revision)

    with EnvironmentContext(config, script, fn=steps, destination_rev=target) as env:
        env.configure(connection=conn, version_table=VERSION_TABLE)
        with env.begin_transaction():
            env.run_migrations()
