"""Issue 15's promise: ``[capabilities] chat = "anthropic"`` (or ``"gemini"``) and a key is all
it takes, from the command line and from Python, sync and async, for chat and vision. Each
vendor's real default address is faked at the transport; the installed plugins are found
through their entry points, as for a user."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner

from modelport import AsyncHub, Hub, load_settings
from modelport.cli import CliState, cli
from modelport.testing import TINY_PNG

ANTHROPIC = "https://api.anthropic.com"
GEMINI = "https://generativelanguage.googleapis.com/v1beta"


def anthropic_reply(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    assert request.headers["x-api-key"] == "anthropic-test-key-0123456789"
    if body.get("stream"):
        events = [
            ("message_start", {"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "content": [],
                "model": body["model"], "stop_reason": None,
                "usage": {"input_tokens": 5, "output_tokens": 0}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "Bonjour"}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                               "usage": {"output_tokens": 1}}),
            ("message_stop", {"type": "message_stop"}),
        ]  # fmt: skip
        text = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})
    blocks = body["messages"][-1]["content"]
    saw_image = isinstance(blocks, list) and any(b.get("type") == "image" for b in blocks)
    return httpx.Response(
        200,
        json={
            "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": "A cat." if saw_image else "Bonjour"}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 1},
        },
        headers={"request-id": "req_1"},
    )  # fmt: skip


def gemini_reply(request: httpx.Request) -> httpx.Response:
    assert request.headers["x-goog-api-key"] == "gemini-test-key-0123456789"
    assert "key=" not in str(request.url)
    body = json.loads(request.content)
    parts = body["contents"][-1]["parts"]
    saw_image = any("inlineData" in p or "inline_data" in p for p in parts)
    answer = {
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "A cat." if saw_image else "Bonjour"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1},
        "modelVersion": "gemini-test",
    }  # fmt: skip
    if request.url.path.endswith(":streamGenerateContent"):
        return httpx.Response(
            200,
            text=f"data: {json.dumps(answer)}\n\n",
            headers={"content-type": "text/event-stream"},
        )
    return httpx.Response(200, json=answer)


VENDORS: dict[str, tuple[str, str, Any]] = {
    "anthropic": ("ANTHROPIC_API_KEY", ANTHROPIC, anthropic_reply),
    "gemini": ("GEMINI_API_KEY", GEMINI, gemini_reply),
}


@pytest.fixture(params=sorted(VENDORS))
def vendor(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    name: str = request.param
    variable, base, reply = VENDORS[name]
    config = tmp_path / "modelport.toml"
    config.write_text(
        f'[capabilities]\nchat = "{name}"\nvision = "{name}"\n\n'
        f'[backends.jsonfile]\nroot = "{tmp_path / "store"}"\n'
    )
    env = {variable: f"{name}-test-key-0123456789"}
    with respx.mock(base_url=base, assert_all_called=False) as router:
        router.route(method="POST").mock(side_effect=reply)
        yield name, config, env


def test_the_command_line_asks_streams_and_describes(vendor: Any, tmp_path: Path) -> None:
    name, config, env = vendor
    image = tmp_path / "cat.png"
    image.write_bytes(TINY_PNG)

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--config", str(config), *args], obj=CliState(), env=env)

    asked = run("ask", "Say hello in French", "--json")
    assert asked.exit_code == 0, asked.output
    answer = json.loads(asked.stdout)
    assert answer["reply"]["text"] == "Bonjour"
    assert answer["backend"] == name
    streamed = run("ask", "Again", "--stream")
    assert streamed.exit_code == 0, streamed.output
    assert "Bonjour" in streamed.stdout
    described = run("describe", str(image))
    assert described.exit_code == 0, described.output
    assert "A cat." in described.stdout


def test_python_sync_and_async(vendor: Any) -> None:
    name, config, env = vendor
    settings = load_settings(config, env=env)
    with Hub(settings, env=env) as hub:
        assert hub.ask("Say hello").reply.text == "Bonjour"
        assert "".join(d.text for d in hub.stream("Say hello")) == "Bonjour"
        assert hub.describe_image(TINY_PNG).text == "A cat."
        assert hub.backend_name("chat") == name

    async def both() -> tuple[str, str, str]:
        async with AsyncHub(settings, env=env) as ahub:
            asked = await ahub.ask("Say hello")
            stream = await ahub.stream("Say hello")
            streamed = "".join([d.text async for d in stream])
            described = await ahub.describe_image(TINY_PNG)
            return asked.reply.text, streamed, described.text

    assert asyncio.run(both()) == ("Bonjour", "Bonjour", "A cat.")
