"""The shipped backends (and the fakes) pass the conformance suites plugin authors use.

The OpenAI chat backend runs its suite in ``tests/openai/test_conformance.py``, on the respx
helpers there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import modelport_jsonfile
import modelport_keywords
from modelport import Reply, StreamDelta, Usage
from modelport.errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    InvalidRequestError,
    RateLimitedError,
    TransientError,
)
from modelport.testing.conformance import (
    ChatConformance,
    SentimentConformance,
    StoreConformance,
    TrainingConformance,
    VisionConformance,
)


class TestJsonFileStore(StoreConformance):
    backend = "jsonfile"
    plugins = (("jsonfile", modelport_jsonfile),)

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"root": str(tmp_path / "store")}


class TestMemoryStore(StoreConformance):
    backend = "memory"
    plugins = ()
    persistent = False


class TestKeywordSentiment(SentimentConformance):
    backend = "keywords"
    plugins = (("keywords", modelport_keywords),)
    settings_that_change_results: ClassVar[Mapping[str, tuple[Any, Any, str]]] = {
        "positive_threshold": (0.05, 0.99, "It is good."),
        "words": ({}, {"zorbly": 3.0}, "What a zorbly day."),
        "languages": (["en"], ["ru"], "This is good."),
    }


class TestInstalledEntryPoints(SentimentConformance):
    """``plugins = None``: the backend comes from the installed entry points, as for users."""

    backend = "keywords"


class TestFakeChat(ChatConformance):
    """The scripted fake: each hook scripts what a well-mapped backend makes of the vendor's
    answer (a cut stream becomes a BackendConnectionError, and so on)."""

    backend = "fake-chat"
    plugins = ()

    def arrange_reply(self, text: str) -> None:
        self.fakes.chat.script(*[text] * 10)

    def arrange_failure(self, kind: str) -> None:
        self.fakes.chat.script(*[_failure(kind, "fake-chat")] * 10)

    def arrange_stream(
        self,
        pieces: Sequence[str],
        *,
        usage: Usage | None = None,
        cut: bool = False,
        error_mid_stream: bool = False,
    ) -> None:
        end: object = StreamDelta(finish_reason="stop", usage=usage)
        if cut:
            end = BackendConnectionError("the stream ended early", backend="fake-chat")
        elif error_mid_stream:
            end = TransientError("overloaded", backend="fake-chat", status=529)
        self.fakes.chat.script(*[[*pieces, end]] * 10)

    def arrange_complete(self, text: str, *, usage: Usage) -> None:
        reply = Reply(text, "fake-model", usage=usage, finish_reason="stop")
        self.fakes.chat.script(*[reply] * 10)

    def arrange_rate_limit(self, retry_after: float) -> None:
        error = RateLimitedError(
            "slow down", backend="fake-chat", status=429, retry_after=retry_after
        )
        self.fakes.chat.script(*[error] * 10)

    def last_request_messages(self) -> Sequence[tuple[str, str]]:
        return [(m.role, m.text) for m in self.fakes.chat.calls[-1].messages]


def _failure(kind: str, backend: str) -> BackendError:
    """What a vendor's failure of each kind becomes in a well-mapped backend."""
    make, status = {
        "auth": (AuthenticationError, 401),
        "rate_limit": (RateLimitedError, 429),
        "server": (TransientError, 500),
        "bad_request": (InvalidRequestError, 400),
    }[kind]
    return make(f"{kind} happened", backend=backend, status=status)


class TestFakeVision(VisionConformance):
    backend = "fake-vision"
    plugins = ()

    def arrange_reply(self, text: str) -> None:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        self.fakes.vision.script(*[data if isinstance(data, dict) else text] * 10)

    def arrange_failure(self, kind: str) -> None:
        self.fakes.vision.script(*[_failure(kind, "fake-vision")] * 10)


class TestFakeTrainer(TrainingConformance):
    backend = "fake-training"
    plugins = ()

    def arrange_service(self) -> None:
        pass  # the fake keeps its uploads and jobs itself

    def arrange_failure(self, kind: str) -> None:
        self.fakes.trainer.script(_failure(kind, "fake-training"))
