"""Chat through the OpenAI backend: requests, replies, streams, models, presets."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
import respx

from modelport import ChatOptions, Image
from modelport.errors import (
    BackendConnectionError,
    ConfigError,
    MissingSecretError,
    ResponseError,
    TransientError,
)

from ..support import cut_sse
from .conftest import (
    BASE,
    KEY,
    PNG,
    MakeAsyncHub,
    MakeHub,
    OnLoop,
    chunk,
    completion,
    ok,
    sent,
    sse,
)


def test_ask_sends_history_instructions_and_options_and_reads_the_reply(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion("Paris.")))
    hub = make_hub(options={"temperature": 0.2, "max_tokens": 50})
    options = ChatOptions(
        max_tokens=20, stop=["\n"], seed=7, top_p=0.9, reasoning_effort="none", extra={"user": "u1"}
    )
    first = hub.ask("Capital of France?", options=options)
    assert (first.reply.text, first.reply.model, first.reply.finish_reason) == (
        "Paris.", "gpt-6-luna", "stop"
    )  # fmt: skip
    assert (first.reply.usage.prompt_tokens, first.reply.usage.completion_tokens) == (12, 3)
    assert first.reply.request_id == "req_123"
    body = sent(route)
    assert body == {
        "model": "gpt-6-luna",
        "messages": [{"role": "user", "content": "Capital of France?"}],
        "temperature": 0.2,  # the backend's default, under the call's options
        "max_completion_tokens": 20,
        "stop": ["\n"],
        "seed": 7,
        "top_p": 0.9,  # sent: with no reasoning, the model takes sampling options
        "reasoning_effort": "none",
        "user": "u1",
    }
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {KEY}"

    hub.ask("And of Spain?", dialogue=first.dialogue_id, model="my-model")
    body = sent(route)
    assert body["model"] == "my-model"
    assert [m["content"] for m in body["messages"]] == [
        "Capital of France?", "Paris.", "And of Spain?"
    ]  # fmt: skip


def test_an_assistant_profile_gives_instructions_model_and_options(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion("Arr.")))
    pirate = {"instructions": "Talk like a pirate.", "model": "my-model", "options": {"seed": 3}}
    hub = make_hub(more={"assistants": {"pirate": pirate}})
    first = hub.ask("hi", assistant="pirate")
    hub.ask("more", dialogue=first.dialogue_id, assistant="pirate")
    body = sent(route)
    assert body["model"] == "my-model"
    assert body["seed"] == 3
    assert body["messages"] == [
        {"role": "system", "content": "Talk like a pirate."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Arr."},
        {"role": "user", "content": "more"},
    ]


def test_json_schema_is_sent_as_response_format_and_parsed(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion('{"city": "Paris"}')))
    schema = {"title": "City answer", "type": "object", "properties": {"city": {"type": "string"}}}
    answer = make_hub().ask("Where?", options=ChatOptions(json_schema=schema))
    assert answer.reply.data == {"city": "Paris"}
    assert sent(route)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "City_answer", "schema": schema},
    }


def test_a_reply_that_is_not_the_json_asked_for_is_a_response_error(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    api.post("/chat/completions").mock(
        return_value=ok(completion('{"city": "Par', finish="length"))
    )
    hub = make_hub()
    with pytest.raises(ResponseError, match="cut at max_tokens"):
        hub.ask("Where?", options=ChatOptions(json_schema={"type": "object"}))
    assert hub.dialogues().items == ()  # a failed ask stores nothing


def test_a_response_that_is_not_json_says_to_check_the_base_url(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    api.post("/chat/completions").mock(return_value=httpx.Response(200, text="<html>hi</html>"))
    with pytest.raises(ResponseError, match="not JSON") as caught:
        make_hub().ask("hi")
    assert "check that base_url (https://api.test/v1)" in str(caught.value)


def test_a_response_without_choices_is_a_response_error(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    api.post("/chat/completions").mock(return_value=ok({"choices": []}))
    with pytest.raises(ResponseError, match="no choices"):
        make_hub().ask("hi")


def test_images_in_a_chat_message_are_sent_as_parts(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion()))
    make_hub().ask("What is this?", images=[Image.from_bytes(PNG), "https://x.test/cat.jpg"])
    content = sent(route)["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert content[2]["image_url"] == {"url": "https://x.test/cat.jpg", "detail": "auto"}


async def test_async_ask_matches_sync(api: respx.MockRouter, make_async_hub: MakeAsyncHub) -> None:
    on_loop = OnLoop(ok(completion("Paris.")))
    route = api.post("/chat/completions").mock(side_effect=on_loop)
    hub = make_async_hub()
    answer = await hub.ask("Capital of France?", options=ChatOptions(max_tokens=5))
    assert answer.reply.text == "Paris."
    assert answer.reply.request_id == "req_123"
    assert sent(route)["max_completion_tokens"] == 5
    assert on_loop.threads == [True]  # sent by the async backend method, not in a thread


# --- streaming --------------------------------------------------------------------------------

STREAM = (
    chunk("Hel"),
    chunk("lo"),
    chunk(finish="stop"),
    chunk(usage={"prompt_tokens": 9, "completion_tokens": 2}),
)


def test_stream_yields_text_then_finish_and_usage_and_stores_the_answer(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/chat/completions").mock(return_value=sse(*STREAM))
    hub = make_hub()
    stream = hub.stream("Say hello")
    deltas = list(stream)
    assert [d.text for d in deltas] == ["Hel", "lo", ""]
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage is not None
    assert deltas[-1].usage.completion_tokens == 2
    assert stream.answer is not None
    assert stream.answer.reply.text == "Hello"
    body = sent(route)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    stored = hub.dialogue(stream.answer.dialogue_id)
    assert [m.text for m in stored.messages] == ["Say hello", "Hello"]


async def test_async_stream_matches_sync(
    api: respx.MockRouter, make_async_hub: MakeAsyncHub
) -> None:
    api.post("/chat/completions").mock(return_value=sse(*STREAM))
    stream = await make_async_hub().stream("Say hello")
    texts = [d.text async for d in stream]
    assert texts == ["Hel", "lo", ""]
    assert stream.answer is not None
    assert stream.answer.reply.text == "Hello"
    assert stream.answer.reply.usage.prompt_tokens == 9


def test_a_stream_without_done_but_with_a_finish_reason_is_complete(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    api.post("/chat/completions").mock(
        return_value=sse(chunk("Hi"), chunk(finish="stop"), done=False)
    )
    stream = make_hub().stream("hi")
    assert "".join(d.text for d in stream) == "Hi"
    assert stream.answer is not None


def test_a_stream_that_ends_without_done_or_finish_is_an_error_and_stores_nothing(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/chat/completions").mock(return_value=sse(chunk("Hel"), done=False))
    hub = make_hub()
    stream = hub.stream("hi")
    with pytest.raises(BackendConnectionError, match="stream ended before the reply was complete"):
        list(stream)
    assert stream.answer is None
    assert hub.dialogues().items == ()
    assert route.call_count == 1  # never retried after the first delta


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_stream_cut_mid_way_raises_a_connection_error_and_stores_nothing(
    api: respx.MockRouter, make_hub: MakeHub, make_async_hub: MakeAsyncHub, asynchronous: bool
) -> None:
    route = api.post("/chat/completions").mock(return_value=cut_sse(chunk("Hel"), chunk("lo")))
    seen: list[str] = []
    if asynchronous:
        ahub = make_async_hub()
        astream = await ahub.stream("hi")

        async def drain() -> None:
            async for delta in astream:
                seen.append(delta.text)

        with pytest.raises(BackendConnectionError, match="peer closed") as caught:
            await drain()
        assert (await ahub.dialogues()).items == ()
    else:
        hub = make_hub()
        stream = hub.stream("hi")

        def pull() -> None:
            for delta in stream:
                seen.append(delta.text)

        with pytest.raises(BackendConnectionError, match="peer closed") as caught:
            pull()
        assert hub.dialogues().items == ()
    assert seen == ["Hel", "lo"]
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    assert "mid-stream" in str(caught.value)
    assert route.call_count == 1


def test_a_stream_cut_before_its_first_delta_is_retried(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/chat/completions").mock(side_effect=[cut_sse(), sse(*STREAM)])
    stream = make_hub().stream("hi")
    assert "".join(d.text for d in stream) == "Hello"
    assert route.call_count == 2


def test_an_error_event_mid_stream_is_a_transient_error(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    error_event = (
        'data: {"error": {"message": "The server had an error", "type": "server_error"}}\n\n'
    )
    api.post("/chat/completions").mock(return_value=sse(chunk("Hel"), error_event))
    with pytest.raises(TransientError, match="failed mid-stream: The server had an error"):
        list(make_hub().stream("hi"))


def test_stream_usage_can_be_turned_off_for_servers_that_reject_it(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/chat/completions").mock(return_value=sse(chunk("a", finish="stop")))
    list(make_hub(stream_usage=False).stream("hi"))
    assert "stream_options" not in sent(route)


# --- models ----------------------------------------------------------------------------------

MODELS = {
    "object": "list",
    "data": [
        {"id": "gpt-4o-mini", "object": "model", "created": 1_721_172_741, "owned_by": "system"},
        {"id": "gpt-4o", "object": "model", "created": 1_715_367_049, "owned_by": "system"},
    ],
}


def test_models_are_listed_and_cached_for_their_ttl(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.get("/models").mock(return_value=ok(MODELS))
    hub = make_hub()
    models = hub.models()
    assert [m.id for m in models] == ["gpt-4o", "gpt-4o-mini"]
    assert models[0].owned_by == "system"
    assert models[0].created_at is not None
    assert models[0].backend == "openai"
    hub.models()
    assert route.call_count == 1
    uncached = make_hub(models_ttl_s=0)
    uncached.models()
    uncached.models()
    assert route.call_count == 3


async def test_async_models(api: respx.MockRouter, make_async_hub: MakeAsyncHub) -> None:
    route = api.get("/models").mock(return_value=ok(MODELS))
    hub = make_async_hub()
    assert [m.id for m in await hub.models()] == ["gpt-4o", "gpt-4o-mini"]
    await hub.models()
    assert route.call_count == 1


# --- settings and presets ----------------------------------------------------------------------


def test_a_missing_key_names_the_variable(api: respx.MockRouter, make_hub: MakeHub) -> None:
    with pytest.raises(MissingSecretError, match="OPENAI_API_KEY") as caught:
        make_hub(env={}).ask("hi")
    assert caught.value.backend == "openai"


def test_the_key_variable_is_configurable(api: respx.MockRouter, make_hub: MakeHub) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion()))
    make_hub(api_key_env="TEAM_KEY", env={"TEAM_KEY": KEY}).ask("hi")
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


def test_openai_base_url_is_honoured(make_hub: MakeHub) -> None:
    with respx.mock(base_url="http://proxy.test/v1") as router:
        route = router.post("/chat/completions").mock(return_value=ok(completion()))
        hub = make_hub(
            base_url=None, env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "http://proxy.test/v1/"}
        )
        hub.ask("hi")
        assert route.call_count == 1


def test_organization_project_headers_and_query_are_sent(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion()))
    make_hub(
        organization="org-1", project="proj-1", headers={"x-team": "a"}, query={"api-version": "1"}
    ).ask("hi")
    request = route.calls.last.request
    assert request.headers["openai-organization"] == "org-1"
    assert request.headers["openai-project"] == "proj-1"
    assert request.headers["x-team"] == "a"
    assert request.url.params["api-version"] == "1"


def test_ollama_preset_needs_no_key_and_sends_max_tokens(make_hub: MakeHub) -> None:
    with respx.mock(base_url="http://localhost:11434/v1") as router:
        route = router.post("/chat/completions").mock(return_value=ok(completion(model="llama3.2")))
        answer = make_hub("ollama", env={}).ask("hi", options=ChatOptions(max_tokens=9))
        body = sent(route)
        assert body["model"] == "llama3.2"
        assert body["max_tokens"] == 9
        assert answer.reply.model == "llama3.2"


def test_vllm_preset_uses_the_model_the_server_serves(make_hub: MakeHub) -> None:
    with respx.mock(base_url="http://gpu.test:8000/v1") as router:
        router.get("/models").mock(return_value=ok({"data": [{"id": "Qwen/Qwen2.5-7B"}]}))
        route = router.post("/chat/completions").mock(return_value=ok(completion()))
        hub = make_hub("vllm", env={}, base_url="http://gpu.test:8000/v1")
        hub.ask("hi")
        hub.ask("again")
        assert [sent(route, i)["model"] for i in (0, 1)] == ["Qwen/Qwen2.5-7B"] * 2
        assert router.routes[0].call_count == 1  # cached


def test_azure_preset_needs_a_base_url(make_hub: MakeHub) -> None:
    with pytest.raises(ConfigError, match=r"backends.azure.base_url.*openai.azure.com/openai/v1"):
        make_hub("azure", env={"AZURE_OPENAI_API_KEY": KEY}).ask("hi")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("timeout_s", 0, "greater than 0"),
        ("base_url", "ftp://x", "not an http"),
        ("max_tokens_param", "max_new_tokens", "max_completion_tokens"),
        ("max_connections", 0, "at least 1"),
    ],
)
def test_bad_settings_name_the_key(make_hub: MakeHub, key: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as caught:
        make_hub(**{key: value}).ask("hi")
    assert f"backends.openai.{key}" in str(caught.value)


def test_an_unknown_setting_names_the_key(make_hub: MakeHub) -> None:
    with pytest.raises(ConfigError, match="unknown key 'temprature'"):
        make_hub(temprature=1).ask("hi")


def test_an_api_key_in_the_config_file_is_refused(make_hub: MakeHub) -> None:
    with pytest.raises(ConfigError, match="api_key"):
        make_hub(api_key="x").ask("hi")


def test_the_backend_repr_shows_no_key() -> None:
    from modelport import BackendContext
    from modelport_openai import OpenAIBackend, OpenAISettings

    backend = OpenAIBackend(
        BackendContext("openai", OpenAISettings(base_url=BASE), env={"OPENAI_API_KEY": KEY})
    )
    assert repr(backend) == "OpenAIBackend(name='openai', base_url='https://api.test/v1')"
    assert KEY not in repr(backend.__dict__)


def test_importing_the_plugin_imports_neither_the_sdk_nor_httpx() -> None:
    code = (
        "import sys, modelport_openai;"
        "from modelport import make_plugins;"
        "make_plugins(autoload=False, plugins=[('openai', modelport_openai)]);"
        "print(sorted(m for m in ('openai', 'httpx', 'httpx2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_plugin_is_found_through_its_entry_point() -> None:
    from modelport import make_plugins

    info = next(i for i in make_plugins().infos() if i.name == "openai")
    assert info.status == "loaded"
    assert info.distribution == "modelport"
    assert set(info.backends) == {
        *("openai", "azure", "ollama", "vllm", "llamacpp", "lmstudio"),
        *("together", "groq", "openrouter", "deepseek", "fireworks", "mistral"),
    }
