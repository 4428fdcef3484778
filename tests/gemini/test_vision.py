"""Image descriptions through the Gemini backend, through a ``Hub`` and an ``AsyncHub``."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
import respx

from modelport.errors import ResponseError

from .conftest import GENERATE, MODEL, PNG, MakeCaller, answer, no_key_in_urls, ok, sent

INLINE = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}}


def test_describe_sends_the_prompt_then_every_image_inline(
    api: respx.MockRouter, make: MakeCaller, tmp_path: Path
) -> None:
    route = api.post(GENERATE).mock(return_value=ok(answer("Two red squares.")))
    (tmp_path / "red.png").write_bytes(PNG)
    reply = make().describe(tmp_path / "red.png", PNG, prompt="What is this?")
    assert (reply.text, reply.model) == ("Two red squares.", MODEL)
    assert sent(route) == {
        "contents": [{"role": "user", "parts": [{"text": "What is this?"}, INLINE, INLINE]}]
    }
    no_key_in_urls(api)


def test_the_vision_model_and_the_detail_are_used(api: respx.MockRouter, make: MakeCaller) -> None:
    route = api.post("/models/gemini-2.5-pro:generateContent").mock(return_value=ok(answer()))
    make(vision_model="gemini-2.5-pro").describe(PNG, detail="low")
    assert sent(route)["generationConfig"] == {"mediaResolution": "MEDIA_RESOLUTION_LOW"}


def test_a_schema_gives_parsed_data(api: respx.MockRouter, make: MakeCaller) -> None:
    route = api.post(GENERATE).mock(return_value=ok(answer('{"colour": "red", "count": 1}')))
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}}
    reply = make().describe(PNG, schema=schema)
    assert reply.data == {"colour": "red", "count": 1}
    config = sent(route)["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_an_image_blocked_by_safety_is_a_response_error(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    api.post(GENERATE).mock(return_value=ok(answer(None, finish="IMAGE_SAFETY")))
    with pytest.raises(ResponseError, match=r"blocked the answer \(IMAGE_SAFETY\)"):
        make().describe(PNG)


def test_an_image_url_is_downloaded_by_the_core_and_sent_inline(
    api: respx.MockRouter, make: MakeCaller
) -> None:
    api.get("https://images.test/red.png").mock(return_value=httpx.Response(200, content=PNG))
    route = api.post(GENERATE).mock(return_value=ok(answer("A red square.")))
    make().describe("https://images.test/red.png")
    assert sent(route)["contents"][0]["parts"][1] == INLINE
