"""Async SDK clients spread over small connection pools.

httpcore's async connection pool (under ``httpx.AsyncClient``) re-scans every connection for
every queued request each time a request starts or ends, so its CPU cost per request grows
with the number of open connections: measured at concurrency 50 against a local server, one
pool of 50 connections cost 3.8 ms of CPU per request, ten pools of 5 cost 0.8 ms. So the
backend keeps several small pools and sends each request to the least busy one, the
lowest-numbered first: a caller that sends one request at a time only ever uses (and opens
connections in) the first pool, and the others open only under concurrent load.

Each event loop gets its own pools (an ``httpx.AsyncClient``'s connections belong to the loop
they were opened on), so a host that runs ``asyncio.run`` twice gets working clients twice.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import openai

__all__ = ["AsyncClientPool", "CONNECTIONS_PER_POOL"]

#: Connections per pool; ``max_connections`` is split into pools of this size.
CONNECTIONS_PER_POOL = 8


class AsyncClientPool:
    """Up to ``ceil(max_connections / CONNECTIONS_PER_POOL)`` async SDK clients for one event
    loop, created when first needed by ``make(connections)``."""

    __slots__ = ("_clients", "_load", "_make", "_sizes", "loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        make: Callable[[int], openai.AsyncOpenAI],
        max_connections: int,
    ) -> None:
        count = max(1, math.ceil(max_connections / CONNECTIONS_PER_POOL))
        base, extra = divmod(max_connections, count)
        self.loop = loop
        self._make = make
        self._sizes = [base + (1 if i < extra else 0) for i in range(count)]
        self._clients: list[openai.AsyncOpenAI | None] = [None] * count
        self._load = [0] * count

    def acquire(self) -> tuple[int, openai.AsyncOpenAI]:
        """The least busy client (the lowest index among equals), counted busy until
        :meth:`release`."""
        load = self._load
        index = load.index(min(load))
        client = self._clients[index]
        if client is None:
            client = self._clients[index] = self._make(self._sizes[index])
        load[index] += 1
        return index, client

    def release(self, index: int) -> None:
        self._load[index] -= 1

    def first(self) -> openai.AsyncOpenAI:
        """The first client, for calls too rare to spread (uploads)."""
        client = self._clients[0]
        if client is None:
            client = self._clients[0] = self._make(self._sizes[0])
        return client

    async def aclose(self) -> None:
        clients, self._clients = self._clients, [None] * len(self._clients)
        for client in clients:
            if client is not None:
                await client.close()
