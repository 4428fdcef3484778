"""An OpenAI-compatible API faked with respx at the transport, and hubs wired to it."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import date
from typing import Any

import httpx
import pytest
import respx

import modelport_openai
import modelport_openai._backend
from modelport import AsyncHub, Hub
from modelport.testing import (
    TINY_PNG,
    FakeBackends,
    RecordingSleep,
    make_test_async_hub,
    make_test_hub,
)

BASE = "https://api.test/v1"
#: Shaped like a real key (so redaction is tested for real), but built at run time.
KEY = "sk-" + "proj-" + "Zq7" * 10
#: The day the tests run on, whatever the clock says: before OpenAI's fine-tuning closes.
TODAY = date(2026, 11, 29)


@pytest.fixture(autouse=True)
def _today(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backends built in a test see :data:`TODAY` (a test can set ``backend.today``)."""
    monkeypatch.setattr(modelport_openai._backend, "_utc_today", lambda: TODAY)


def completion(
    text: str = "Hello!", *, model: str = "gpt-6-luna", finish: str = "stop", **extra: Any
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        **extra,
    }


def ok(body: Any, *, request_id: str = "req_123", **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body, headers={"x-request-id": request_id, **headers})


def error(
    status: int, message: str = "nope", *, code: str | None = None, **headers: str
) -> httpx.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return httpx.Response(status, json=body, headers={"x-request-id": f"req_{status}", **headers})


def chunk(
    text: str | None = None,
    *,
    finish: str | None = None,
    usage: Mapping[str, int] | None = None,
) -> str:
    choices = []
    if text is not None or finish is not None:
        delta = {"content": text} if text is not None else {}
        choices = [{"index": 0, "delta": delta, "finish_reason": finish}]
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-6-luna",
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = dict(usage)
    return f"data: {json.dumps(body)}\n\n"


def sse(*events: str, done: bool = True) -> httpx.Response:
    payload = "".join(events) + ("data: [DONE]\n\n" if done else "")
    return httpx.Response(
        200, content=payload.encode(), headers={"content-type": "text/event-stream"}
    )


PNG = TINY_PNG


class OnLoop:
    """A respx side effect answering ``response``, noting whether each request was sent from
    the event loop's thread (an async backend method) rather than a worker thread (a sync
    method the async hub offloads)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.threads: list[bool] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.threads.append(threading.current_thread() is threading.main_thread())
        return self.response


def settings(
    backend: str = "openai",
    retry: Mapping[str, Any] | None = None,
    more: Mapping[str, Any] | None = None,
    **backend_settings: Any,
) -> dict[str, Any]:
    if backend == "openai":
        backend_settings.setdefault("base_url", BASE)
    capabilities = {**FakeBackends.capabilities(), "chat": backend, "vision": backend}
    if backend in ("openai", "azure"):
        capabilities["training"] = backend
    return {
        "capabilities": capabilities,
        "backends": {backend: backend_settings},
        "retry": {"attempts": 3, "jitter_s": 0, **(retry or {})},
        **(more or {}),
    }


MakeHub = Callable[..., Hub]
MakeAsyncHub = Callable[..., AsyncHub]


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """The fake API at :data:`BASE`; a request to any unmocked route fails the test."""
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def make_hub(sleeps: RecordingSleep) -> Iterator[MakeHub]:
    hubs: list[Hub] = []

    def make(
        backend: str = "openai",
        *,
        env: Mapping[str, str] | None = None,
        retry: Mapping[str, Any] | None = None,
        more: Mapping[str, Any] | None = None,
        **backend_settings: Any,
    ) -> Hub:
        hub = make_test_hub(
            overrides=settings(backend, retry, more, **backend_settings),
            plugins=[("openai", modelport_openai)],
            sleep=sleeps,
            env={"OPENAI_API_KEY": KEY} if env is None else env,
        )
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close()


@pytest.fixture
async def make_async_hub(sleeps: RecordingSleep) -> AsyncIterator[MakeAsyncHub]:
    hubs: list[AsyncHub] = []

    def make(
        backend: str = "openai",
        *,
        env: Mapping[str, str] | None = None,
        retry: Mapping[str, Any] | None = None,
        more: Mapping[str, Any] | None = None,
        **backend_settings: Any,
    ) -> AsyncHub:
        hub = make_test_async_hub(
            overrides=settings(backend, retry, more, **backend_settings),
            plugins=[("openai", modelport_openai)],
            sleep=sleeps,
            env={"OPENAI_API_KEY": KEY} if env is None else env,
        )
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        await hub.aclose()


def sent(route: respx.Route, index: int = -1) -> dict[str, Any]:
    """The JSON body of a request ``route`` received."""
    body: dict[str, Any] = json.loads(route.calls[index].request.content)
    return body
