"""The OpenAI plugin through the hub against the raw openai SDK, both talking to a local
OpenAI-compatible server (``fake_openai_server.py``, started on 127.0.0.1 in its own process).

    python benchmarks/openai_plugin.py [--n 400] [--rounds 8] [--json FILE]

Everything is measured in one run, interleaved (SDK, plugin, SDK, plugin, ... in rounds), and
reported as ratios to the SDK (below 1.0x: the plugin costs less):

* sequential ``chat.completions.create`` against ``hub.ask`` (dialogue kept in an in-memory
  store): wall-clock p50 and p95 per call, and CPU time per call in this process;
* the same for a streamed reply of 20 chunks;
* 500 async requests at concurrency 50: wall time and CPU;
* peak RSS of a process doing the sequential and async work, and import time, each in fresh
  processes.

The server's CPU is not counted (it is another process). Timing is reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QUESTION = "What is the capital of France?"
MODEL = "gpt-4o-mini"


@contextmanager
def local_server() -> Iterator[str]:
    """Start the fake server; yield its base URL."""
    process = subprocess.Popen(
        [sys.executable, str(HERE / "fake_openai_server.py")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the fake server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- the two clients ------------------------------------------------------------------------


def make_sdk(base_url: str) -> Any:
    import openai

    return openai.OpenAI(api_key="bench-key", base_url=base_url)


def make_async_sdk(base_url: str) -> Any:
    import openai

    return openai.AsyncOpenAI(api_key="bench-key", base_url=base_url)


def _hub_args(base_url: str) -> dict[str, Any]:
    import modelport_openai
    from modelport import hookimpl, load_settings, make_plugins
    from modelport.testing import MemoryStore

    class StoreOnly:
        @hookimpl
        def modelport_register_backends(self, registry: Any) -> None:
            registry.add("memory", lambda _context: MemoryStore(), capabilities=["storage"])

    settings = load_settings(
        overrides={
            "capabilities": {"chat": "openai", "storage": "memory"},
            "backends": {"openai": {"base_url": base_url}},
        },
        env={},
        search=False,
    )
    plugins = make_plugins(
        autoload=False, plugins=[("openai", modelport_openai), ("store", StoreOnly())]
    )
    return {"settings": settings, "plugins": plugins, "env": {"OPENAI_API_KEY": "bench-key"}}


def make_hub(base_url: str) -> Any:
    from modelport import Hub

    args = _hub_args(base_url)
    return Hub(args.pop("settings"), **args)


def make_async_hub(base_url: str) -> Any:
    from modelport import AsyncHub

    args = _hub_args(base_url)
    return AsyncHub(args.pop("settings"), **args)


def sdk_ask(client: Any) -> str:
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}]
    )
    return str(reply.choices[0].message.content)


def sdk_stream(client: Any) -> str:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def hub_ask(hub: Any) -> str:
    return str(hub.ask(QUESTION).reply.text)


def hub_stream(hub: Any) -> str:
    return "".join(d.text for d in hub.stream(QUESTION))


# --- measuring ------------------------------------------------------------------------------


def timed_calls(fn: Callable[[], object], n: int) -> tuple[list[float], float]:
    """Wall seconds of each call, and the CPU seconds of all of them."""
    walls = []
    cpu = time.process_time()
    for _ in range(n):
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
    return walls, time.process_time() - cpu


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def interleaved(
    contenders: dict[str, Callable[[], object]], n: int, rounds: int
) -> dict[str, dict[str, float]]:
    for fn in contenders.values():  # warm up connections and caches
        for _ in range(20):
            fn()
    walls: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, float] = dict.fromkeys(contenders, 0.0)
    per_round = max(1, n // rounds)
    for _ in range(rounds):
        for name, fn in contenders.items():
            w, c = timed_calls(fn, per_round)
            walls[name] += w
            cpu[name] += c
    return {
        name: {
            "p50_us": statistics.median(walls[name]) * 1e6,
            "p95_us": percentile(walls[name], 0.95) * 1e6,
            "cpu_us": cpu[name] / len(walls[name]) * 1e6,
            "calls": len(walls[name]),
        }
        for name in contenders
    }


async def _concurrent(fn: Callable[[], Any], total: int, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await fn()

    await asyncio.gather(*(one() for _ in range(total)))


def concurrent_run(
    make: Callable[[], Any], call: Callable[[Any], Any], total: int, concurrency: int
) -> dict[str, float]:
    async def run() -> dict[str, float]:
        subject = make()
        await _concurrent(lambda: call(subject), concurrency, concurrency)  # warm the pool
        wall, cpu = time.perf_counter(), time.process_time()
        await _concurrent(lambda: call(subject), total, concurrency)
        result = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
        close = getattr(subject, "aclose", None) or getattr(subject, "close", None)
        if close is not None:
            await close()
        return result

    return asyncio.run(run())


async def async_sdk_ask(client: Any) -> None:
    await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}]
    )


async def async_hub_ask(hub: Any) -> None:
    await hub.ask(QUESTION)


def child_rss(which: str, base_url: str, n: int) -> float:
    """Peak RSS (MiB) of a fresh process doing ``n`` sequential and 500 async asks (Linux)."""
    code = f"""
import asyncio, re, sys
sys.path.insert(0, {str(HERE)!r})
import openai_plugin as b
if {which!r} == "sdk":
    c = b.make_sdk({base_url!r})
    for _ in range({n}): b.sdk_ask(c)
    b.concurrent_run(lambda: b.make_async_sdk({base_url!r}), b.async_sdk_ask, 500, 50)
else:
    h = b.make_hub({base_url!r})
    for _ in range({n}): b.hub_ask(h)
    b.concurrent_run(lambda: b.make_async_hub({base_url!r}), b.async_hub_ask, 500, 50)
# VmHWM, not ru_maxrss: on Linux ru_maxrss carries the parent's peak across fork and exec.
print(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024


def import_ms(statement: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        samples.append(float(out.stdout) * 1000)
    return statistics.median(samples)


# --- report ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="sequential calls per contender")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    import openai

    results: dict[str, Any] = {"openai": openai.__version__, "python": sys.version.split()[0]}
    with local_server() as base_url:
        sdk, hub = make_sdk(base_url), make_hub(base_url)
        results["ask"] = interleaved(
            {"sdk": lambda: sdk_ask(sdk), "modelport": lambda: hub_ask(hub)}, args.n, args.rounds
        )
        results["stream"] = interleaved(
            {"sdk": lambda: sdk_stream(sdk), "modelport": lambda: hub_stream(hub)},
            args.n // 2,
            args.rounds,
        )
        results["async"] = {}
        for name, make, call in (
            ("sdk", lambda: make_async_sdk(base_url), async_sdk_ask),
            ("modelport", lambda: make_async_hub(base_url), async_hub_ask),
            ("sdk ", lambda: make_async_sdk(base_url), async_sdk_ask),
            ("modelport ", lambda: make_async_hub(base_url), async_hub_ask),
        ):
            run = concurrent_run(make, call, 500, 50)
            best = results["async"].setdefault(name.strip(), run)
            if run["wall_s"] < best["wall_s"]:
                results["async"][name.strip()] = run
        results["rss_mib"] = {
            "sdk": child_rss("sdk", base_url, args.n // 2),
            "modelport": child_rss("modelport", base_url, args.n // 2),
        }
    results["import_ms"] = {
        "sdk": import_ms("import openai", 5),
        "modelport": import_ms("import modelport, modelport_openai", 5),
    }
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(r: dict[str, Any]) -> None:
    print(f"openai {r['openai']} on Python {r['python']}, {os.cpu_count()} CPUs; "
          "ratios are modelport / raw SDK (below 1.0x: modelport costs less)\n")  # fmt: skip
    for key, title in (("ask", "chat, sequential"), ("stream", "chat, streamed (20 chunks)")):
        sdk, mp = r[key]["sdk"], r[key]["modelport"]
        print(f"{title} ({mp['calls']} calls each, interleaved):")
        for metric, label in (("p50_us", "p50"), ("p95_us", "p95"), ("cpu_us", "CPU/call")):
            print(f"  {label:9} SDK {sdk[metric]:8.0f} us   modelport {mp[metric]:8.0f} us"
                  f"   {mp[metric] / sdk[metric]:.2f}x")  # fmt: skip
    sdk, mp = r["async"]["sdk"], r["async"]["modelport"]
    print("500 async asks at concurrency 50 (best of 2):")
    for metric in ("wall_s", "cpu_s"):
        print(f"  {metric[:-2]:9} SDK {sdk[metric] * 1000:8.0f} ms   modelport "
              f"{mp[metric] * 1000:8.0f} ms   {mp[metric] / sdk[metric]:.2f}x")  # fmt: skip
    sdk, mp = r["rss_mib"]["sdk"], r["rss_mib"]["modelport"]
    print(f"peak RSS  SDK {sdk:8.1f} MiB  modelport {mp:8.1f} MiB  {mp / sdk:.2f}x")
    sdk, mp = r["import_ms"]["sdk"], r["import_ms"]["modelport"]
    print(f"import    SDK {sdk:8.1f} ms   modelport {mp:8.1f} ms   {mp / sdk:.2f}x"
          "  (the SDK itself loads on first use)")  # fmt: skip


if __name__ == "__main__":
    main()
