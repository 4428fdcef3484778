"""Sentiment from a chat model: the request, the answer's checks, the cache."""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import attrs

from modelport import (
    BackendContext,
    ChatOptions,
    ChatRequest,
    Evidence,
    Message,
    Reply,
    Sentiment,
    SentimentLabel,
)
from modelport.errors import ResponseError
from modelport.sentiment import agrees

__all__ = ["SCHEMA", "ChatSentiment", "ChatSentimentSettings"]

_LABELS = [label.value for label in SentimentLabel]

#: What the chat model must answer: one result per text, by index.
SCHEMA: Mapping[str, Any] = {
    "title": "sentiments",
    "type": "object",
    "additionalProperties": False,
    "required": ["results"],
    "properties": {
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["index", "label", "score", "evidence"],
                "properties": {
                    "index": {"type": "integer"},
                    "label": {"type": "string", "enum": _LABELS},
                    "score": {"type": "number"},
                    "evidence": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["term", "weight"],
                            "properties": {
                                "term": {"type": "string"},
                                "weight": {"type": "number"},
                            },
                        },
                    },
                },
            },
        }
    },
}

_SYSTEM = (
    "You classify the sentiment of texts, in whatever language they are written. For each "
    "text, answer its index; a label: positive, negative, neutral or mixed; a score from -1 "
    "(most negative) to 1 (most positive) that agrees with the label (above 0 for positive, "
    "below 0 for negative, between -0.5 and 0.5 for neutral); and the evidence: the words or "
    "short phrases, copied exactly from the text, that decided it, each with a weight from -1 "
    "to 1. Negation and irony change a phrase's sign: 'not good' is negative."
)


@attrs.frozen(kw_only=True)
class ChatSentimentSettings:
    """The keys of ``[backends.chat-sentiment]``.

    :ivar chat_backend: the chat backend to ask; unset, the one ``[capabilities] chat``
        chooses.
    :ivar model: the model to ask; unset, the chat backend's own.
    :ivar attempts: answers asked for before a malformed or refused one is an error.
    :ivar batch_size: texts sent in one request by ``analyze_many``.
    :ivar cache_size: results kept in memory, by model and text; 0 turns the cache off.
    :ivar max_chars: characters of a text sent at most (the rest is left out).
    :ivar instructions: more instructions for the model (a domain, a definition of "mixed").
    """

    chat_backend: str | None = None
    model: str | None = None
    attempts: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    batch_size: int = attrs.field(default=16, validator=attrs.validators.ge(1))
    cache_size: int = attrs.field(default=4096, validator=attrs.validators.ge(0))
    max_chars: int = attrs.field(default=4000, validator=attrs.validators.ge(1))
    instructions: str = ""


class _Unusable(Exception):
    """An answer that is not the sentiment asked for (asked again, then an error)."""


class ChatSentiment:
    """A sentiment analyzer that asks a chat backend (see the module docs)."""

    def __init__(self, context: BackendContext[ChatSentimentSettings]) -> None:
        self.name = context.name
        self.settings = context.settings
        self._chat = context.chat(self.settings.chat_backend)
        self._cache: OrderedDict[tuple[str | None, str], Sentiment] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ChatSentiment({self.name!r}, chat_backend={self.settings.chat_backend!r})"

    def analyze(self, text: str) -> Sentiment:
        """The sentiment of ``text``."""
        return self.analyze_many([text])[0]

    def analyze_many(self, texts: Sequence[str]) -> list[Sentiment]:
        """The sentiment of each of ``texts``, in order; up to ``batch_size`` texts a request,
        cached results not asked again."""
        model = self.settings.model
        found: dict[int, Sentiment] = {}
        missing: list[int] = []
        with self._lock:
            for index, text in enumerate(texts):
                cached = self._cache.get((model, text))
                if cached is None:
                    missing.append(index)
                else:
                    self._cache.move_to_end((model, text))
                    found[index] = cached
        size = self.settings.batch_size
        for start in range(0, len(missing), size):
            batch = missing[start : start + size]
            for index, sentiment in zip(batch, self._ask([texts[i] for i in batch]), strict=True):
                found[index] = sentiment
                self._remember((model, texts[index]), sentiment)
        return [found[index] for index in range(len(texts))]

    def _remember(self, key: tuple[str | None, str], sentiment: Sentiment) -> None:
        if not self.settings.cache_size:
            return
        with self._lock:
            self._cache[key] = sentiment
            while len(self._cache) > self.settings.cache_size:
                self._cache.popitem(last=False)

    def _request(self, texts: Sequence[str]) -> ChatRequest:
        system = _SYSTEM + (
            f"\n\n{self.settings.instructions}" if self.settings.instructions else ""
        )
        items = [{"index": i, "text": t[: self.settings.max_chars]} for i, t in enumerate(texts)]
        return ChatRequest(
            [Message("system", system), Message("user", json.dumps(items, ensure_ascii=False))],
            model=self.settings.model,
            options=ChatOptions(temperature=0, json_schema=SCHEMA),
        )

    def _ask(self, texts: Sequence[str]) -> list[Sentiment]:
        request = self._request(texts)
        problem = ""
        for _ in range(self.settings.attempts):
            try:
                return self._read(self._chat.complete(request), texts)
            except ResponseError as exc:  # the model's answer was unusable, or refused
                problem = exc.message
            except _Unusable as exc:
                problem = str(exc)
        raise ResponseError(
            f"the chat backend {self._chat.name!r} gave no usable sentiment in "
            f"{self.settings.attempts} answers; the last: {problem}",
            backend=self.name,
            hint=f"ask a stronger model ([backends.{self.name}] model), raise attempts, or "
            "choose another sentiment backend",
        )

    def _read(self, reply: Reply, texts: Sequence[str]) -> list[Sentiment]:
        data = reply.data
        if data is None:
            try:
                data = json.loads(reply.text)
            except ValueError:
                raise _Unusable(f"the answer is not JSON: {reply.text[:80]!r}") from None
        results = data.get("results") if isinstance(data, Mapping) else None
        if not isinstance(results, list):
            raise _Unusable("the answer holds no 'results' list")
        by_index: dict[int, Sentiment] = {}
        for item in results:
            index, sentiment = self._result(item, texts, reply.model)
            by_index[index] = sentiment
        if len(by_index) != len(texts):
            raise _Unusable(f"the answer labels {len(by_index)} of {len(texts)} texts")
        return [by_index[index] for index in range(len(texts))]

    def _result(self, item: Any, texts: Sequence[str], model: str | None) -> tuple[int, Sentiment]:
        if not isinstance(item, Mapping):
            raise _Unusable("a result is not an object")
        index, label, score = item.get("index"), item.get("label"), item.get("score")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(texts):
            raise _Unusable(f"a result has no valid index: {index!r}")
        if label not in _LABELS:
            raise _Unusable(f"text {index}: {label!r} is not a label")
        if not _number(score) or not -1 <= score <= 1:
            raise _Unusable(f"text {index}: the score {score!r} is not a number in [-1, 1]")
        kind = SentimentLabel(label)
        if not agrees(kind, score):
            raise _Unusable(f"text {index}: the label {label} and the score {score} disagree")
        text = texts[index].casefold()
        evidence = [
            Evidence(e["term"], float(e["weight"]))
            for e in item.get("evidence") or ()
            if isinstance(e, Mapping)
            and isinstance(e.get("term"), str)
            and e["term"].strip()
            and e["term"].casefold() in text  # never a word the text does not hold
            and _number(e.get("weight"))
        ]
        analyzer = f"{self.name}:{model}" if model else self.name
        return index, Sentiment(kind, float(score), evidence, analyzer=analyzer)


def _number(value: Any) -> TypeGuard[float]:
    """Whether ``value`` is a finite JSON number (not a boolean)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
