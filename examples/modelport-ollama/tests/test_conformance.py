"""The plugin passes modelport's conformance suites for chat and vision, found through its
installed entry point (``plugins = None``), exactly as users get it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from ollama_fake import BASE, answer, failure, ndjson

from modelport import Usage
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

    def arrange_stream(
        self,
        pieces: Sequence[str],
        *,
        usage: Usage | None = None,
        cut: bool = False,
        error_mid_stream: bool = False,
    ) -> None:
        lines = [{"message": {"role": "assistant", "content": p}, "done": False} for p in pieces]
        if error_mid_stream:
            lines.append({"error": "model runner has unexpectedly stopped"})
        elif not cut:
            lines.append(answer("", **counts(usage or Usage(12, 4))))
        body = "".join(json.dumps(line) + "\n" for line in lines)
        self.api.post("/api/chat").mock(return_value=httpx.Response(200, text=body))

    def arrange_complete(self, text: str, *, usage: Usage) -> None:
        reply = httpx.Response(200, json=answer(text, **counts(usage)))
        self.api.post("/api/chat").mock(return_value=reply)

    def arrange_rate_limit(self, retry_after: float) -> None:
        slow_down = failure(429, "slow down", **{"retry-after": str(retry_after)})
        self.api.post("/api/chat").mock(return_value=slow_down)

    def last_request_messages(self) -> Sequence[tuple[str, str]]:
        body = json.loads(self.api.calls.last.request.content)
        return [(m["role"], m["content"]) for m in body["messages"]]


def counts(usage: Usage) -> dict[str, int]:
    """Token counts as Ollama reports them."""
    return {"prompt_eval_count": usage.prompt_tokens, "eval_count": usage.completion_tokens}


class TestOllamaChat(OllamaFake, ChatConformance):
    pass


class TestOllamaVision(OllamaFake, VisionConformance):
    pass
