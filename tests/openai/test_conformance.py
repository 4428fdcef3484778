"""The OpenAI chat backend passes the chat conformance suite, its API faked with respx."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

import modelport_openai
from modelport.testing.conformance import ChatConformance

from .conftest import BASE, KEY, chunk, completion, error, ok, sse

STATUS = {"auth": 401, "rate_limit": 429, "server": 500, "bad_request": 400}


class TestOpenAIChat(ChatConformance):
    backend = "openai"
    plugins = (("openai", modelport_openai),)
    model = "gpt-4o-mini"

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"base_url": BASE}

    def env(self) -> Mapping[str, str]:
        return {"OPENAI_API_KEY": KEY}

    @pytest.fixture(autouse=True)
    def _router(self, api: respx.MockRouter) -> None:
        self.api = api
        api.get("/models").mock(
            return_value=ok({"object": "list", "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "o"}]})
        )  # fmt: skip

    def arrange_reply(self, text: str) -> None:
        words = text.split(" ")
        pieces = [f"{w} " for w in words[:-1]] + [words[-1]]

        def answer(request: httpx.Request) -> httpx.Response:
            if json.loads(request.content).get("stream"):
                return sse(*[chunk(p) for p in pieces], chunk(finish="stop"))
            return ok(completion(text))

        self.api.post("/chat/completions").mock(side_effect=answer)

    def arrange_failure(self, kind: str) -> None:
        self.api.post("/chat/completions").mock(
            return_value=error(STATUS[kind], f"{kind} happened")
        )
