"""JSON-file storage: the cost of one append at 10 messages against 10 000 (it should not grow),
and of loading a dialogue, in a temporary directory.

    python benchmarks/jsonfile_append.py [--appends 300]

The original class rewrote the whole dialogue file on every message, so its append cost grew
with the dialogue; here an append writes one line under a file lock.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime

from modelport import Message
from modelport_jsonfile import JsonFileStore


def message(i: int) -> Message:
    text = f"message {i}: " + "a fairly ordinary sentence of a chat reply. " * 4
    return Message("user" if i % 2 else "assistant", text, created_at=datetime.now(UTC))


def append_us(store: JsonFileStore, dialogue_id: str, appends: int) -> float:
    samples = []
    for i in range(appends):
        m = message(i)
        start = time.perf_counter()
        store.append(dialogue_id, m)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        store = JsonFileStore(root)
        short, long = store.create_dialogue().id, store.create_dialogue().id
        for i in range(10):
            store.append(short, message(i))
        for i in range(10_000):
            store.append(long, message(i))
        results = {}
        for _ in range(2):  # interleaved, best of two
            for name, dialogue in (("10", short), ("10000", long)):
                cost = append_us(store, dialogue, args.appends)
                results[name] = min(results.get(name, cost), cost)
        start = time.perf_counter()
        loaded = store.load_dialogue(long)
        load_ms = (time.perf_counter() - start) * 1000
    ratio = results["10000"] / results["10"]
    print(f"append, median of {args.appends}: at 10 messages {results['10']:.1f} us, "
          f"at 10 000 messages {results['10000']:.1f} us: {ratio:.2f}x")  # fmt: skip
    print(f"load a dialogue of {len(loaded.messages)} messages: {load_ms:.0f} ms")


if __name__ == "__main__":
    main()
