"""Ollama's API faked with respx at the transport: no server, no network."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx
from ollama_fake import BASE, TAGS


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """Ollama at BASE; a request to any route not mocked fails the test."""
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.get("/api/tags").mock(return_value=httpx.Response(200, json=TAGS))
        yield router
