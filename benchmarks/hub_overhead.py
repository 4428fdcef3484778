"""What the core adds to a backend call: the hub against the same backend called directly.

The backend is a fake that does almost nothing, so the difference is the core's own cost (the
limiter check, the retry guard, observers, and for ``ask`` the history, sentiment and storage
orchestration). The comparison against the raw openai SDK lives with the OpenAI plugin's
benchmark.

    python benchmarks/hub_overhead.py [--n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

from modelport import ChatRequest, Message
from modelport.testing import FakeBackends, make_test_async_hub, make_test_hub


def per_call_us(fn: Callable[[], object], n: int, repeats: int = 5) -> float:
    for _ in range(n // 10):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


async def async_per_call_us(fn: Callable[[], object], n: int, repeats: int = 5) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            await fn()  # type: ignore[misc]
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    n = parser.parse_args().n
    fakes = FakeBackends()
    hub = make_test_hub(fakes)
    request = ChatRequest([Message("user", "hello")])

    direct = per_call_us(lambda: fakes.sentiment.analyze("good"), n)
    guarded = per_call_us(lambda: hub.analyze("good"), n)
    print(f"sentiment: direct {direct:6.2f} us, through the hub {guarded:6.2f} us "
          f"(+{guarded - direct:.2f} us, {guarded / direct:.2f}x)")  # fmt: skip

    chat = per_call_us(lambda: fakes.chat.complete(request), n)
    ask = per_call_us(lambda: hub.ask("hello"), n // 10)
    print(f"chat: backend alone {chat:6.2f} us, hub.ask (chat, sentiment, create, append "
          f"the turn) {ask:6.2f} us")  # fmt: skip

    async def run_async() -> None:
        ahub = make_test_async_hub(fakes)
        direct_a = await async_per_call_us(lambda: fakes.chat.acomplete(request), n)
        guarded_a = await async_per_call_us(ahub.models, n)
        plain_a = await async_per_call_us(fakes.chat.amodels, n)
        print(f"async: acomplete alone {direct_a:6.2f} us; models direct {plain_a:6.2f} us, "
              f"through AsyncHub {guarded_a:6.2f} us (+{guarded_a - plain_a:.2f} us)")  # fmt: skip

    asyncio.run(run_async())


if __name__ == "__main__":
    main()
