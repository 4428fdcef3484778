"""The hosted OpenAI-compatible presets: each one's documented URL, key variable and quirks,
asserted on the requests it sends (faked at the transport, never sent)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

import modelport_openai
from modelport import ChatOptions
from modelport.errors import MissingSecretError
from modelport.testing import FakeBackends, make_test_hub

from .conftest import chunk, completion, sse

KEY = "hosted-" + "Kq9" * 10

#: preset: (base URL, key variable, default model, token-limit key)
HOSTS = {
    "together": (
        "https://api.together.xyz/v1",
        "TOGETHER_API_KEY",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "max_tokens",
    ),
    "groq": (
        "https://api.groq.com/openai/v1",
        "GROQ_API_KEY",
        "llama-3.3-70b-versatile",
        "max_completion_tokens",
    ),
    "openrouter": (
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
        "meta-llama/llama-3.3-70b-instruct",
        "max_tokens",
    ),
    "deepseek": ("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", "deepseek-chat", "max_tokens"),
    "fireworks": (
        "https://api.fireworks.ai/inference/v1",
        "FIREWORKS_API_KEY",
        "accounts/fireworks/models/llama-v3p3-70b-instruct",
        "max_tokens",
    ),
    "mistral": (
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
        "mistral-small-latest",
        "max_tokens",
    ),
}

SCHEMA = {"title": "City", "type": "object", "properties": {"name": {"type": "string"}}}


def hub_for(preset: str, env: dict[str, str] | None = None, **settings: Any) -> Any:
    return make_test_hub(
        overrides={
            "capabilities": {**FakeBackends.capabilities(), "chat": preset},
            "backends": {preset: settings},
            "retry": {"attempts": 1},
        },
        plugins=[("openai", modelport_openai)],
        env={HOSTS[preset][1]: KEY} if env is None else env,
    )


def body_of(route: respx.Route) -> dict[str, Any]:
    return json.loads(route.calls.last.request.content)  # type: ignore[no-any-return]


@pytest.mark.parametrize("preset", sorted(HOSTS))
def test_each_host_gets_its_url_key_model_and_token_key(preset: str) -> None:
    base, _variable, model, tokens = HOSTS[preset]
    with respx.mock(base_url=base) as api:
        route = api.post("/chat/completions").mock(
            return_value=httpx.Response(200, json=completion("Paris.", model=model))
        )
        with hub_for(preset) as hub:
            answer = hub.ask("Capital of France?", options=ChatOptions(max_tokens=9, seed=3))
    assert answer.reply.text == "Paris."
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = body_of(route)
    assert body["model"] == model
    assert body[tokens] == 9
    other = {"max_tokens", "max_completion_tokens"} - {tokens}
    assert not other & set(body)
    if preset == "mistral":
        assert body["random_seed"] == 3
        assert "seed" not in body
    else:
        assert body["seed"] == 3


@pytest.mark.parametrize("preset", sorted(HOSTS))
def test_a_missing_key_names_the_hosts_variable(preset: str) -> None:
    with hub_for(preset, env={}) as hub, pytest.raises(MissingSecretError) as caught:
        hub.ask("hi")
    assert HOSTS[preset][1] in str(caught.value)


@pytest.mark.parametrize(("preset", "asks_usage"), [("groq", True), ("mistral", False)])
def test_streams_ask_for_usage_where_the_host_takes_stream_options(
    preset: str, asks_usage: bool
) -> None:
    base = HOSTS[preset][0]
    with respx.mock(base_url=base) as api:
        route = api.post("/chat/completions").mock(
            return_value=sse(
                chunk("Hel"), chunk("lo", finish="stop"), chunk(usage={"prompt_tokens": 3})
            )
        )
        with hub_for(preset) as hub:
            stream = hub.stream("hi")
            assert "".join(d.text for d in stream) == "Hello"
    body = body_of(route)
    assert body["stream"] is True
    assert ("stream_options" in body) is asks_usage
    assert stream.answer is not None
    assert stream.answer.reply.usage.prompt_tokens == 3


def test_deepseek_is_asked_for_json_by_json_mode_with_the_schema_as_an_instruction() -> None:
    with respx.mock(base_url=HOSTS["deepseek"][0]) as api:
        route = api.post("/chat/completions").mock(
            return_value=httpx.Response(200, json=completion('{"name": "Paris"}'))
        )
        with hub_for("deepseek") as hub:
            answer = hub.ask("Capital of France?", options=ChatOptions(json_schema=SCHEMA))
    assert answer.reply.data == {"name": "Paris"}
    body = body_of(route)
    assert body["response_format"] == {"type": "json_object"}
    first = body["messages"][0]
    assert first["role"] == "system"
    assert "JSON" in first["content"]
    assert json.loads(first["content"].partition("schema: ")[2]) == SCHEMA
    assert body["messages"][-1] == {"role": "user", "content": "Capital of France?"}


@pytest.mark.parametrize("preset", ["together", "groq", "openrouter", "fireworks", "mistral"])
def test_hosts_that_take_schemas_get_the_schema(preset: str) -> None:
    with respx.mock(base_url=HOSTS[preset][0]) as api:
        route = api.post("/chat/completions").mock(
            return_value=httpx.Response(200, json=completion('{"name": "Paris"}'))
        )
        with hub_for(preset) as hub:
            hub.ask("Capital of France?", options=ChatOptions(json_schema=SCHEMA))
    assert body_of(route)["response_format"]["type"] == "json_schema"


def test_deepseek_offers_chat_only() -> None:
    from modelport import make_plugins

    spec = make_plugins(autoload=False, plugins=[("openai", modelport_openai)]).registry.get(
        "deepseek"
    )
    assert spec is not None
    assert {c.value for c in spec.capabilities} == {"chat"}
