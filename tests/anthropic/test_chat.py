"""Chat through the Anthropic backend: request shapes, replies, structured output, settings."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import respx

from modelport import ChatOptions, ChatRequest, Image, ImagePart, Message, TextPart
from modelport.errors import ConfigError, MissingSecretError, ResponseError

from .conftest import BASE, KEY, MODEL, MakeAsyncHub, MakeHub, message, ok, sent

PNG_B64_START = "iVBORw0KGgo"


def test_ask_sends_key_version_system_turns_and_options(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/v1/messages").mock(return_value=ok(message("Paris.")))
    pirate = {"instructions": "Talk like a pirate.", "options": {"seed": 3}}
    hub = make_hub(options={"temperature": 0.2}, more={"assistants": {"pirate": pirate}})
    options = ChatOptions(
        max_tokens=20,
        stop=["\n"],
        top_p=0.9,
        seed=7,
        reasoning_effort="low",
        extra={"metadata": {"user_id": "u1"}, "top_k": 5},
    )
    first = hub.ask("Capital of France?", assistant="pirate", options=options)
    assert (first.reply.text, first.reply.model, first.reply.finish_reason) == (
        "Paris.", MODEL, "stop"
    )  # fmt: skip
    assert first.reply.request_id == "req_011CSHoEeqs5C35K2UUqR7Fy"
    assert sent(route) == {
        "model": MODEL,
        "system": "Talk like a pirate.",
        "messages": [{"role": "user", "content": "Capital of France?"}],
        "max_tokens": 20,
        "temperature": 0.2,  # the backend's default, under the call's options
        "top_p": 0.9,
        "stop_sequences": ["\n"],
        "metadata": {"user_id": "u1"},
        "top_k": 5,
    }  # no seed, no reasoning_effort: the Messages API has neither
    headers = route.calls.last.request.headers
    assert headers["x-api-key"] == KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers

    hub.ask("And of Spain?", dialogue=first.dialogue_id, model="claude-opus-5")
    body = sent(route)
    assert body["model"] == "claude-opus-5"
    assert body["system"] == "Talk like a pirate."  # the dialogue's assistant
    assert body["max_tokens"] == 4096  # the settings' default: the API requires one
    assert body["messages"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Spain?"},
    ]


def test_system_messages_are_hoisted_and_same_role_turns_merged(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/v1/messages").mock(return_value=ok(message()))
    chat = make_hub().backend("chat")
    chat.complete(
        ChatRequest([
            Message("system", "Be brief."),
            Message("user", "one"),
            Message("user", [TextPart("two"), TextPart("")]),
            Message("assistant", "three"),
            Message("system", "Answer in French."),
            Message("assistant", ""),  # nothing to send: left out
            Message("assistant", "four"),
            Message("user", "five"),
        ])
    )  # fmt: skip
    body = sent(route)
    assert body["system"] == "Be brief.\n\nAnswer in French."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"},
                                     {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "three"},
                                          {"type": "text", "text": "four"}]},
        {"role": "user", "content": "five"},
    ]  # fmt: skip


def test_settings_give_model_max_tokens_version_and_extra_headers(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/v1/messages").mock(return_value=ok(message()))
    hub = make_hub(
        model="claude-haiku-4-5",
        max_tokens=512,
        anthropic_version="2024-01-01",
        headers={"anthropic-beta": "context-1m-2025-08-07"},
    )
    hub.ask("hi")
    assert (sent(route)["model"], sent(route)["max_tokens"]) == ("claude-haiku-4-5", 512)
    headers = route.calls.last.request.headers
    assert headers["anthropic-version"] == "2024-01-01"
    assert headers["anthropic-beta"] == "context-1m-2025-08-07"


def test_a_base_url_with_a_path_keeps_it(make_hub: MakeHub) -> None:
    with respx.mock(base_url="https://gateway.test/anthropic") as gateway:
        route = gateway.post("/v1/messages").mock(return_value=ok(message()))
        make_hub(base_url="https://gateway.test/anthropic/").ask("hi")
    assert route.called


def test_reply_text_usage_and_dropped_blocks(api: respx.MockRouter, make_hub: MakeHub) -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Hello, "},
        {"type": "text", "text": "world.", "citations": None},
    ]
    usage = {
        "input_tokens": 10, "output_tokens": 4, "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 1000, "service_tier": "standard",
    }  # fmt: skip
    api.post("/v1/messages").mock(return_value=ok(message(content=blocks, usage=usage)))
    reply = make_hub().ask("hi").reply
    assert reply.text == "Hello, world."
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (1110, 4)


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("refusal", "refusal"),
        ("tool_use", "tool_calls"),
        ("pause_turn", "pause_turn"),
        ("a_future_reason", "a_future_reason"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(
    api: respx.MockRouter, make_hub: MakeHub, stop_reason: str, finish: str
) -> None:
    api.post("/v1/messages").mock(return_value=ok(message("x", stop_reason=stop_reason)))
    assert make_hub().ask("hi").reply.finish_reason == finish


def test_a_json_schema_is_sent_as_output_config_and_parsed(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/v1/messages").mock(return_value=ok(message('{"city": "Paris"}')))
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "default": {"type": "object"}},
            "tags": {"type": "array", "items": {"type": "object", "properties": {}}},
        },
        "required": ["city"],
    }
    options = ChatOptions(json_schema=schema, extra={"output_config": {"effort": "low"}})
    answer = make_hub().ask("Where?", options=options)
    assert answer.reply.data == {"city": "Paris"}
    strict = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "default": {"type": "object"}},  # data: left alone
            "tags": {
                "type": "array",
                "items": {"type": "object", "properties": {}, "additionalProperties": False},
            },
        },
        "required": ["city"],
        "additionalProperties": False,
    }
    assert sent(route)["output_config"] == {
        "format": {"type": "json_schema", "schema": strict},
        "effort": "low",
    }
    assert "additionalProperties" not in schema  # the caller's schema is not changed
    assert "anthropic-beta" not in route.calls.last.request.headers


@pytest.mark.parametrize(
    ("text", "stop_reason", "match"),
    [
        ('{"city": "Par', "max_tokens", "cut at max_tokens"),
        ("Paris, I think.", "end_turn", "not the JSON asked for"),
        ("I can't help with that.", "refusal", "the model refused"),
    ],
)
def test_a_reply_that_is_not_the_json_asked_for_is_a_response_error(
    api: respx.MockRouter, make_hub: MakeHub, text: str, stop_reason: str, match: str
) -> None:
    api.post("/v1/messages").mock(return_value=ok(message(text, stop_reason=stop_reason)))
    hub = make_hub()
    with pytest.raises(ResponseError, match=match) as caught:
        hub.ask("Where?", options=ChatOptions(json_schema={"type": "object"}))
    assert caught.value.request_id == "req_011CSHoEeqs5C35K2UUqR7Fy"
    assert hub.dialogues().items == ()  # a failed ask stores nothing


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (httpx.Response(200, text="<html>hi</html>"), "not JSON"),
        (ok({"type": "message", "content": "oops"}), "not a message"),
    ],
)
def test_an_answer_that_is_not_a_message_is_a_response_error(
    api: respx.MockRouter, make_hub: MakeHub, response: httpx.Response, match: str
) -> None:
    api.post("/v1/messages").mock(return_value=response)
    with pytest.raises(ResponseError, match=match):
        make_hub().ask("hi")


def test_images_in_a_chat_message_are_image_blocks(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    from modelport.testing import TINY_PNG

    route = api.post("/v1/messages").mock(return_value=ok(message()))
    make_hub().ask("What is this?", images=[Image.from_bytes(TINY_PNG), "https://x.test/cat.jpg"])
    content = sent(route)["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["type"] == "image"
    assert content[1]["source"]["type"] == "base64"
    assert content[1]["source"]["media_type"] == "image/png"
    assert content[1]["source"]["data"].startswith(PNG_B64_START)
    assert content[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://x.test/cat.jpg"},
    }


def test_a_data_url_given_to_the_backend_is_sent_as_base64(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/v1/messages").mock(return_value=ok(message()))
    image = Image(url="data:image/gif;base64,R0lGODlh", source="inline")
    make_hub().backend("chat").complete(ChatRequest([Message("user", [ImagePart(image)])]))
    assert sent(route)["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/gif",
                                     "data": "R0lGODlh"}}
    ]  # fmt: skip


async def test_async_ask_matches_sync(api: respx.MockRouter, make_async_hub: MakeAsyncHub) -> None:
    route = api.post("/v1/messages").mock(return_value=ok(message("Paris.")))
    hub = make_async_hub()
    answer = await hub.ask("Capital of France?", options=ChatOptions(max_tokens=5))
    assert (answer.reply.text, answer.reply.request_id) == (
        "Paris.",
        "req_011CSHoEeqs5C35K2UUqR7Fy",
    )
    assert sent(route)["max_tokens"] == 5
    assert route.calls.last.request.headers["x-api-key"] == KEY
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    route.mock(return_value=ok(message('{"n": 1}')))
    structured = await hub.ask("n?", options=ChatOptions(json_schema=schema))
    assert structured.reply.data == {"n": 1}


def test_the_backend_object(make_hub: MakeHub) -> None:
    chat = make_hub(vision_model="claude-opus-5").backend("chat")
    assert KEY not in repr(chat)
    assert repr(chat) == f"AnthropicBackend(name='anthropic', base_url='{BASE}')"
    assert chat.configured_models == {
        MODEL: "backends.anthropic.model",
        "claude-opus-5": "backends.anthropic.vision_model",
    }
    assert make_hub().backend("chat").configured_models == {MODEL: "backends.anthropic.model"}
    assert chat.accepts_urls is True
    assert chat.media_types == {"image/png", "image/jpeg", "image/gif", "image/webp"}
    chat.close()
    asyncio.run(chat.aclose())


def test_a_missing_key_names_its_variable(make_hub: MakeHub) -> None:
    with pytest.raises(MissingSecretError, match="ANTHROPIC_API_KEY"):
        make_hub(env={}).backend("chat")
    hub = make_hub(env={"CLAUDE_KEY": KEY}, api_key_env="CLAUDE_KEY")
    assert hub.backend("chat") is not None


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_tokens", 0), ("timeout_s", -1), ("base_url", "api.anthropic.com")],
)
def test_bad_settings_are_config_errors_naming_the_key(
    make_hub: MakeHub, key: str, value: object
) -> None:
    with pytest.raises(ConfigError, match=f"backends.anthropic.{key}"):
        make_hub(**{key: value}).backend("chat")
