"""Turns kept whole, and what keeping them costs.

    python benchmarks/turns.py [--kills 100] [--n 400] [--rounds 8]

Reported (never asserted):

* **half turns after random kills**: a writer process asking into one dialogue (JSON-lines
  store) is killed with SIGKILL at a random moment, ``--kills`` times; then the dialogue is
  checked for a question without its own reply. Goal: 0.
* **unpaired turns under concurrency**: 8 threads x 25 asks, and 100 concurrent ``AsyncHub``
  asks, into one dialogue. Goal: 0.
* **``hub.ask`` against the raw openai SDK**: chat (the OpenAI plugin) + keyword sentiment +
  the turn stored in JSON-lines files, against ``chat.completions.create`` alone, both talking
  to the same local fake server (``fake_openai_server.py``), interleaved in one run: CPU per
  call and p50. Goal: at most 1.0x.
* **a long dialogue**: an ask into a 10,000-message dialogue against one into a 10-message
  dialogue (the default history window of 100 messages). Goal: at most 1.5x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from openai_plugin import interleaved, local_server, make_sdk, sdk_ask  # noqa: E402

QUESTION = "What is the capital of France?"


def _plugins() -> Any:
    import modelport_jsonfile
    import modelport_keywords
    import modelport_openai
    from modelport import make_plugins

    return make_plugins(
        autoload=False,
        plugins=[
            ("openai", modelport_openai),
            ("jsonfile", modelport_jsonfile),
            ("keywords", modelport_keywords),
        ],
    )


def _settings(root: Path, base_url: str | None) -> Any:
    from modelport import load_settings

    capabilities = {"storage": "jsonfile", "sentiment": "keywords"}
    capabilities["chat"] = "openai" if base_url else "fake-chat"
    backends: dict[str, Any] = {"jsonfile": {"root": str(root)}}
    if base_url:
        backends["openai"] = {"base_url": base_url}
    # "same": a continued dialogue that sends no history, so both sides send one message
    assistants = {"same": {"history": {"max_messages": 0}}}
    return load_settings(
        overrides={"capabilities": capabilities, "backends": backends, "assistants": assistants},
        env={},
        search=False,
    )


def openai_hub(root: Path, base_url: str) -> Any:
    from modelport import Hub

    return Hub(_settings(root, base_url), plugins=_plugins(), env={"OPENAI_API_KEY": "bench"})


def fake_hub(root: Path, asynchronous: bool = False) -> Any:
    import modelport_jsonfile
    from modelport.testing import make_test_async_hub, make_test_hub

    make = make_test_async_hub if asynchronous else make_test_hub
    return make(
        overrides={
            "capabilities": {"storage": "jsonfile"},
            "backends": {"jsonfile": {"root": str(root)}},
        },
        plugins=[("jsonfile", modelport_jsonfile)],
    )


def unpaired(messages: Any) -> int:
    """Questions not followed by their own reply (the fakes echo the question)."""
    texts = [m.text for m in messages]
    bad = len(texts) % 2
    for question, answer in zip(texts[::2], texts[1::2], strict=False):
        bad += answer != f"echo: {question}"
    return bad


# --- whole turns ------------------------------------------------------------------------------

_ASKER = """
import sys
sys.path.insert(0, sys.argv[3])
from turns import fake_hub
from pathlib import Path
hub = fake_hub(Path(sys.argv[1]))
n = 0
while True:
    hub.ask(f"k{n}-" + "x" * 3000, dialogue=sys.argv[2])
    print(n, flush=True)
    n += 1
"""


def half_turns_after_kills(kills: int) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        hub = fake_hub(root)
        dialogue = hub.ask("start").dialogue_id
        rng = random.Random(7)
        for _ in range(kills):
            writer = subprocess.Popen(
                [sys.executable, "-c", _ASKER, str(root), dialogue, str(HERE)],
                stdout=subprocess.PIPE,
            )
            assert writer.stdout is not None
            writer.stdout.readline()  # it is asking
            time.sleep(rng.uniform(0, 0.02))
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            writer.stdout.close()
        hub.ask("after the kills", dialogue=dialogue)  # the next write repairs a torn tail
        messages = hub.dialogue(dialogue).messages
        return {"kills": kills, "turns": len(messages) // 2, "half_turns": unpaired(messages)}


def unpaired_under_concurrency() -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        hub = fake_hub(Path(tmp))
        dialogue = hub.ask("start").dialogue_id

        def asker(n: int) -> None:
            for i in range(25):
                hub.ask(f"t{n}-{i}", dialogue=dialogue)

        threads = [threading.Thread(target=asker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        threaded = unpaired(hub.dialogue(dialogue).messages)

    async def concurrent(root: Path) -> int:
        async with fake_hub(root, asynchronous=True) as ahub:
            dialogue = (await ahub.ask("start")).dialogue_id
            await asyncio.gather(*(ahub.ask(f"a{n}", dialogue=dialogue) for n in range(100)))
            return unpaired((await ahub.dialogue(dialogue)).messages)

    with tempfile.TemporaryDirectory() as tmp:
        awaited = asyncio.run(concurrent(Path(tmp)))
    return {"threads_8x25": threaded, "async_100": awaited}


# --- cost ---------------------------------------------------------------------------------------


def ask_against_sdk(n: int, rounds: int) -> dict[str, dict[str, float]]:
    with local_server() as base_url, tempfile.TemporaryDirectory() as tmp:
        sdk = make_sdk(base_url)
        hub = openai_hub(Path(tmp), base_url)
        dialogue = hub.ask(QUESTION, assistant="same").dialogue_id
        return interleaved(
            {
                "sdk": lambda: sdk_ask(sdk),
                "new dialogue": lambda: hub.ask(QUESTION).reply.text,
                "continued": lambda: hub.ask(QUESTION, dialogue=dialogue).reply.text,
            },
            n,
            rounds,
        )


def long_dialogue(n: int) -> dict[str, float]:
    from modelport import Message

    with tempfile.TemporaryDirectory() as tmp:
        hub = fake_hub(Path(tmp))
        store = hub.backend("storage")
        ids = {}
        for size in (10, 10_000):
            dialogue = store.create_dialogue().id
            for i in range(size // 2):
                store.append(
                    dialogue,
                    Message("user", f"question {i} " + "x" * 80),
                    Message("assistant", f"answer {i} " + "y" * 200),
                )
            ids[size] = dialogue
        times: dict[int, list[float]] = {10: [], 10_000: []}
        for _ in range(n):
            for size, dialogue in ids.items():
                start = time.perf_counter()
                hub.ask("one more", dialogue=dialogue)
                times[size].append(time.perf_counter() - start)
        short, long = (statistics.median(times[s]) * 1e6 for s in (10, 10_000))
        return {"p50_10_us": short, "p50_10000_us": long, "ratio": long / short}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--n", type=int, default=400, help="sequential asks per contender")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    results["kills"] = kills = half_turns_after_kills(args.kills)
    print(f"half turns after {kills['kills']} random kills of a writer: {kills['half_turns']}"
          f" ({kills['turns']} turns stored)")  # fmt: skip
    results["concurrency"] = c = unpaired_under_concurrency()
    print(f"unpaired turns: 8 threads x 25 asks {c['threads_8x25']}, "
          f"100 concurrent async asks {c['async_100']}")  # fmt: skip
    results["ask"] = r = ask_against_sdk(args.n, args.rounds)
    print(f"hub.ask (openai + keywords + jsonfile) against chat.completions.create "
          f"({r['sdk']['calls']} calls each, interleaved; 'continued' sends no history, so "
          "both send one message):")  # fmt: skip
    for metric, label in (("cpu_us", "CPU/call"), ("p50_us", "p50")):
        sdk = r["sdk"][metric]
        line = f"  {label:9} SDK {sdk:7.0f} us"
        for case in ("new dialogue", "continued"):
            mine = r[case][metric]
            line += f"   {case} {mine:7.0f} us {mine / sdk:.2f}x"
        print(line)
    results["long"] = long = long_dialogue(max(20, args.n // 10))
    print(f"ask into a 10,000-message dialogue {long['p50_10000_us']:.0f} us against a "
          f"10-message one {long['p50_10_us']:.0f} us: {long['ratio']:.2f}x")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
