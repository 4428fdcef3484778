from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from modelport.testing import block_network

from .support import HUB_KINDS, close_views

pytest_plugins = ["modelport.testing.fixtures"]


@pytest.fixture(autouse=True)
def _guard_network() -> Iterator[None]:
    """No test may reach the network; respx fakes HTTP at the transport."""
    with block_network():
        yield


@pytest.fixture(autouse=True)
def _isolate(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No MODELPORT_* variable, ./modelport.toml or user config leaks in; structlog is reset."""
    import os

    for name in list(os.environ):
        if name.startswith(("MODELPORT_", "OPENAI_", "AZURE_OPENAI_")) or name.endswith("_API_KEY"):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.chdir(home)
    yield
    structlog.reset_defaults()


@pytest.fixture(params=HUB_KINDS)
def hub_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """``"sync"`` or ``"async"``: a hub test that takes it runs once against each hub; build
    the hub with ``tests.support.make_hub(hub_kind, ...)`` (the async hubs it made, and their
    event loops, are closed after the test)."""
    kind: str = request.param
    yield kind
    close_views()
