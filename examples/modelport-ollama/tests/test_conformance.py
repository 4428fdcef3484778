"""The plugin passes modelport's conformance suites for chat and vision, found through its
installed entry point (``plugins = None``), exactly as users get it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from ollama_fake import BASE, answer, failure, ndjson

from modelport.testing.conformance import ChatConformance, VisionConformance

STATUS = {"auth": 401, "rate_limit": 429, "server": 500, "bad_request": 400}


class OllamaFake:
    backend = "ollama-native"
    plugins = None  # the installed entry point
    api: respx.MockRouter

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"base_url": BASE, "api_key_env": "OLLAMA_PROXY_TOKEN"}

    def env(self) -> Mapping[str, str]:
        return {"OLLAMA_PROXY_TOKEN": "proxy-token-123"}

    @pytest.fixture(autouse=True)
    def _router(self, api: respx.MockRouter) -> None:
        self.api = api

    def arrange_reply(self, text: str) -> None:
        def respond(request: httpx.Request) -> httpx.Response:
            if json.loads(request.content)["stream"]:
                words = text.split(" ")
                return ndjson(*[f"{w} " for w in words[:-1]], words[-1])
            return httpx.Response(200, json=answer(text))

        self.api.post("/api/chat").mock(side_effect=respond)

    def arrange_failure(self, kind: str) -> None:
        self.api.post("/api/chat").mock(return_value=failure(STATUS[kind], f"{kind} happened"))


class TestOllamaChat(OllamaFake, ChatConformance):
    pass


class TestOllamaVision(OllamaFake, VisionConformance):
    pass
