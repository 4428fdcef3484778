"""The Gemini backend passes the chat and vision conformance suites, its API faked with respx
at the transport."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

import modelport_gemini
from modelport import Usage
from modelport.testing.conformance import ChatConformance, VisionConformance

from .conftest import (
    BAD_KEY,
    BASE,
    KEY,
    MODEL,
    answer,
    chunk,
    event,
    google_error,
    ok,
    retry_info,
    sse,
)

CALLS = r":(generateContent|streamGenerateContent)$"

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
        self.api.post(path__regex=CALLS).mock(return_value=FAILURES[kind])


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

        self.api.post(path__regex=CALLS).mock(side_effect=reply)

    def arrange_stream(
        self,
        pieces: Sequence[str],
        *,
        usage: Usage | None = None,
        cut: bool = False,
        error_mid_stream: bool = False,
    ) -> None:
        events = [chunk(p) for p in pieces[:-1]]
        if error_mid_stream or cut:
            events.append(chunk(pieces[-1]))
            if error_mid_stream:
                failure = {"code": 500, "message": "Internal error", "status": "INTERNAL"}
                events.append(event({"error": failure}))
        else:
            events.append(chunk(pieces[-1], finish="STOP", usage=_usage(usage)))
        self.api.post(path__regex=CALLS).mock(return_value=sse(*events))

    def arrange_complete(self, text: str, *, usage: Usage) -> None:
        self.api.post(path__regex=CALLS).mock(return_value=ok(answer(text, usage=_usage(usage))))

    def arrange_rate_limit(self, retry_after: float) -> None:
        reply = google_error(
            429, "Resource has been exhausted.", "RESOURCE_EXHAUSTED",
            retry_info(f"{retry_after:g}s"),
        )  # fmt: skip
        self.api.post(path__regex=CALLS).mock(return_value=reply)

    def last_request_messages(self) -> Sequence[tuple[str, str]]:
        body = json.loads(self.api.calls.last.request.content)
        found = []
        if "systemInstruction" in body:
            found.append(("system", _text(body["systemInstruction"])))
        for content in body["contents"]:
            role = "assistant" if content["role"] == "model" else content["role"]
            found.append((role, _text(content)))
        return found


def _usage(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": usage.completion_tokens,
        "totalTokenCount": usage.total_tokens,
    }


def _text(content: Mapping[str, Any]) -> str:
    return "".join(part.get("text", "") for part in content["parts"])


class TestGeminiVision(GeminiRouter, VisionConformance):
    backend = "gemini"
    plugins = (("gemini", modelport_gemini),)
    model = MODEL

    def arrange_reply(self, text: str) -> None:
        self.api.post(path__regex=r":generateContent$").mock(return_value=ok(answer(text)))
