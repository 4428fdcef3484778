"""The Anthropic backend passes the chat and vision conformance suites, its API faked with
respx at the transport."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import respx

from modelport import Usage
from modelport.testing.conformance import ChatConformance, VisionConformance

from .conftest import (
    BASE,
    ERRORS,
    KEY,
    MODEL,
    PLUGINS,
    error,
    event,
    message,
    message_end,
    message_start,
    ok,
    sse,
    streamed,
    text_events,
)

STATUS = {"auth": 401, "rate_limit": 429, "server": 500, "bad_request": 400}


class AnthropicFake:
    """The Messages API at BASE with a key, a model list, and failures on messages."""

    backend = "anthropic"
    plugins: ClassVar[Sequence[tuple[str, object]] | None] = PLUGINS
    model: ClassVar[str | None] = MODEL
    api: respx.MockRouter

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"base_url": BASE}

    def env(self) -> Mapping[str, str]:
        return {"ANTHROPIC_API_KEY": KEY}

    @pytest.fixture(autouse=True)
    def _router(self, api: respx.MockRouter) -> None:
        self.api = api
        listing = {
            "data": [{"type": "model", "id": MODEL, "display_name": "Claude Sonnet 5",
                      "created_at": "2026-05-01T00:00:00Z"}],
            "has_more": False, "first_id": MODEL, "last_id": MODEL,
        }  # fmt: skip
        api.get("/v1/models").mock(return_value=ok(listing))

    def arrange_failure(self, kind: str) -> None:
        status = STATUS[kind]
        self.api.post("/v1/messages").mock(return_value=error(status, ERRORS[status], kind))


class TestAnthropicChat(AnthropicFake, ChatConformance):
    def arrange_reply(self, text: str) -> None:
        words = text.split(" ")
        pieces = [f"{w} " for w in words[:-1]] + [words[-1]]

        def answer(request: httpx.Request) -> httpx.Response:
            if json.loads(request.content).get("stream"):
                return sse(*streamed(*pieces))
            return ok(message(text))

        self.api.post("/v1/messages").mock(side_effect=answer)

    def arrange_stream(
        self,
        pieces: Sequence[str],
        *,
        usage: Usage | None = None,
        cut: bool = False,
        error_mid_stream: bool = False,
    ) -> None:
        tokens = usage or Usage(25, 15)
        events = [message_start(input_tokens=tokens.prompt_tokens), *text_events(*pieces)]
        if error_mid_stream:
            events.append(event("error", error={"type": "overloaded_error", "message": "busy"}))
        elif not cut:
            events += message_end(output_tokens=tokens.completion_tokens)
        self.api.post("/v1/messages").mock(return_value=sse(*events))

    def arrange_complete(self, text: str, *, usage: Usage) -> None:
        tokens = {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}
        self.api.post("/v1/messages").mock(return_value=ok(message(text, usage=tokens)))

    def arrange_rate_limit(self, retry_after: float) -> None:
        reply = error(429, ERRORS[429], "slow down", **{"retry-after": str(retry_after)})
        self.api.post("/v1/messages").mock(return_value=reply)

    def last_request_messages(self) -> Sequence[tuple[str, str]]:
        body = json.loads(self.api.calls.last.request.content)
        system = [("system", _text(body["system"]))] if body.get("system") else []
        return system + [(m["role"], _text(m["content"])) for m in body["messages"]]


def _text(content: str | list[dict[str, Any]]) -> str:
    """The text of a string or of a list of content blocks."""
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content)


class TestAnthropicVision(AnthropicFake, VisionConformance):
    def arrange_reply(self, text: str) -> None:
        self.api.post("/v1/messages").mock(return_value=ok(message(text)))
