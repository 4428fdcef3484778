"""Anthropic's Messages API faked with respx at the transport (shapes from the public API
reference), and hubs wired to it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx
import pytest
import respx

import modelport_anthropic
from modelport import AsyncHub, Hub
from modelport.testing import FakeBackends, RecordingSleep, make_test_async_hub, make_test_hub

BASE = "https://api.anthropic.test"
#: Shaped like a real key (so redaction is tested for real), but built at run time.
KEY = "sk-ant-" + "api03-" + "Qx7" * 30
MODEL = "claude-sonnet-5"
PLUGINS = [("anthropic", modelport_anthropic)]


def message(
    text: str | None = "Hello!",
    *,
    model: str = MODEL,
    stop_reason: str | None = "end_turn",
    usage: Mapping[str, Any] | None = None,
    content: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Message object, as ``POST /v1/messages`` answers."""
    blocks = list(content) if content is not None else [{"type": "text", "text": text}]
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "content": blocks,
        "model": model,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": dict(usage or {"input_tokens": 12, "output_tokens": 3}),
    }


def ok(body: Any, *, request_id: str = "req_011CSHoEeqs5C35K2UUqR7Fy") -> httpx.Response:
    return httpx.Response(200, json=body, headers={"request-id": request_id})


def error(
    status: int, kind: str = "invalid_request_error", text: str = "nope", **headers: str
) -> httpx.Response:
    """An error answer: ``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
    body = {
        "type": "error",
        "error": {"type": kind, "message": text},
        "request_id": f"req_{status}",
    }
    return httpx.Response(status, json=body, headers={"request-id": f"req_{status}", **headers})


#: Each HTTP failure with the error type Anthropic sends with it.
ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def event(kind: str, **data: Any) -> str:
    """One server-sent event, named as Anthropic names them, its type in its data too."""
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"


def message_start(model: str = MODEL, **usage: int) -> str:
    start = message(None, model=model, stop_reason=None, content=[])
    start["usage"] = {"input_tokens": 25, "output_tokens": 1, **usage}
    return event("message_start", message=start)


def text_events(*pieces: str, index: int = 0) -> list[str]:
    """A text block streamed in ``pieces``: its start, one delta each, its stop."""
    return [
        event("content_block_start", index=index, content_block={"type": "text", "text": ""}),
        *(
            event("content_block_delta", index=index, delta={"type": "text_delta", "text": p})
            for p in pieces
        ),
        event("content_block_stop", index=index),
    ]


def message_end(stop_reason: str = "end_turn", output_tokens: int = 15, **usage: int) -> list[str]:
    """``message_delta`` with the stop reason and cumulative usage, then ``message_stop``."""
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return [
        event("message_delta", delta=delta, usage={"output_tokens": output_tokens, **usage}),
        event("message_stop"),
    ]


def streamed(*pieces: str, stop_reason: str = "end_turn") -> list[str]:
    """A whole stream of one text block, with a ping as the API sends them."""
    return [
        message_start(),
        *text_events(*pieces)[:1],
        event("ping"),
        *text_events(*pieces)[1:],
        *message_end(stop_reason),
    ]


def sse(*events: str) -> httpx.Response:
    return httpx.Response(
        200,
        content="".join(events).encode(),
        headers={"content-type": "text/event-stream", "request-id": "req_stream"},
    )


def settings(
    retry: Mapping[str, Any] | None = None,
    more: Mapping[str, Any] | None = None,
    **backend_settings: Any,
) -> dict[str, Any]:
    backend_settings.setdefault("base_url", BASE)
    capabilities = {**FakeBackends.capabilities(), "chat": "anthropic", "vision": "anthropic"}
    return {
        "capabilities": capabilities,
        "backends": {"anthropic": backend_settings},
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
        *,
        env: Mapping[str, str] | None = None,
        retry: Mapping[str, Any] | None = None,
        more: Mapping[str, Any] | None = None,
        **backend_settings: Any,
    ) -> Hub:
        hub = make_test_hub(
            overrides=settings(retry, more, **backend_settings),
            plugins=PLUGINS,
            sleep=sleeps,
            env={"ANTHROPIC_API_KEY": KEY} if env is None else env,
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
        *,
        env: Mapping[str, str] | None = None,
        retry: Mapping[str, Any] | None = None,
        more: Mapping[str, Any] | None = None,
        **backend_settings: Any,
    ) -> AsyncHub:
        hub = make_test_async_hub(
            overrides=settings(retry, more, **backend_settings),
            plugins=PLUGINS,
            sleep=sleeps,
            env={"ANTHROPIC_API_KEY": KEY} if env is None else env,
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
