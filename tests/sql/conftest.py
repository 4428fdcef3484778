"""Where the SQL tests find their databases: a SQLite file per test, and a fresh database per
test on the PostgreSQL whose URL is in ``MODELPORT_TEST_POSTGRES_URL`` (``tools/services.py
start`` runs one; the tests that need it skip, saying so, when it is unset)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

#: Read now: the suite's isolation fixture clears every MODELPORT_* variable before each test.
POSTGRES_URL = os.environ.get("MODELPORT_TEST_POSTGRES_URL")
#: How tests/sql/test_store.py restarts that server for its PostgreSQL-restarted-mid-run test
#: (written by tools/services.py).
POSTGRES_CTL = {
    name: os.environ.get(f"MODELPORT_SERVICE_POSTGRES_{name}", "")
    for name in ("CTL", "DATA", "USER")
}
NO_POSTGRES = (
    "needs a PostgreSQL: run `python tools/services.py start --env .services.env && "
    ". ./.services.env` first (MODELPORT_TEST_POSTGRES_URL is unset)"
)
needs_postgres = pytest.mark.skipif(POSTGRES_URL is None, reason=NO_POSTGRES)


def new_postgres_database() -> str:
    """A new, empty database on the test server; its URL."""
    assert POSTGRES_URL is not None
    admin = sa.make_url(POSTGRES_URL)
    name = f"mp_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    assert POSTGRES_URL is not None
    name = sa.make_url(url).database
    engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if POSTGRES_URL is None:
        pytest.skip(NO_POSTGRES)
    url = new_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """A fresh database on each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store.sqlite3"
        return
    database = new_postgres_database()
    yield database
    drop_postgres_database(database)
