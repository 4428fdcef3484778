"""pytest fixtures: add ``pytest_plugins = ["modelport.testing.fixtures"]`` to conftest.py.

* ``fakes``: a fresh :class:`~modelport.testing.FakeBackends` to script.
* ``sleeps``: the :class:`~modelport.testing.RecordingSleep` the hubs wait with.
* ``hub`` / ``async_hub``: hubs wired to ``fakes`` (closed after the test).
* ``no_network``: fails the test if anything tries to leave this machine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from ..async_hub import AsyncHub
from ..hub import Hub
from . import FakeBackends, RecordingSleep, block_network, make_test_async_hub, make_test_hub


@pytest.fixture
def fakes() -> FakeBackends:
    return FakeBackends()


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def hub(fakes: FakeBackends, sleeps: RecordingSleep) -> Iterator[Hub]:
    with make_test_hub(fakes, sleep=sleeps) as hub:
        yield hub


@pytest.fixture
async def async_hub(fakes: FakeBackends, sleeps: RecordingSleep) -> AsyncIterator[AsyncHub]:
    async with make_test_async_hub(fakes, sleep=sleeps) as hub:
        yield hub


@pytest.fixture
def no_network() -> Iterator[None]:
    with block_network():
        yield
