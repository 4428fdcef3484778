"""Testing helpers for host applications and plugin authors.

* Scripted fakes for every capability (:class:`FakeChat`, :class:`FakeVision`,
  :class:`FakeSentiment`, :class:`FakeTrainer`) and an in-memory store (:class:`MemoryStore`),
  bundled as one plugin by :class:`FakeBackends`; :class:`FakeStatusTrainer`, a trainer
  without events, is a plugin of its own.
* :func:`make_test_hub` / :func:`make_test_async_hub`: a hub wired to the fakes, with no config
  file, no entry points, and no real sleeping (waits are recorded in :class:`RecordingSleep`).
* :func:`block_network`: fails a test that would reach the network.
* pytest fixtures in :mod:`modelport.testing.fixtures`: add
  ``pytest_plugins = ["modelport.testing.fixtures"]`` to your ``conftest.py``.

Loaded as a plugin (``MODELPORT_PLUGINS=modelport.testing``), this module offers the default
fakes (an echoing chat backend, an in-memory store, ...) to try modelport without any vendor.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ..async_hub import AsyncHub
from ..config import load_settings
from ..hookspecs import hookimpl
from ..hub import Hub
from ..plugins import Plugins, make_plugins
from ..registry import BackendRegistry
from ._fakes import (
    FakeBackends,
    FakeChat,
    FakeSentiment,
    FakeStatusTrainer,
    FakeTrainer,
    FakeVision,
    MemoryStore,
)
from ._network import NetworkBlockedError, block_network

if "pytest" in sys.modules:  # under pytest: let the suites' failed asserts show their values
    sys.modules["pytest"].register_assert_rewrite("modelport.testing.conformance")

__all__ = [
    "FakeBackends",
    "FakeChat",
    "FakeSentiment",
    "FakeStatusTrainer",
    "FakeTrainer",
    "FakeVision",
    "MemoryStore",
    "NetworkBlockedError",
    "RecordingSleep",
    "TINY_PNG",
    "block_network",
    "make_test_async_hub",
    "make_test_hub",
    "make_test_plugins",
]

#: A valid 2x2 red PNG (79 bytes), for tests that need a real image.
TINY_PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x02\x00\x00\x00\x02\x08\x02\x00\x00"
    b"\x00\xfd\xd4\x9as\x00\x00\x00\x16IDATx\x9cc<!'\xc7\xc0\xc0\xc0\xc4\xc0\xc0\xc0\xc0\xc0"
    b"\x00\x00\r\x04\x01\x08}q\xcaf\x00\x00\x00\x00IEND\xaeB`\x82"
)


@attrs.define
class RecordingSleep:
    """Stands in for ``time.sleep`` / ``asyncio.sleep``: records each wait, returns at once."""

    waits: list[float] = attrs.field(factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def make_test_plugins(fakes: FakeBackends, *extra: object) -> Plugins:
    """Plugins holding ``fakes`` and ``extra`` plugin objects, without entry points."""
    return make_plugins(autoload=False, plugins=[("fakes", fakes), *extra])


def _settings(overrides: Mapping[str, Any] | None) -> Any:
    base: dict[str, Any] = {"capabilities": FakeBackends.capabilities()}
    for key, value in (overrides or {}).items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, Mapping) else value
    return load_settings(overrides=base, env={}, search=False)


def make_test_hub(
    fakes: FakeBackends | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    plugins: Sequence[object] = (),
    sleep: RecordingSleep | None = None,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Hub:
    """A :class:`Hub` on the fakes: no config file, no environment, no entry points.

    :param fakes: the fakes to use (default: fresh ones); script them before or after.
    :param overrides: settings, e.g. ``{"retry": {"attempts": 2}}`` or assistants.
    :param plugins: more plugin objects to register (observers, say).
    :param sleep: records retry and rate-limit waits instead of sleeping.
    :param env: the environment backends read their keys from (default: empty).
    :param clock: the circuit breakers' clock (a fake moves a circuit to its reset at once).
    """
    fakes = fakes if fakes is not None else FakeBackends()
    sleep = sleep if sleep is not None else RecordingSleep()
    return Hub(
        _settings(overrides),
        plugins=make_test_plugins(fakes, *plugins),
        env=dict(env or {}),
        sleep=sleep,
        asleep=sleep.asleep,
        clock=clock,
    )


def make_test_async_hub(
    fakes: FakeBackends | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    plugins: Sequence[object] = (),
    sleep: RecordingSleep | None = None,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncHub:
    """The :class:`AsyncHub` twin of :func:`make_test_hub`."""
    fakes = fakes if fakes is not None else FakeBackends()
    sleep = sleep if sleep is not None else RecordingSleep()
    return AsyncHub(
        _settings(overrides),
        plugins=make_test_plugins(fakes, *plugins),
        env=dict(env or {}),
        sleep=sleep,
        asleep=sleep.asleep,
        clock=clock,
    )


@hookimpl
def modelport_register_backends(registry: BackendRegistry) -> None:
    """Offer a fresh set of default fakes when this module is loaded as a plugin."""
    FakeBackends().modelport_register_backends(registry)
