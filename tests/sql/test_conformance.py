"""The storage conformance suite on both engines, and writers in several processes at once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

import modelport_sql
from modelport.testing.conformance import StoreConformance
from modelport_sql import SqlStore

from .conftest import drop_postgres_database, needs_postgres, new_postgres_database


class TestSqliteStore(StoreConformance):
    backend = "sql"
    plugins = (("sql", modelport_sql),)

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"url": f"sqlite:///{tmp_path}/store.sqlite3"}


@needs_postgres
class TestPostgresStore(StoreConformance):
    backend = "sql"
    plugins = (("sql", modelport_sql),)
    _databases: ClassVar[dict[Path, str]] = {}

    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> Iterator[None]:
        yield
        if (url := self._databases.pop(tmp_path, None)) is not None:
            drop_postgres_database(url)

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        if tmp_path not in self._databases:  # the same database for every hub of one test
            self._databases[tmp_path] = new_postgres_database()
        return {"url": self._databases[tmp_path]}


_WRITER = """
import json, sys
from modelport import Message
from modelport_sql import SqlStore
job = json.loads(sys.argv[1])
store = SqlStore(job["url"])
for i in range(job["turns"]):
    dialogue = job["dialogues"][i % len(job["dialogues"])]
    n = f"{job['name']}-{i}"
    store.append(dialogue, Message("user", f"q{n}"), Message("assistant", f"a{n}"))
store.close()
"""


@pytest.mark.parametrize("shared", [True, False], ids=["one-dialogue", "own-dialogues"])
def test_processes_writing_at_once_lose_and_interleave_nothing(url: str, shared: bool) -> None:
    """Four processes append turns at once, into one dialogue together or one each."""
    store = SqlStore(url)
    names = [f"p{n}" for n in range(4)]
    together = store.create_dialogue().id
    own = {name: store.create_dialogue().id for name in names}
    turns = 30
    writers = [
        subprocess.Popen(
            [
                sys.executable, "-c", _WRITER,
                json.dumps({
                    "url": url, "name": name, "turns": turns,
                    "dialogues": [together if shared else own[name]],
                }),
            ]
        )
        for name in names
    ]  # fmt: skip
    assert [w.wait(timeout=120) for w in writers] == [0] * 4
    for dialogue in [together] if shared else list(own.values()):
        texts = [m.text for m in store.load_dialogue(dialogue).messages]
        assert len(texts) == 2 * turns * (4 if shared else 1)
        pairs = list(zip(texts[::2], texts[1::2], strict=True))
        assert all(a == "a" + q[1:] for q, a in pairs), "a turn was split by another writer"
        for name in names:
            mine = [q for q, _a in pairs if q.startswith(f"q{name}-")]
            assert mine in ([], [f"q{name}-{i}" for i in range(turns)]), "out of order"
    info = {i.id: i.message_count for i in store.list_dialogues().items}
    assert info[together] == (2 * turns * 4 if shared else 0)
    store.close()


@needs_postgres
def test_the_postgres_fixture_gives_a_fresh_database() -> None:
    url = new_postgres_database()
    try:
        store = SqlStore(url)
        assert store.list_dialogues().total == 0
        assert store.revision() is None, "reading never writes: no schema made by a read"
        store.close()
    finally:
        drop_postgres_database(url)
