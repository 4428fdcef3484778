"""The three HTTP backends against each other: OpenAI, Anthropic and Gemini through the hub,
each talking to the same local fake server (``fake_openai_server.py``, which speaks all three
APIs, started on 127.0.0.1 in its own process).

    python benchmarks/backends.py [--n 400] [--rounds 8] [--json FILE]

Everything is measured in one run, interleaved (openai, anthropic, gemini, openai, ... in
rounds), and reported as ratios to the OpenAI backend:

* ``hub.ask`` (chat only: no sentiment backend is configured for any of them, and the
  dialogue is kept in an in-memory store): wall-clock p50 and p95, and CPU time per call in
  this process;
* the same for ``hub.stream``, a reply of 20 text pieces from each API.

It also prints each plugin's lines: all of its ``.py`` files, and its backend class's module
(``_backend.py``), read from the source tree. The server's CPU is not counted (it is another
process). Timing is reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PLUGINS = HERE.parent / "plugins"
sys.path.insert(0, str(HERE))

from openai_plugin import QUESTION, hub_ask, hub_stream, interleaved, local_server  # noqa: E402

BACKENDS = ("openai", "anthropic", "gemini")
#: Where each backend's ``base_url`` points, under the server's root.
PATHS = {"openai": "/v1", "anthropic": "", "gemini": "/v1beta"}
ENV = {
    "OPENAI_API_KEY": "bench-key",
    "ANTHROPIC_API_KEY": "bench-key",
    "GEMINI_API_KEY": "bench-key",
}


def make_hub(backend: str, root: str) -> Any:
    """A hub whose chat is ``backend`` (pointed at the fake server) and whose storage is an
    in-memory store; nothing else is configured (no sentiment, for any of them)."""
    import importlib

    from modelport import Hub, hookimpl, load_settings, make_plugins
    from modelport.testing import MemoryStore

    class StoreOnly:
        @hookimpl
        def modelport_register_backends(self, registry: Any) -> None:
            registry.add("memory", lambda _context: MemoryStore(), capabilities=["storage"])

    settings = load_settings(
        overrides={
            "capabilities": {"chat": backend, "storage": "memory"},
            "backends": {backend: {"base_url": root + PATHS[backend]}},
        },
        env={},
        search=False,
    )
    plugin = importlib.import_module(f"modelport_{backend}")
    plugins = make_plugins(autoload=False, plugins=[(backend, plugin), ("store", StoreOnly())])
    return Hub(settings, plugins=plugins, env=dict(ENV))


def lines(path: Path) -> int:
    """Lines of a file (every line, blank and comment lines included)."""
    return len(path.read_text(encoding="utf-8").splitlines())


def line_counts() -> dict[str, dict[str, int]]:
    """Each plugin's lines: all its ``.py`` files, and its backend class's module."""
    counts = {}
    for backend in BACKENDS:
        package = PLUGINS / f"modelport_{backend}"
        files = sorted(package.rglob("*.py"))
        counts[backend] = {
            "py_files": len(files),
            "total": sum(lines(f) for f in files),
            "backend_module": lines(package / "_backend.py"),
        }
    return counts


def check(hubs: dict[str, Any]) -> None:
    """Each backend reads the fake's replies whole (so no one is timed failing fast)."""
    asked = {name: hub_ask(hub) for name, hub in hubs.items()}
    streamed = {name: hub_stream(hub) for name, hub in hubs.items()}
    if len(set(asked.values())) != 1 or len(set(streamed.values())) != 1:
        raise RuntimeError(f"the backends read different replies: {asked} {streamed}")


# --- report ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="sequential asks per backend")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    results: dict[str, Any] = {"python": sys.version.split()[0], "question": QUESTION}
    results["lines"] = line_counts()
    with local_server() as base_url:
        root = base_url.removesuffix("/v1")
        hubs = {backend: make_hub(backend, root) for backend in BACKENDS}
        check(hubs)
        results["ask"] = interleaved(
            {name: (lambda hub=hub: hub_ask(hub)) for name, hub in hubs.items()},
            args.n,
            args.rounds,
        )
        results["stream"] = interleaved(
            {name: (lambda hub=hub: hub_stream(hub)) for name, hub in hubs.items()},
            args.n // 2,
            args.rounds,
        )
        for hub in hubs.values():
            hub.close()
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(r: dict[str, Any]) -> None:
    print(f"Python {r['python']}, {os.cpu_count()} CPUs; ratios are to the OpenAI backend "
          "(below 1.0x: it costs less)\n")  # fmt: skip
    print("lines of each plugin (every line of its .py files; the backend class's module):")
    for name in BACKENDS:
        c = r["lines"][name]
        print(f"  {name:10} {c['total']:5} in {c['py_files']} files   _backend.py "
              f"{c['backend_module']:4}")  # fmt: skip
    for key, title in (("ask", "hub.ask, sequential"), ("stream", "hub.stream, 20 pieces")):
        base = r[key]["openai"]
        print(f"\n{title} ({base['calls']} calls each, interleaved):")
        print(f"  {'':10} {'p50':>8} {'p95':>8} {'CPU/call':>9}   p50 ratio  CPU ratio")
        for name in BACKENDS:
            m = r[key][name]
            p50, cpu = m["p50_us"] / base["p50_us"], m["cpu_us"] / base["cpu_us"]
            print(f"  {name:10} {m['p50_us']:6.0f}us {m['p95_us']:6.0f}us {m['cpu_us']:7.0f}us"
                  f"   {p50:8.2f}x {cpu:8.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
