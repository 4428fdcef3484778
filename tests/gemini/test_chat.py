"""Chat through the Gemini backend: requests, replies, streams, models, settings. Every test
taking ``make`` runs twice: through a ``Hub`` and through an ``AsyncHub``."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import respx

from modelport import BackendContext, ChatOptions, Image, StreamDelta
from modelport.errors import (
    BackendConnectionError,
    ConfigError,
    MissingSecretError,
    RateLimitedError,
    ResponseError,
    TransientError,
)

from ..support import cut_sse
from .conftest import (
    BASE,
    GENERATE,
    KEY,
    MODEL,
    PNG,
    STREAM,
    MakeCaller,
    answer,
    blocked_prompt,
    chunk,
    event,
    no_key_in_urls,
    ok,
    retry_info,
    sent,
    sse,
)


def test_ask_sends_instructions_roles_and_generation_config(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    route = api.post(path__regex=r":generateContent$").mock(return_value=ok(answer("Paris.")))
    geo = {"instructions": "Answer in one word.", "options": {"seed": 3}}
    caller = make(options={"temperature": 0.2, "max_tokens": 50}, more={"assistants": {"geo": geo}})
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    options = ChatOptions(
        top_p=0.9,
        max_tokens=20,
        stop=["\n"],
        reasoning_effort="low",
        extra={"topK": 40, "safetySettings": safety},
    )
    first = caller.ask("Capital of France?", assistant="geo", options=options)
    reply = first.reply
    assert (reply.text, reply.model, reply.finish_reason) == ("Paris.", MODEL, "stop")
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (12, 3)
    assert reply.request_id == "r-1"
    assert sent(route) == {
        "systemInstruction": {"parts": [{"text": "Answer in one word."}]},
        "contents": [{"role": "user", "parts": [{"text": "Capital of France?"}]}],
        "generationConfig": {
            "temperature": 0.2,  # the backend's default, under the call's options
            "topP": 0.9,
            "maxOutputTokens": 20,
            "stopSequences": ["\n"],
            "seed": 3,  # the assistant's
            "thinkingConfig": {"thinkingLevel": "LOW"},
            "topK": 40,
        },
        "safetySettings": safety,  # a top-level key of the request, not generation config
    }
    caller.ask("And of Spain?", dialogue=first.dialogue_id, assistant="geo", model="gemini-x")
    assert route.calls.last.request.url.path == "/v1beta/models/gemini-x:generateContent"
    assert sent(route)["contents"] == [
        {"role": "user", "parts": [{"text": "Capital of France?"}]},
        {"role": "model", "parts": [{"text": "Paris."}]},
        {"role": "user", "parts": [{"text": "And of Spain?"}]},
    ]
    no_key_in_urls(api)


def test_no_reasoning_turns_thinking_off(api: respx.MockRouter, make: MakeCaller) -> None:
    route = api.post(GENERATE).mock(return_value=ok(answer()))
    make().ask("hi", options=ChatOptions(reasoning_effort="none"))
    assert sent(route)["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 0}}


def test_thoughts_are_left_out_of_the_text_and_counted_as_output(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    usage = {"promptTokenCount": 10, "candidatesTokenCount": 4, "thoughtsTokenCount": 30}
    api.post(GENERATE).mock(return_value=ok(answer("42.", thought="Let me think.", usage=usage)))
    reply = make().ask("The answer?").reply
    assert reply.text == "42."
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (10, 34)


def test_json_schema_is_sent_as_response_json_schema_and_parsed(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    route = api.post(GENERATE).mock(return_value=ok(answer('{"city": "Paris"}')))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    reply = make().ask("Where?", options=ChatOptions(json_schema=schema)).reply
    assert reply.data == {"city": "Paris"}
    config = sent(route)["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_a_reply_that_is_not_the_json_asked_for_is_a_response_error(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    route = api.post(GENERATE).mock(return_value=ok(answer("Paris, of course.")))
    with pytest.raises(ResponseError, match="asked for JSON"):
        make().ask("Where?", options=ChatOptions(json_schema={"type": "object"}))
    assert route.call_count == 1  # not retried


def test_images_in_a_chat_message_are_sent_inline(api: respx.MockRouter, make: MakeCaller) -> None:
    route = api.post(GENERATE).mock(return_value=ok(answer("A red square.")))
    make().ask("What is this?", images=[Image.from_bytes(PNG)])
    (content,) = sent(route)["contents"]
    assert content["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}},
    ]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("LANGUAGE", "language"),
    ],
)
def test_finish_reasons_are_mapped(
    api: respx.MockRouter, make: MakeCaller, reason: str, expected: str
) -> None:
    api.post(GENERATE).mock(return_value=ok(answer("Some text", finish=reason)))
    assert make().ask("hi").reply.finish_reason == expected


def test_an_answer_cut_at_its_token_limit_may_be_empty(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    api.post(GENERATE).mock(return_value=ok(answer(None, finish="MAX_TOKENS")))
    reply = make().ask("hi").reply
    assert (reply.text, reply.finish_reason) == ("", "length")


def test_a_blocked_prompt_is_a_response_error_naming_the_reason(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    route = api.post(GENERATE).mock(return_value=ok(blocked_prompt("PROHIBITED_CONTENT")))
    caller = make()
    with pytest.raises(ResponseError, match=r"blocked the prompt \(PROHIBITED_CONTENT\)") as caught:
        caller.ask("something bad")
    assert caught.value.retryable is False
    assert route.call_count == 1
    route.mock(return_value=ok(answer("Fine.")))
    assert caller.ask("something good").reply.text == "Fine."


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (answer(None, finish="SAFETY"), r"blocked the answer \(SAFETY\)"),
        (answer(None, finish="SPII"), r"blocked the answer \(SPII\)"),
        ({"candidates": [], "modelVersion": MODEL}, "no candidate"),
        ({"modelVersion": MODEL}, "no candidate"),
    ],
)
def test_an_empty_candidate_is_a_response_error(
    api: respx.MockRouter, make: MakeCaller, body: dict[str, object], match: str
) -> None:
    route = api.post(GENERATE).mock(return_value=ok(body))
    with pytest.raises(ResponseError, match=match):
        make().ask("hi")
    assert route.call_count == 1


# --- streams -----------------------------------------------------------------------------------

LAST_USAGE = {"promptTokenCount": 9, "candidatesTokenCount": 2, "totalTokenCount": 11}
CHUNKS = (
    chunk("Hel", usage={"promptTokenCount": 9, "totalTokenCount": 9}),
    chunk("lo"),
    chunk("!", finish="STOP", usage=LAST_USAGE),
)


def test_a_stream_yields_text_then_finish_and_usage_on_the_last_chunk(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    route = api.post(STREAM).mock(return_value=sse(*CHUNKS))
    seen: list[StreamDelta] = []
    caller = make()
    found = caller.stream("Say hello", seen)
    assert [d.text for d in seen] == ["Hel", "lo", "!"]
    assert [d.finish_reason for d in seen] == [None, None, "stop"]
    assert seen[0].usage is None
    assert seen[-1].usage is not None
    assert (seen[-1].usage.prompt_tokens, seen[-1].usage.completion_tokens) == (9, 2)
    assert (found.reply.text, found.reply.usage.completion_tokens) == ("Hello!", 2)
    request = route.calls.last.request
    assert request.url.params["alt"] == "sse"
    assert sent(route)["contents"] == [{"role": "user", "parts": [{"text": "Say hello"}]}]
    no_key_in_urls(api)


def test_a_stream_cut_mid_way_is_a_connection_error(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    route = api.post(STREAM).mock(return_value=cut_sse(*CHUNKS[:2]))
    seen: list[StreamDelta] = []
    with pytest.raises(BackendConnectionError, match="mid-stream") as caught:
        make().stream("hi", seen)
    assert [d.text for d in seen] == ["Hel", "lo"]
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    assert route.call_count == 1  # never retried after the first delta


def test_a_stream_that_ends_without_a_finish_reason_is_a_connection_error(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    api.post(STREAM).mock(return_value=sse(*CHUNKS[:2]))
    with pytest.raises(BackendConnectionError, match="ended before"):
        make().stream("hi")


def test_an_answer_blocked_mid_stream_ends_with_content_filter(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    api.post(STREAM).mock(return_value=sse(chunk("Once upon"), chunk(finish="SAFETY")))
    seen: list[StreamDelta] = []
    found = make().stream("a story", seen)
    assert [(d.text, d.finish_reason) for d in seen] == [
        ("Once upon", None),
        ("", "content_filter"),
    ]
    assert found.reply.finish_reason == "content_filter"


def test_an_answer_blocked_before_any_text_is_a_response_error(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    api.post(STREAM).mock(return_value=sse(chunk(finish="RECITATION")))
    with pytest.raises(ResponseError, match=r"blocked the answer \(RECITATION\)"):
        make().stream("a song")


def test_a_prompt_blocked_in_a_stream_is_a_response_error(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    route = api.post(STREAM).mock(return_value=sse(event(blocked_prompt("BLOCKLIST"))))
    with pytest.raises(ResponseError, match=r"blocked the prompt \(BLOCKLIST\)"):
        make().stream("hi")
    assert route.call_count == 1


def test_an_error_event_mid_stream_is_mapped(api: respx.MockRouter, make: MakeCaller) -> None:
    busy = {
        "error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}
    }
    api.post(STREAM).mock(return_value=sse(chunk("Hel"), event(busy)))
    with pytest.raises(RateLimitedError, match="the server failed mid-stream: Resource exhausted"):
        make().stream("hi")


def test_an_error_event_without_a_status_is_transient_and_keeps_its_retry_info(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    broken = {"error": {"message": f"Internal error {KEY}", "details": [retry_info("7s")]}}
    route = api.post(STREAM).mock(return_value=sse(chunk("Hel"), event(broken)))
    with pytest.raises(TransientError, match="mid-stream: Internal error") as caught:
        make().stream("hi")
    assert caught.value.retryable is True
    assert caught.value.retry_after == 7.0
    assert KEY not in str(caught.value)
    assert route.call_count == 1  # never retried after the first delta


# --- models ------------------------------------------------------------------------------------


def _model(name: str, *methods: str) -> dict[str, object]:
    return {"name": f"models/{name}", "displayName": name, "supportedGenerationMethods": methods}


def test_models_are_listed_page_by_page_keeping_those_that_generate(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    first = {
        "models": [
            _model("gemini-3.5-flash", "generateContent", "countTokens"),
            _model("gemini-embedding-001", "embedContent"),
        ],
        "nextPageToken": "page-2",
    }
    second = {"models": [_model("gemini-2.5-pro", "generateContent")]}
    route = api.get("/models").mock(side_effect=[ok(first), ok(second)])
    models = make().models()
    assert [m.id for m in models] == ["gemini-3.5-flash", "gemini-2.5-pro"]
    assert {m.backend for m in models} == {"gemini"}
    params = [call.request.url.params for call in route.calls]
    assert [p.get("pageToken") for p in params] == [None, "page-2"]
    assert all(p["pageSize"] == "1000" for p in params)
    no_key_in_urls(api)


# --- settings and the key ----------------------------------------------------------------------


def test_a_missing_key_names_the_variable(api: respx.MockRouter, make: MakeCaller) -> None:
    with pytest.raises(MissingSecretError, match="GEMINI_API_KEY"):
        make(env={}).ask("hi")


def test_google_api_key_is_used_when_gemini_api_key_is_unset(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    route = api.post(GENERATE).mock(return_value=ok(answer()))
    make(env={"GOOGLE_API_KEY": KEY}).ask("hi")
    assert route.calls.last.request.headers["x-goog-api-key"] == KEY
    make(env={"GEMINI_API_KEY": KEY, "GOOGLE_API_KEY": "other"}).ask("hi")
    assert route.calls.last.request.headers["x-goog-api-key"] == KEY


def test_the_key_variable_and_headers_are_configurable(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    route = api.post(GENERATE).mock(return_value=ok(answer()))
    caller = make(env={"TEAM_KEY": KEY}, api_key_env="TEAM_KEY", headers={"x-team": "blue"})
    caller.ask("hi")
    assert route.calls.last.request.headers["x-team"] == "blue"
    no_key_in_urls(api)
    with pytest.raises(MissingSecretError, match="TEAM_KEY"):
        make(env={"GEMINI_API_KEY": KEY}, api_key_env="TEAM_KEY").ask("hi")


def test_the_settings_choose_the_models(api: respx.MockRouter, make: MakeCaller) -> None:
    route = api.post("/models/gemini-2.5-pro:generateContent").mock(return_value=ok(answer()))
    make(model="gemini-2.5-pro").ask("hi")
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("timeout_s", 0, "timeout_s"),
        ("max_connections", 0, "max_connections"),
        ("base_url", "generativelanguage.googleapis.com", "base_url"),
        ("temprature", 1, "temprature"),
    ],
)
def test_bad_settings_name_the_key(make: MakeCaller, key: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make(**{key: value}).ask("hi")


def test_the_backend_shows_no_key_and_names_its_models() -> None:
    from modelport_gemini import GeminiBackend, GeminiSettings

    settings = GeminiSettings(base_url=BASE, vision_model="gemini-2.5-pro")
    backend = GeminiBackend(BackendContext("gemini", settings, env={"GEMINI_API_KEY": KEY}))
    assert repr(backend) == f"GeminiBackend(name='gemini', base_url='{BASE}')"
    assert KEY not in repr(backend.__dict__)
    assert backend.configured_models == {
        MODEL: "backends.gemini.model",
        "gemini-2.5-pro": "backends.gemini.vision_model",
    }
    backend.close()


def test_importing_the_plugin_imports_no_http_client() -> None:
    code = (
        "import sys, modelport_gemini;"
        "from modelport import make_plugins;"
        "make_plugins(autoload=False, plugins=[('gemini', modelport_gemini)]);"
        "print('httpx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_plugin_is_found_through_its_entry_point() -> None:
    from modelport import make_plugins

    info = next(i for i in make_plugins().infos() if i.name == "gemini")
    assert info.status == "loaded"
    assert info.distribution == "modelport"
    assert set(info.backends) == {"gemini"}


def test_the_docs_settings_table_names_exactly_the_settings() -> None:
    """docs/gemini.md keeps its own table of the settings: it must not drift."""
    import attrs

    from modelport_gemini import GeminiSettings

    page = (Path(__file__).parents[2] / "docs" / "gemini.md").read_text(encoding="utf-8")
    section = page.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = {row.split("|")[1].strip(" `") for row in section.splitlines() if row[:3] == "| `"}
    assert documented == {field.name for field in attrs.fields(GeminiSettings)}


def test_a_model_list_that_never_ends_is_read_only_so_far(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    page = {"models": [_model(MODEL, "generateContent")], "nextPageToken": "again"}
    route = api.get("/models").mock(return_value=ok(page))
    assert len(make().models()) == route.call_count == 50
