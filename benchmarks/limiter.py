"""Limiter accuracy: processes sharing one rate limit through Redis admit at most the budget
plus the burst, where separate in-process limits admit one budget each.

    python benchmarks/limiter.py                      # 4 processes, 60 a minute, 60 s
    python benchmarks/limiter.py --seconds 10         # a quick run
    python benchmarks/limiter.py --url redis://...    # default: $MODELPORT_TEST_REDIS_URL,
                                                      # else a redis-server of its own

Each process calls ``acquire`` in a loop for ``--seconds`` and counts what was admitted; the
limit is ``requests_per_minute = --budget`` with ``burst = --burst``. The allowance printed is
``burst + budget * span / 60``, the span being what the Redis server's clock saw from before
the processes started to after they ended. Reported, never asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path


def worker(url: str, key: str, seconds: float, budget: float, burst: float, local: bool) -> None:
    from modelport.resilience import Limiter, RateLimiter

    limiter: Limiter
    if local:
        limiter = RateLimiter(requests_per_minute=budget, burst=burst)
    else:
        from modelport._shared_limits import SharedRateLimiter

        limiter = SharedRateLimiter(
            "bench", url, key=key, requests_per_minute=budget, burst=burst, on_down="refuse"
        )
    print("ready", flush=True)
    sys.stdin.readline()  # every process starts at once
    end = time.monotonic() + seconds

    def sleep(wanted: float) -> None:
        time.sleep(min(wanted, max(end - time.monotonic(), 0.0)))

    admitted = 0
    while True:
        limiter.acquire(sleep=sleep)
        if time.monotonic() >= end:
            break
        admitted += 1
    print(admitted, flush=True)


def server_time(url: str) -> float:
    import redis

    with redis.Redis.from_url(url) as client:
        seconds, micros = client.time()
    return float(seconds) + float(micros) / 1e6


def run(args: argparse.Namespace, url: str, *, local: bool) -> tuple[list[int], float]:
    key = f"modelport-bench:{uuid.uuid4().hex}"
    argv = [sys.executable, __file__, "--worker", "--url", url, "--key", key]
    argv += ["--seconds", str(args.seconds), "--budget", str(args.budget)]
    argv += ["--burst", str(args.burst)] + (["--local"] if local else [])
    children = [
        subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(args.processes)
    ]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    started = server_time(url)
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    counts = [int(child.communicate()[0].split()[-1]) for child in children]
    return counts, server_time(url) - started


def own_server() -> tuple[str, Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    import services  # type: ignore[import-not-found]  # tools/services.py

    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("no Redis: pass --url, set MODELPORT_TEST_REDIS_URL, or install it")
    base = Path(tempfile.mkdtemp(prefix="modelport-bench-redis-"))
    port = services._free_port()
    services.start_redis_server(port, base, server)
    return f"redis://127.0.0.1:{port}/0", base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--budget", type=float, default=60.0, help="requests a minute")
    parser.add_argument("--burst", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--url", default=os.environ.get("MODELPORT_TEST_REDIS_URL"))
    parser.add_argument("--no-local", action="store_true", help="skip the in-process run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--local", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.url, args.key, args.seconds, args.budget, args.burst, args.local)
        return
    url, base = (args.url, None) if args.url else own_server()
    try:
        print(
            f"{args.processes} processes, {args.budget:g} requests a minute, burst "
            f"{args.burst:g}, {args.seconds:g} s each"
        )
        runs = [("shared (Redis)", False)] + ([] if args.no_local else [("per process", True)])
        for label, local in runs:
            counts, span = run(args, url, local=local)
            allowance = args.burst + args.budget * span / 60
            print(
                f"{label:>15}: admitted {sum(counts)} ({', '.join(map(str, counts))}) over "
                f"{span:.1f} s; shared allowance burst + budget = {allowance:.1f}"
            )
    finally:
        if base is not None:
            import services

            services.stop_redis_server(base)
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
