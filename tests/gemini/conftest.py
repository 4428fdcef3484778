"""The Gemini API faked with respx at the transport (shapes from Google's public REST
reference, ``v1beta``), and hubs wired to it, sync or async."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
import respx

import modelport_gemini
from modelport import Answer, AsyncHub, Hub, ModelInfo, Reply, StreamDelta
from modelport.testing import (
    TINY_PNG,
    FakeBackends,
    RecordingSleep,
    make_test_async_hub,
    make_test_hub,
)

BASE = "https://gemini.test/v1beta"
#: Shaped like a real key (so redaction is tested for real), but built at run time.
KEY = "AIza" + "Sy" + "Q7xw" * 8 + "k9Z"
MODEL = "gemini-3.5-flash"
GENERATE = f"/models/{MODEL}:generateContent"
STREAM = f"/models/{MODEL}:streamGenerateContent"
PNG = TINY_PNG
USAGE = {"promptTokenCount": 12, "candidatesTokenCount": 3, "totalTokenCount": 15}


def answer(
    text: str | None = "Hello!",
    *,
    finish: str | None = "STOP",
    usage: Mapping[str, int] | None = USAGE,
    thought: str | None = None,
    model: str = MODEL,
) -> dict[str, Any]:
    """A ``GenerateContentResponse`` with one candidate (a stream chunk has the same shape)."""
    parts: list[dict[str, Any]] = []
    if thought is not None:
        parts.append({"text": thought, "thought": True})
    if text is not None:
        parts.append({"text": text})
    candidate: dict[str, Any] = {"index": 0}
    if parts:
        candidate["content"] = {"role": "model", "parts": parts}
    if finish is not None:
        candidate["finishReason"] = finish
    body: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": "r-1"}
    if usage is not None:
        body["usageMetadata"] = dict(usage)
    return body


def blocked_prompt(reason: str = "SAFETY") -> dict[str, Any]:
    return {
        "promptFeedback": {"blockReason": reason, "safetyRatings": []},
        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
        "modelVersion": MODEL,
    }


def ok(body: Any) -> httpx.Response:
    return httpx.Response(200, json=body)


def google_error(
    code: int, message: str, status: str, *details: Mapping[str, Any], **headers: str
) -> httpx.Response:
    """Google's error body: ``{"error": {"code", "message", "status", "details"}}``."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = [dict(d) for d in details]
    return httpx.Response(code, json={"error": error}, headers=headers)


def retry_info(delay: str) -> dict[str, str]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


BAD_KEY = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "API_KEY_INVALID",
    "domain": "googleapis.com",
    "metadata": {"service": "generativelanguage.googleapis.com"},
}


def chunk(
    text: str | None = None, *, finish: str | None = None, usage: Mapping[str, int] | None = None
) -> str:
    """One SSE event of ``streamGenerateContent?alt=sse`` (Google ends events with CRLFs)."""
    body = answer(text, finish=finish, usage=usage)
    return f"data: {json.dumps(body)}\r\n\r\n"


def event(body: Any) -> str:
    return f"data: {json.dumps(body)}\r\n\r\n"


def sse(*events: str) -> httpx.Response:
    return httpx.Response(
        200, content="".join(events).encode(), headers={"content-type": "text/event-stream"}
    )


def sent(route: respx.Route, index: int = -1) -> dict[str, Any]:
    """The JSON body of a request ``route`` received."""
    body: dict[str, Any] = json.loads(route.calls[index].request.content)
    return body


def overrides(
    retry: Mapping[str, Any] | None = None,
    more: Mapping[str, Any] | None = None,
    **backend_settings: Any,
) -> dict[str, Any]:
    backend_settings.setdefault("base_url", BASE)
    return {
        "capabilities": {**FakeBackends.capabilities(), "chat": "gemini", "vision": "gemini"},
        "backends": {"gemini": backend_settings},
        "retry": {"attempts": 3, "jitter_s": 0, **(retry or {})},
        **(more or {}),
    }


class Caller:
    """A hub's calls made the same way whichever hub it is: ``Hub`` directly, ``AsyncHub``
    each on its own event loop (as a sync test can)."""

    def __init__(self, hub: Hub | AsyncHub) -> None:
        self.hub = hub
        self.is_async = isinstance(hub, AsyncHub)

    def ask(self, text: str, **kwargs: Any) -> Answer:
        if isinstance(self.hub, AsyncHub):
            return asyncio.run(self.hub.ask(text, **kwargs))
        return self.hub.ask(text, **kwargs)

    def stream(self, text: str, seen: list[StreamDelta] | None = None, **kwargs: Any) -> Answer:
        """Stream the answer to ``text`` whole (the deltas into ``seen``); its answer."""
        seen = [] if seen is None else seen
        if isinstance(self.hub, AsyncHub):
            hub = self.hub

            async def drain() -> Answer | None:
                stream = await hub.stream(text, **kwargs)
                async for delta in stream:
                    seen.append(delta)
                return stream.answer

            found = asyncio.run(drain())
        else:
            stream = self.hub.stream(text, **kwargs)
            seen.extend(stream)
            found = stream.answer
        assert found is not None
        return found

    def models(self) -> tuple[ModelInfo, ...]:
        if isinstance(self.hub, AsyncHub):
            return asyncio.run(self.hub.models())
        return self.hub.models()

    def describe(self, *images: Any, **kwargs: Any) -> Reply:
        if isinstance(self.hub, AsyncHub):
            return asyncio.run(self.hub.describe_image(*images, **kwargs))
        return self.hub.describe_image(*images, **kwargs)

    def close(self) -> None:
        if isinstance(self.hub, AsyncHub):
            asyncio.run(self.hub.aclose())
        else:
            self.hub.close()


MakeCaller = Callable[..., Caller]


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """The fake API at :data:`BASE`; a request to any unmocked route fails the test."""
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture(params=["sync", "async"])
def make(request: pytest.FixtureRequest, sleeps: RecordingSleep) -> Iterator[MakeCaller]:
    """Makes a :class:`Caller` on a ``Hub`` or an ``AsyncHub`` (each test runs with both)."""
    callers: list[Caller] = []

    def make_caller(
        *,
        env: Mapping[str, str] | None = None,
        retry: Mapping[str, Any] | None = None,
        more: Mapping[str, Any] | None = None,
        **backend_settings: Any,
    ) -> Caller:
        factory = make_test_async_hub if request.param == "async" else make_test_hub
        hub = factory(
            overrides=overrides(retry, more, **backend_settings),
            plugins=[("gemini", modelport_gemini)],
            sleep=sleeps,
            env={"GEMINI_API_KEY": KEY} if env is None else env,
        )
        callers.append(Caller(hub))
        return callers[-1]

    yield make_caller
    for caller in callers:
        caller.close()


def no_key_in_urls(api: respx.MockRouter) -> None:
    """Every request carried the key in its header, and none in its URL."""
    assert api.calls, "no request was sent"
    for call in api.calls:
        assert call.request.headers["x-goog-api-key"] == KEY
        assert "key=" not in str(call.request.url)
        assert KEY not in str(call.request.url)
