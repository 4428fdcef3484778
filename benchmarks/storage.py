"""Storage: append and read latency for jsonfile, SQLite and PostgreSQL, and the throughput of
4 processes writing one dialogue each and writing one dialogue together. Reported, never
asserted (timings depend on the machine).

    python benchmarks/storage.py [--turns 200] [--postgres URL]

PostgreSQL is measured when ``--postgres`` or ``MODELPORT_TEST_POSTGRES_URL`` gives a server
(``python tools/services.py start --env .services.env && . ./.services.env``); each run uses a
fresh database on it. An append is one turn (a question and its reply, written together); a
read is ``load_dialogue(last=20)`` of a 200-turn dialogue, what the hub asks before each turn.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from modelport import Message

PROCESSES = 4

_WRITER = """
import json, sys, time
from modelport import Message
spec = json.loads(sys.argv[1])
if spec["kind"] == "jsonfile":
    from modelport_jsonfile import JsonFileStore
    store = JsonFileStore(spec["where"])
else:
    from modelport_sql import SqlStore
    store = SqlStore(spec["where"])
text = "a fairly ordinary sentence of a chat reply. " * 4
while time.time() < spec["start"]:
    time.sleep(0.001)
for i in range(spec["turns"]):
    store.append(spec["dialogue"], Message("user", f"q{i} " + text),
                 Message("assistant", f"a{i} " + text))
"""


def _store(kind: str, where: str) -> Any:
    if kind == "jsonfile":
        from modelport_jsonfile import JsonFileStore

        return JsonFileStore(where)
    from modelport_sql import SqlStore

    return SqlStore(where)


def _turn(i: int) -> tuple[Message, Message]:
    text = "a fairly ordinary sentence of a chat reply. " * 4
    return Message("user", f"q{i} " + text), Message("assistant", f"a{i} " + text)


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def latency(kind: str, where: str, turns: int) -> tuple[float, float]:
    """Median microseconds of one turn's append, and of a read of the last 20 messages."""
    store = _store(kind, where)
    dialogue = store.create_dialogue().id
    appends = []
    for i in range(turns):
        start = time.perf_counter()
        store.append(dialogue, *_turn(i))
        appends.append(time.perf_counter() - start)
    reads = []
    for _ in range(max(50, turns // 2)):
        start = time.perf_counter()
        store.load_dialogue(dialogue, last=20)
        reads.append(time.perf_counter() - start)
    getattr(store, "close", lambda: None)()
    return _median_us(appends), _median_us(reads)


def throughput(kind: str, where: str, turns: int, shared: bool) -> float:
    """Turns per second written by 4 processes, into one dialogue together or one each."""
    store = _store(kind, where)
    together = store.create_dialogue().id
    dialogues = [together if shared else store.create_dialogue().id for _ in range(PROCESSES)]
    start_at = time.time() + 1.5  # every process started and imported before the clock runs
    writers = [
        subprocess.Popen(
            [
                sys.executable, "-c", _WRITER,
                json.dumps({
                    "kind": kind, "where": where, "turns": turns,
                    "dialogue": dialogue, "start": start_at,
                }),
            ]
        )
        for dialogue in dialogues
    ]  # fmt: skip
    for writer in writers:
        writer.wait()
    elapsed = time.time() - start_at
    counts = [len(store.load_dialogue(d).messages) for d in set(dialogues)]
    assert sum(counts) == 2 * turns * PROCESSES, counts  # a check of the run, not of timing
    getattr(store, "close", lambda: None)()
    return PROCESSES * turns / elapsed


def _postgres_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    import sqlalchemy as sa

    admin = sa.make_url(admin_url)
    name = f"mp_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()

    return admin.set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--postgres", default=os.environ.get("MODELPORT_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        engines: list[tuple[str, str, Callable[[], str], Callable[[], None]]] = []
        engines.append(("jsonfile", "jsonfile", lambda: f"{tmp}/j{uuid.uuid4().hex}", lambda: None))
        engines.append(
            ("SQLite", "sql", lambda: f"sqlite:///{tmp}/s{uuid.uuid4().hex}.db", lambda: None)
        )
        drops: list[Callable[[], None]] = []
        if args.postgres:

            def fresh() -> str:
                url, drop = _postgres_database(args.postgres)
                drops.append(drop)
                return url

            engines.append(("PostgreSQL", "sql", fresh, lambda: None))
        try:
            for label, kind, where, _ in engines:
                append_us, read_us = latency(kind, where(), args.turns)
                own = throughput(kind, where(), args.turns // 2, shared=False)
                one = throughput(kind, where(), args.turns // 2, shared=True)
                rows.append((label, append_us, read_us, own, one))
        finally:
            for drop in drops:
                drop()
    print(f"storage: {args.turns} turns per latency run; {PROCESSES} processes x "
          f"{args.turns // 2} turns per throughput run")  # fmt: skip
    print("| store | append a turn (median) | read last 20 (median) | "
          f"{PROCESSES} procs, own dialogues | {PROCESSES} procs, one dialogue |")  # fmt: skip
    print("| --- | --- | --- | --- | --- |")
    for label, append_us, read_us, own, one in rows:
        print(f"| {label} | {append_us:,.0f} µs | {read_us:,.0f} µs | {own:,.0f} turns/s | "
              f"{one:,.0f} turns/s |")  # fmt: skip
    if not args.postgres:
        print("(PostgreSQL not measured: give --postgres URL or MODELPORT_TEST_POSTGRES_URL)")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")


if __name__ == "__main__":
    main()
