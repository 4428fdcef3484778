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

from modelport.testing.conformance import ChatConformance, VisionConformance

from .conftest import BASE, ERRORS, KEY, MODEL, PLUGINS, error, message, ok, sse, streamed

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


class TestAnthropicVision(AnthropicFake, VisionConformance):
    def arrange_reply(self, text: str) -> None:
        self.api.post("/v1/messages").mock(return_value=ok(message(text)))
