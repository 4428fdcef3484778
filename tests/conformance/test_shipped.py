"""The shipped backends (and the fakes) pass the conformance suites plugin authors use.

The OpenAI chat backend runs its suite in ``tests/openai/test_conformance.py``, on the respx
helpers there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import modelport_jsonfile
import modelport_keywords
from modelport.errors import (
    AuthenticationError,
    InvalidRequestError,
    RateLimitedError,
    TransientError,
)
from modelport.testing.conformance import ChatConformance, SentimentConformance, StoreConformance


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
