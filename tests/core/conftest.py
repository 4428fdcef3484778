"""The ``hub_kind`` fixture: a hub test that takes it runs once against each hub."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..support import HUB_KINDS, close_views


@pytest.fixture(params=HUB_KINDS)
def hub_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """``"sync"`` or ``"async"``: build the hub with ``tests.support.make_hub(hub_kind, ...)``
    (the async hubs it made, and their event loops, are closed after the test)."""
    kind: str = request.param
    yield kind
    close_views()
