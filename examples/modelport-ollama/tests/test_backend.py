"""What the conformance suites cannot know: Ollama's own wire format, its failures, and
selection through config alone."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from ollama_fake import BASE, answer, failure, ndjson, sent

from modelport import ChatOptions, Hub, Image, Settings, load_settings
from modelport.errors import (
    AuthenticationError,
    BackendConnectionError,
    ConfigError,
    MissingSecretError,
    NotFoundError,
    RateLimitedError,
    ResponseError,
)
from modelport.testing import TINY_PNG, RecordingSleep

TOKEN = "proxy-token-" + "q8" * 12

CONFIG = f"""
[capabilities]
chat = "ollama-native"
vision = "ollama-native"
storage = "jsonfile"

[backends.ollama-native]
base_url = "{BASE}"
model = "llama3.2"
keep_alive = "10m"
api_key_env = "OLLAMA_PROXY_TOKEN"

[assistants.terse]
instructions = "Answer in one word."

[retry]
attempts = 3
jitter_s = 0
"""


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings from a config file alone, as an operator writes it."""
    config = tmp_path / "modelport.toml"
    root = (tmp_path / "store").as_posix()
    config.write_text(CONFIG + f'\n[backends.jsonfile]\nroot = "{root}"\n')
    return load_settings(config, env={})


@pytest.fixture
def hub(settings: Settings, sleeps: RecordingSleep) -> Iterator[Hub]:
    """A hub on those settings: the plugin comes from its installed entry point."""
    hub = Hub(settings, env={"OLLAMA_PROXY_TOKEN": TOKEN}, sleep=sleeps)
    yield hub
    hub.close()


def test_config_alone_selects_the_plugin(hub: Hub) -> None:
    assert hub.backend_name("chat") == hub.backend_name("vision") == "ollama-native"
    info = {p.name: p for p in hub.plugins.infos()}["ollama-native"]
    assert info.distribution == "modelport-ollama"


def test_a_question_becomes_an_api_chat_body(hub: Hub, api: respx.MockRouter) -> None:
    chat = api.post("/api/chat").mock(return_value=httpx.Response(200, json=answer("Lima.")))
    reply = hub.ask(
        "Capital of Peru?",
        assistant="terse",
        options=ChatOptions(
            temperature=0.2, max_tokens=5, stop=["\n"], seed=7, extra={"num_ctx": 8192}
        ),
    )
    assert (reply.text, reply.reply.usage.prompt_tokens, reply.reply.usage.completion_tokens) == (
        "Lima.",
        12,
        4,
    )
    assert sent(chat) == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "Capital of Peru?"},
        ],
        "stream": False,
        "options": {
            "temperature": 0.2,
            "num_predict": 5,
            "stop": ["\n"],
            "seed": 7,
            "num_ctx": 8192,
        },
        "keep_alive": "10m",
    }
    assert chat.calls.last.request.headers["authorization"] == f"Bearer {TOKEN}"


def test_images_go_base64_to_the_vision_model_and_a_schema_becomes_format(
    hub: Hub, api: respx.MockRouter
) -> None:
    chat = api.post("/api/chat").mock(
        return_value=httpx.Response(200, json=answer('{"colour": "red"}', model="llava"))
    )
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}}
    reply = hub.describe_image(TINY_PNG, prompt="Which colour?", schema=schema)
    assert reply.data == {"colour": "red"}
    body = sent(chat)
    assert body["model"] == "llava"
    assert body["format"] == schema
    assert body["messages"] == [
        {
            "role": "user",
            "content": "Which colour?",
            "images": [base64.b64encode(TINY_PNG).decode()],
        }
    ]


def test_an_image_ollama_cannot_read_is_re_encoded_first(hub: Hub, api: respx.MockRouter) -> None:
    from PIL import Image as Pillow

    chat = api.post("/api/chat").mock(return_value=httpx.Response(200, json=answer("A square.")))
    webp = _encoded(Pillow.new("RGB", (8, 8), "blue"), "WEBP")
    hub.describe_image(webp)
    sent_image = base64.b64decode(sent(chat)["messages"][0]["images"][0])
    assert Image.from_bytes(sent_image).media_type in {"image/png", "image/jpeg"}


class Chunked(httpx.SyncByteStream):
    """A body that arrives in pieces that cut JSON lines in half."""

    def __init__(self, body: bytes, size: int) -> None:
        self.pieces = [body[i : i + size] for i in range(0, len(body), size)]

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces


def test_a_stream_whose_lines_arrive_in_pieces_assembles(hub: Hub, api: respx.MockRouter) -> None:
    body = ndjson("Hel", "lo ", "there.").content
    api.post("/api/chat").mock(return_value=httpx.Response(200, stream=Chunked(body, 7)))
    stream = hub.stream("Hi")
    assert "".join(d.text for d in stream) == "Hello there."
    assert stream.answer is not None
    reply = stream.answer.reply
    assert (reply.text, reply.finish_reason, reply.usage.completion_tokens) == (
        "Hello there.",
        "stop",
        4,
    )


def test_an_error_line_mid_stream_raises_and_stores_nothing(
    hub: Hub, api: respx.MockRouter
) -> None:
    body = ndjson("Hel", done=False).content + b'{"error": "model runner crashed"}\n'
    api.post("/api/chat").mock(return_value=httpx.Response(200, json=answer("ok")))
    dialogue = hub.ask("Hi").dialogue_id
    api.post("/api/chat").mock(return_value=httpx.Response(200, content=body))
    with pytest.raises(ResponseError, match="model runner crashed"):
        list(hub.stream("Again", dialogue=dialogue))
    assert [m.text for m in hub.dialogue(dialogue).messages] == ["Hi", "ok"]


def test_a_stream_cut_before_done_is_a_connection_error(hub: Hub, api: respx.MockRouter) -> None:
    api.post("/api/chat").mock(return_value=ndjson("Hel", "lo", done=False))
    with pytest.raises(BackendConnectionError, match="ended before the answer was complete"):
        list(hub.stream("Hi"))


def test_a_model_not_pulled_says_to_pull_it(hub: Hub, api: respx.MockRouter) -> None:
    chat = api.post("/api/chat").mock(
        return_value=failure(404, 'model "llama9" not found, try pulling it first')
    )
    with pytest.raises(NotFoundError) as caught:
        hub.ask("Hi", model="llama9")
    assert "`ollama pull llama9`" in str(caught.value)  # the model the server named
    assert chat.call_count == 1  # a 404 is not retried


def test_a_server_that_is_not_running_says_to_start_it(hub: Hub, api: respx.MockRouter) -> None:
    api.post("/api/chat").mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(BackendConnectionError) as caught:
        hub.ask("Hi")
    assert "ollama serve" in str(caught.value)


def test_a_429_from_a_proxy_is_retried_after_its_retry_after(
    hub: Hub, api: respx.MockRouter, sleeps: RecordingSleep
) -> None:
    chat = api.post("/api/chat").mock(
        side_effect=[
            failure(429, "slow down", **{"retry-after": "3"}),
            httpx.Response(200, json=answer("ok")),
        ]
    )
    assert hub.ask("Hi").text == "ok"
    assert chat.call_count == 2
    assert sleeps.waits == [3.0]


def test_a_429_storm_ends_in_a_rate_limit_error(hub: Hub, api: respx.MockRouter) -> None:
    chat = api.post("/api/chat").mock(return_value=failure(429, "slow down"))
    with pytest.raises(RateLimitedError):
        hub.ask("Hi")
    assert chat.call_count == 3


def test_models_come_from_api_tags(hub: Hub, api: respx.MockRouter) -> None:
    models = hub.models()
    assert [m.id for m in models] == ["llama3.2:latest", "llava:latest"]
    assert models[0].created_at is not None


def test_the_async_stream_matches(hub: Hub, api: respx.MockRouter, tmp_path: Path) -> None:
    from modelport import AsyncHub

    api.post("/api/chat").mock(side_effect=lambda request: ndjson("Hel", "lo"))

    async def run() -> str:
        async with AsyncHub(hub.settings, env={"OLLAMA_PROXY_TOKEN": TOKEN}) as ahub:
            stream = await ahub.stream("Hi")
            return "".join([piece.text async for piece in stream])

    assert asyncio.run(run()) == "Hello"


def test_a_missing_token_names_the_variable_and_the_token_never_shows(
    hub: Hub, api: respx.MockRouter, tmp_path: Path
) -> None:
    with pytest.raises(MissingSecretError, match="OLLAMA_PROXY_TOKEN"):
        Hub(hub.settings, env={}).ask("Hi")
    api.post("/api/chat").mock(return_value=failure(401, "bad token"))
    with pytest.raises(AuthenticationError) as caught:
        hub.ask("Hi")
    backend = hub.backend("chat")
    assert TOKEN not in repr(backend)
    assert TOKEN not in str(caught.value)


def test_a_timeout_that_is_not_positive_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(CONFIG.replace('keep_alive = "10m"', "timeout_s = -1"))
    hub = Hub(load_settings(config, env={}), env={"OLLAMA_PROXY_TOKEN": TOKEN})
    with pytest.raises(ConfigError) as caught:
        hub.backend("chat")
    assert caught.value.key == "backends.ollama-native.timeout_s"
    assert "key 'backends.ollama-native.timeout_s': must be > 0, not -1" in str(caught.value)
    assert str(config) in str(caught.value)


def _encoded(image: object, kind: str) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, kind)  # type: ignore[attr-defined]
    return buffer.getvalue()
