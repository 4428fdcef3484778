"""The shipped backends (and the fakes) pass the conformance suites plugin authors use."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

import modelport_jsonfile
import modelport_keywords
import modelport_openai
from modelport.errors import (
    AuthenticationError,
    InvalidRequestError,
    RateLimitedError,
    TransientError,
)
from modelport.testing.conformance import ChatConformance, SentimentConformance, StoreConformance

BASE = "https://api.test/v1"
KEY = "sk-" + "conformance-" + "Zq7" * 8


class TestJsonFileStore(StoreConformance):
    backend = "jsonfile"
    plugins = (("jsonfile", modelport_jsonfile),)

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"root": str(tmp_path / "store")}


class TestMemoryStore(StoreConformance):
    backend = "memory"
    plugins = ()


class TestKeywordSentiment(SentimentConformance):
    backend = "keywords"
    plugins = (("keywords", modelport_keywords),)


class TestInstalledEntryPoints(SentimentConformance):
    """``plugins = None``: the backend comes from the installed entry points, as for users."""

    backend = "keywords"


class TestFakeChat(ChatConformance):
    backend = "fake-chat"
    plugins = ()

    def arrange_reply(self, text: str) -> None:
        self.fakes.chat.script(*[text] * 10)

    def arrange_failure(self, kind: str) -> None:
        error = {
            "auth": AuthenticationError("bad key", backend="fake-chat", status=401),
            "rate_limit": RateLimitedError("slow down", backend="fake-chat", status=429),
            "server": TransientError("oops", backend="fake-chat", status=500),
            "bad_request": InvalidRequestError("no", backend="fake-chat", status=400),
        }[kind]
        self.fakes.chat.script(*[error] * 10)


def _sse(text: str) -> httpx.Response:
    chunks = [
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
        for word in text.split(" ")
    ]  # fmt: skip
    for i, chunk in enumerate(chunks[:-1]):
        chunk["choices"][0]["delta"]["content"] += " "  # type: ignore[index]
        chunks[i] = chunk
    chunks.append(
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    )  # fmt: skip
    import json

    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})


class TestOpenAIChat(ChatConformance):
    backend = "openai"
    plugins = (("openai", modelport_openai),)
    model = "gpt-4o-mini"

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"base_url": BASE}

    def env(self) -> Mapping[str, str]:
        return {"OPENAI_API_KEY": KEY}

    @pytest.fixture(autouse=True)
    def api(self) -> Iterator[respx.MockRouter]:
        with respx.mock(base_url=BASE, assert_all_called=False) as router:
            self.router = router
            router.get("/models").respond(
                200, json={"object": "list", "data": [
                    {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "o"}]}
            )  # fmt: skip
            yield router

    def arrange_reply(self, text: str) -> None:
        def answer(request: httpx.Request) -> httpx.Response:
            import json

            if json.loads(request.content).get("stream"):
                return _sse(text)
            return httpx.Response(200, json={
                "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
            })  # fmt: skip

        self.router.post("/chat/completions").mock(side_effect=answer)

    def arrange_failure(self, kind: str) -> None:
        status = {"auth": 401, "rate_limit": 429, "server": 500, "bad_request": 400}[kind]
        self.router.post("/chat/completions").respond(
            status, json={"error": {"message": f"{kind} happened", "type": kind}}
        )
