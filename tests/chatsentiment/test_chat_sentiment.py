"""Sentiment from a chat model: the request it sends, the answers it takes or refuses, the
cache, batches, and the hub using it for replies, against both hubs."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import respx

import modelport_chatsentiment
import modelport_keywords
import modelport_openai
from modelport import (
    BackendContext,
    BackendRegistry,
    ChatRequest,
    Reply,
    SentimentLabel,
    Usage,
    hookimpl,
)
from modelport.errors import AuthenticationError, ResponseError, TransientError
from modelport.testing import FakeBackends, FakeChat, RecordingSleep, make_test_hub
from modelport.testing.conformance import SentimentConformance

from ..support import make_hub

PLUGINS: list[tuple[str, object]] = [("chatsentiment", modelport_chatsentiment)]


def answer(*results: tuple[str, float, Sequence[tuple[str, float]]]) -> str:
    """A chat model's JSON answer: one (label, score, evidence) per text, by index."""
    return json.dumps(
        {
            "results": [
                {
                    "index": i,
                    "label": label,
                    "score": score,
                    "evidence": [{"term": t, "weight": w} for t, w in evidence],
                }
                for i, (label, score, evidence) in enumerate(results)
            ]
        }
    )


def hub_with(kind: str, replies: Sequence[Any], **settings: Any) -> tuple[Any, FakeChat]:
    fakes = FakeBackends(chat=FakeChat(replies))
    hub = make_hub(
        kind,
        fakes,
        overrides={
            "capabilities": {"sentiment": "chat-sentiment"},
            "backends": {"chat-sentiment": settings},
            "retry": {"attempts": 2, "jitter_s": 0},
        },
        plugins=PLUGINS,
        sleep=RecordingSleep(),
    )
    return hub, fakes.chat


def test_a_text_is_labelled_by_the_chat_model_with_its_evidence(hub_kind: str) -> None:
    hub, chat = hub_with(hub_kind, [answer(("positive", 0.8, [("love", 0.9)]))])
    result = hub.analyze("I love this phone")
    assert (result.label, result.score) == (SentimentLabel.POSITIVE, 0.8)
    assert [(e.term, e.weight) for e in result.evidence] == [("love", 0.9)]
    assert result.analyzer == "chat-sentiment:fake-model"
    request: ChatRequest = chat.calls[0]
    assert request.options.json_schema == modelport_chatsentiment._analyzer.SCHEMA
    assert request.options.temperature == 0
    assert request.messages[0].role == "system"
    assert "any language" not in request.messages[0].text  # the prompt says "whatever language"
    assert json.loads(request.messages[1].text) == [{"index": 0, "text": "I love this phone"}]


def test_any_language_goes_to_the_model_as_it_is(hub_kind: str) -> None:
    hub, chat = hub_with(hub_kind, [answer(("negative", -0.7, [("ужасно", -0.8)]))])
    result = hub.analyze("Это ужасно")
    assert result.label is SentimentLabel.NEGATIVE
    assert [e.term for e in result.evidence] == ["ужасно"]
    assert "Это ужасно" in chat.calls[0].messages[1].text  # not \\u-escaped


def test_evidence_the_text_does_not_hold_is_dropped(hub_kind: str) -> None:
    hub, _ = hub_with(
        hub_kind, [answer(("positive", 0.5, [("great", 0.7), ("invented", 0.9), ("", 0.1)]))]
    )
    assert [e.term for e in hub.analyze("Great stuff").evidence] == ["great"]


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        json.dumps({"results": "no"}),
        json.dumps({"results": []}),
        answer(("happy", 0.5, [])),  # not a label
        answer(("positive", -0.6, [])),  # label and score disagree
        answer(("negative", 0.3, [])),
        answer(("neutral", 0.9, [])),
        answer(("positive", 1.5, [])),  # out of range
        json.dumps({"results": [{"index": 7, "label": "positive", "score": 0.5}]}),
    ],
)
def test_an_unusable_answer_is_asked_again_then_taken(hub_kind: str, bad: str) -> None:
    hub, chat = hub_with(hub_kind, [bad, answer(("positive", 0.6, []))])
    assert hub.analyze("nice").label is SentimentLabel.POSITIVE
    assert len(chat.calls) == 2


def test_answers_unusable_every_time_are_one_clear_error(hub_kind: str) -> None:
    hub, chat = hub_with(hub_kind, ["nope", answer(("positive", -1.0, []))], attempts=2)
    with pytest.raises(ResponseError) as caught:
        hub.analyze("nice")
    message = str(caught.value)
    assert "chat-sentiment" in message
    assert "no usable sentiment in 2 answers" in message
    assert "disagree" in message  # the last problem
    assert "\n" not in message
    assert len(chat.calls) == 2


def test_a_refusal_counts_as_unusable(hub_kind: str) -> None:
    refused = ResponseError("the model refused: I can't", backend="fake-chat")
    hub, chat = hub_with(hub_kind, [refused, answer(("neutral", 0.0, []))])
    assert hub.analyze("The meeting is at noon.").label is SentimentLabel.NEUTRAL
    assert len(chat.calls) == 2


def test_the_chat_call_is_retried_by_the_core_and_other_errors_pass_through(
    hub_kind: str,
) -> None:
    flaky = TransientError("503", backend="fake-chat")
    hub, chat = hub_with(hub_kind, [flaky, answer(("positive", 0.4, []))])
    assert hub.analyze("good").label is SentimentLabel.POSITIVE
    assert len(chat.calls) == 2
    bad_key = AuthenticationError("bad key", backend="fake-chat")
    hub, chat = hub_with(hub_kind, [bad_key])
    with pytest.raises(AuthenticationError):
        hub.analyze("good")
    assert len(chat.calls) == 1  # not asked again as if the answer were malformed


def test_results_are_cached_by_text(hub_kind: str) -> None:
    hub, chat = hub_with(hub_kind, [answer(("positive", 0.6, []))])
    first = hub.analyze("good")
    assert hub.analyze("good") == first
    assert len(chat.calls) == 1


def test_no_cache_asks_every_time(hub_kind: str) -> None:
    reply = answer(("positive", 0.6, []))
    hub, chat = hub_with(hub_kind, [reply, reply], cache_size=0)
    hub.analyze("good")
    hub.analyze("good")
    assert len(chat.calls) == 2


def test_several_texts_go_in_one_request_in_order(hub_kind: str) -> None:
    results = {
        "results": [
            {"index": 1, "label": "negative", "score": -0.5, "evidence": []},
            {"index": 0, "label": "positive", "score": 0.5, "evidence": []},
            {"index": 2, "label": "neutral", "score": 0.0, "evidence": []},
        ]
    }
    hub, chat = hub_with(hub_kind, [json.dumps(results)])
    found = hub.analyze_many(["good", "bad", "at noon"])
    assert [r.label.value for r in found] == ["positive", "negative", "neutral"]
    assert len(chat.calls) == 1
    assert hub.analyze("bad").label is SentimentLabel.NEGATIVE  # cached, no new call
    assert len(chat.calls) == 1


def test_batches_are_split_by_batch_size(hub_kind: str) -> None:
    hub, chat = hub_with(
        hub_kind,
        [
            answer(("positive", 0.1, []), ("positive", 0.2, [])),
            answer(("negative", -0.3, [])),
        ],
        batch_size=2,
    )
    found = hub.analyze_many(["a", "b", "c"])
    assert [r.score for r in found] == [0.1, 0.2, -0.3]
    assert [len(json.loads(c.messages[1].text)) for c in chat.calls] == [2, 1]


def test_the_hub_labels_replies_with_it(hub_kind: str) -> None:
    hub, _ = hub_with(hub_kind, ["Glad to help, this works great!", answer(("positive", 0.7, []))])
    answered = hub.ask("hi")
    assert answered.reply.text == "Glad to help, this works great!"
    assert answered.sentiment is not None
    assert answered.sentiment.label is SentimentLabel.POSITIVE


def test_settings_are_checked_and_name_their_key() -> None:
    from modelport.errors import ConfigError

    hub, _ = hub_with("sync", [], attempts=0)
    with pytest.raises(ConfigError) as caught:
        hub.analyze("x")
    assert "backends.chat-sentiment" in str(caught.value)


def test_over_a_real_http_chat_backend() -> None:
    """Through the OpenAI plugin (faked at its transport): the schema goes out as
    ``response_format`` and the backend's parsed JSON is what is read."""
    base = "https://api.test/v1"
    body = {
        "model": "gpt-6-luna",
        "choices": [
            {"message": {"role": "assistant", "content": answer(("mixed", 0.1, []))},
             "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": 20},
    }  # fmt: skip
    with respx.mock(base_url=base) as api:
        route = api.post("/chat/completions").mock(return_value=httpx.Response(200, json=body))
        hub = make_test_hub(
            overrides={
                "capabilities": {"sentiment": "chat-sentiment", "chat": "openai"},
                "backends": {"openai": {"base_url": base, "model": "gpt-4.1-mini"}},
            },
            plugins=[*PLUGINS, ("openai", modelport_openai)],
            env={"OPENAI_API_KEY": "sk-test-" + "x" * 20},
        )
        with hub:
            result = hub.analyze("Good food, slow service")
            records = hub.usage()
    assert result.label is SentimentLabel.MIXED
    sent = json.loads(route.calls.last.request.content)
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["temperature"] == 0  # gpt-4.1 takes sampling options
    assert [(r.backend, r.prompt_tokens) for r in records] == [("openai", 40)]


# --- the conformance suite, over a chat "model" that labels by keywords -------------------------


class _Oracle:
    """A chat backend that answers sentiment requests as a model would, deciding each label
    with the keyword analyzer (so the suite's clear texts get clear labels)."""

    def __init__(self, context: BackendContext[None]) -> None:
        self.analyzer = modelport_keywords.build_analyzer()

    def complete(self, request: ChatRequest) -> Reply:
        items = json.loads(request.messages[-1].text)
        results = []
        for item in items:
            found = self.analyzer.analyze(item["text"])
            score = found.score
            if found.label is SentimentLabel.NEUTRAL:
                score = max(-0.5, min(0.5, score))
            results.append(
                {"index": item["index"], "label": found.label.value, "score": score,
                 "evidence": [{"term": e.term, "weight": e.weight} for e in found.evidence]}
            )  # fmt: skip
        text = json.dumps({"results": results})
        return Reply(text=text, model="oracle", usage=Usage(10, 10), finish_reason="stop")

    def stream(self, request: ChatRequest) -> Iterator[Any]:
        raise NotImplementedError

    def models(self) -> Sequence[Any]:
        return []


class _OraclePlugin:
    @hookimpl
    def modelport_register_backends(self, registry: BackendRegistry) -> None:
        registry.add("oracle-chat", _Oracle, capabilities=["chat"])


class TestChatSentimentConformance(SentimentConformance):
    backend = "chat-sentiment"
    plugins: ClassVar[Sequence[tuple[str, object]]] = [*PLUGINS, ("oracle", _OraclePlugin())]

    settings_that_change_results: ClassVar[Mapping[str, tuple[Any, Any, str]]] = {
        "max_chars": (4000, 12, "The meeting is at noon, and I love it."),
    }

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"chat_backend": "oracle-chat"}
