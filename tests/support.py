"""What several test modules share: the fuzzing settings, and running a hub call from either
hub to its result."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from hypothesis import HealthCheck, settings

#: Every loader and CLI argument is fuzzed with a thousand generated cases, derandomised (the
#: same cases on every run, so a failure can be reproduced) and with no example database.
FUZZ = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def run(value: Any) -> Any:
    """The value, or the awaited result when a hub method returned a coroutine (so one test
    drives ``Hub`` and ``AsyncHub`` alike)."""
    if inspect.isawaitable(value):

        async def wait() -> Any:
            return await value

        return asyncio.run(wait())
    return value
