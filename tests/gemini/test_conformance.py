"""The Gemini backend passes the chat and vision conformance suites, its API faked with respx
at the transport."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

import modelport_gemini
from modelport.testing.conformance import ChatConformance, VisionConformance

from .conftest import BAD_KEY, BASE, KEY, MODEL, answer, chunk, google_error, ok, sse

FAILURES = {
    "auth": google_error(
        400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT", BAD_KEY
    ),
    "rate_limit": google_error(429, "Resource has been exhausted.", "RESOURCE_EXHAUSTED"),
    "server": google_error(500, "An internal error has occurred.", "INTERNAL"),
    "bad_request": google_error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT"),
}


class GeminiRouter:
    """The Gemini API at BASE with a key and a model list."""

    api: respx.MockRouter

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"base_url": BASE}

    def env(self) -> Mapping[str, str]:
        return {"GEMINI_API_KEY": KEY}

    @pytest.fixture(autouse=True)
    def _router(self, api: respx.MockRouter) -> None:
        self.api = api
        models = [{"name": f"models/{MODEL}", "supportedGenerationMethods": ["generateContent"]}]
        api.get("/models").mock(return_value=ok({"models": models}))

    def arrange_failure(self, kind: str) -> None:
        self.api.post(path__regex=r":(generateContent|streamGenerateContent)$").mock(
            return_value=FAILURES[kind]
        )


class TestGeminiChat(GeminiRouter, ChatConformance):
    backend = "gemini"
    plugins = (("gemini", modelport_gemini),)
    model = MODEL

    def arrange_reply(self, text: str) -> None:
        words = text.split(" ")
        pieces = [f"{w} " for w in words[:-1]] + [words[-1]]
        events = [chunk(p) for p in pieces[:-1]] + [chunk(pieces[-1], finish="STOP")]

        def reply(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith(":streamGenerateContent"):
                return sse(*events)
            return ok(answer(text))

        self.api.post(path__regex=r":(generateContent|streamGenerateContent)$").mock(
            side_effect=reply
        )


class TestGeminiVision(GeminiRouter, VisionConformance):
    backend = "gemini"
    plugins = (("gemini", modelport_gemini),)
    model = MODEL

    def arrange_reply(self, text: str) -> None:
        self.api.post(path__regex=r":generateContent$").mock(return_value=ok(answer(text)))
