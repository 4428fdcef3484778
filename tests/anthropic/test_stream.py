"""Streaming through the Anthropic backend: every event type, mid-stream errors, cut streams."""

from __future__ import annotations

import httpx
import pytest
import respx

from modelport import ChatRequest, Message, StreamDelta
from modelport.errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ResponseError,
    TransientError,
)

from ..support import cut_sse
from .conftest import (
    KEY,
    MODEL,
    MakeAsyncHub,
    MakeHub,
    error,
    event,
    message_end,
    message_start,
    sent,
    sse,
    streamed,
    text_events,
)

#: Every event type the API sends, and some it may send one day.
EVERY_EVENT = (
    message_start(cache_creation_input_tokens=100, cache_read_input_tokens=1000),
    event("ping"),
    # a thinking block: its text is never shown
    event("content_block_start", index=0,
          content_block={"type": "thinking", "thinking": "", "signature": ""}),
    event("content_block_delta", index=0,
          delta={"type": "thinking_delta", "thinking": "Let me think."}),
    event("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "EqQ"}),
    event("content_block_stop", index=0),
    # a text block that starts with text of its own
    event("content_block_start", index=1, content_block={"type": "text", "text": "He"}),
    event("content_block_delta", index=1, delta={"type": "text_delta", "text": "llo"}),
    event("content_block_delta", index=1, delta={"type": "text_delta", "text": ""}),
    event("content_block_delta", index=1,
          delta={"type": "citations_delta", "citation": {"type": "char_location"}}),
    event("ping"),
    event("content_block_delta", index=1, delta={"type": "text_delta", "text": ", world"}),
    event("content_block_stop", index=1),
    # a tool call's input, and an event type from the future
    event("content_block_start", index=2,
          content_block={"type": "tool_use", "id": "t1", "name": "f", "input": {}}),
    event("content_block_delta", index=2,
          delta={"type": "input_json_delta", "partial_json": '{"a": 1}'}),
    event("content_block_stop", index=2),
    event("message_annotation", note="from a later API version"),
    *message_end("end_turn", output_tokens=42),
)  # fmt: skip


def _check_every_event(deltas: list[StreamDelta]) -> None:
    assert [d.text for d in deltas] == ["He", "llo", ", world", ""]
    assert all(d.model == MODEL for d in deltas)
    assert [d.finish_reason for d in deltas] == [None, None, None, "stop"]
    usage = deltas[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (25 + 100 + 1000, 42)


def test_every_event_type_is_handled_and_the_answer_stored(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/v1/messages").mock(return_value=sse(*EVERY_EVENT))
    hub = make_hub()
    stream = hub.stream("Say hello")
    deltas = list(stream)
    _check_every_event(deltas)
    assert sent(route)["stream"] is True
    assert stream.answer is not None
    assert stream.answer.reply.text == "Hello, world"
    stored = hub.dialogue(stream.answer.dialogue_id)
    assert [m.text for m in stored.messages] == ["Say hello", "Hello, world"]


async def test_async_stream_handles_every_event_type(
    api: respx.MockRouter, make_async_hub: MakeAsyncHub
) -> None:
    api.post("/v1/messages").mock(return_value=sse(*EVERY_EVENT))
    stream = await make_async_hub().stream("Say hello")
    _check_every_event([d async for d in stream])
    assert stream.answer is not None
    assert stream.answer.reply.usage.prompt_tokens == 1125


def test_the_last_usage_of_message_delta_wins(api: respx.MockRouter, make_hub: MakeHub) -> None:
    events = [
        message_start(),
        *text_events("Hi"),
        *message_end("max_tokens", output_tokens=7, input_tokens=30, cache_read_input_tokens=5),
    ]
    api.post("/v1/messages").mock(return_value=sse(*events))
    last = list(make_hub().stream("hi"))[-1]
    assert last.finish_reason == "length"
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (35, 7)


def test_data_without_event_names_is_read_by_its_type(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    unnamed = [e.split("\n", 1)[1] for e in streamed("a", "b")]  # "data: ..." lines only
    api.post("/v1/messages").mock(return_value=sse(*unnamed))
    assert [d.text for d in make_hub().stream("hi")] == ["a", "b", ""]


#: An ``error`` event's type, and what it becomes.
STREAM_ERRORS = [
    ("overloaded_error", TransientError, True),
    ("api_error", TransientError, True),
    ("rate_limit_error", RateLimitedError, True),
    ("timeout_error", BackendTimeoutError, True),
    ("invalid_request_error", InvalidRequestError, False),
    ("request_too_large", InvalidRequestError, False),
    ("billing_error", InvalidRequestError, False),
    ("authentication_error", AuthenticationError, False),
    ("permission_error", PermissionDeniedError, False),
    ("not_found_error", NotFoundError, False),
    ("a_future_error", TransientError, True),
]


@pytest.mark.parametrize(("kind", "cls", "retryable"), STREAM_ERRORS)
def test_an_error_event_mid_stream_is_mapped(
    api: respx.MockRouter,
    make_hub: MakeHub,
    kind: str,
    cls: type[BackendError],
    retryable: bool,
) -> None:
    failure = {"type": kind, "message": "Overloaded"}
    events = [
        message_start(), *text_events("Hel"), event("error", error=failure, request_id="req_x"),
    ]  # fmt: skip
    api.post("/v1/messages").mock(return_value=sse(*events))
    chat = make_hub().backend("chat")
    with pytest.raises(cls) as caught:
        list(chat.stream(ChatRequest([Message("user", "hi")])))
    assert type(caught.value) is cls
    assert caught.value.retryable is retryable
    assert caught.value.request_id == "req_x"
    assert "the server failed mid-stream: Overloaded" in str(caught.value)


def test_an_error_event_without_a_request_id_carries_the_stream_s(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    failure = {"type": "api_error", "message": f"Internal error {KEY}"}
    events = [message_start(), *text_events("Hel"), event("error", error=failure)]
    api.post("/v1/messages").mock(return_value=sse(*events))  # its request-id: req_stream
    chat = make_hub().backend("chat")
    with pytest.raises(TransientError) as caught:
        list(chat.stream(ChatRequest([Message("user", "hi")])))
    assert caught.value.request_id == "req_stream"
    assert KEY not in str(caught.value)
    assert "Internal error" in str(caught.value)


def test_an_overloaded_stream_fails_after_its_first_delta_and_stores_nothing(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    failure = {"type": "overloaded_error", "message": "Overloaded"}
    events = [message_start(), *text_events("Hel"), event("error", error=failure)]
    route = api.post("/v1/messages").mock(return_value=sse(*events))
    hub = make_hub()
    stream = hub.stream("hi")
    with pytest.raises(TransientError, match="mid-stream: Overloaded") as caught:
        list(stream)
    assert "overloaded" in (caught.value.hint or "")
    assert route.call_count == 1  # not retried: text was already given out
    assert hub.dialogues().items == ()


async def test_async_error_event_before_any_text_is_retried(
    api: respx.MockRouter, make_async_hub: MakeAsyncHub
) -> None:
    failure = {"type": "overloaded_error", "message": "Overloaded"}
    route = api.post("/v1/messages")
    route.side_effect = [
        sse(message_start(), event("ping"), event("error", error=failure)),
        sse(*streamed("fine")),
    ]
    stream = await make_async_hub().stream("hi")
    assert [d.text async for d in stream] == ["fine", ""]
    assert route.call_count == 2


@pytest.mark.parametrize(
    "response",
    [
        sse(message_start(), *text_events("Hel")),  # the body ends: no message_stop
        sse(message_start(), *text_events("Hel"), message_end()[0]),  # message_delta only
        cut_sse(message_start(), *text_events("Hel")),  # the connection drops
    ],
    ids=["ended", "no-message-stop", "dropped"],
)
def test_a_stream_cut_before_message_stop_is_a_connection_error(
    api: respx.MockRouter, make_hub: MakeHub, response: httpx.Response
) -> None:
    api.post("/v1/messages").mock(return_value=response)
    hub = make_hub()
    with pytest.raises(BackendConnectionError):
        list(hub.stream("hi"))
    assert hub.dialogues().items == ()


async def test_async_cut_stream_is_a_connection_error(
    api: respx.MockRouter, make_async_hub: MakeAsyncHub
) -> None:
    api.post("/v1/messages").mock(return_value=cut_sse(message_start(), *text_events("Hel")))
    stream = await make_async_hub().stream("hi")
    with pytest.raises(BackendConnectionError):
        [d async for d in stream]


def test_an_event_that_is_not_json_is_a_response_error(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    api.post("/v1/messages").mock(
        return_value=sse(message_start(), "event: content_block_delta\ndata: {oops\n\n")
    )
    with pytest.raises(ResponseError, match="not JSON"):
        list(make_hub().stream("hi"))


def test_an_error_status_when_the_stream_opens_is_retried(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/v1/messages")
    route.side_effect = [error(529, "overloaded_error", "Overloaded"), sse(*streamed("ok"))]
    assert [d.text for d in make_hub().stream("hi")] == ["ok", ""]
    assert route.call_count == 2
