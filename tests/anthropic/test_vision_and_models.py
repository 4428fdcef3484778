"""Vision and the model list through the Anthropic backend."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from modelport import ChatOptions, Image, VisionRequest
from modelport.errors import ResponseError
from modelport.testing import TINY_PNG

from .conftest import KEY, MODEL, MakeAsyncHub, MakeHub, message, ok, sent

SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string"}, "count": {"type": "integer"}},
    "required": ["colour", "count"],
}


def test_describe_sends_images_then_the_prompt_to_the_vision_model(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/v1/messages").mock(return_value=ok(message('{"colour": "red", "count": 2}')))
    hub = make_hub(vision_model="claude-opus-5", options={"temperature": 0.0})
    reply = hub.describe_image(
        TINY_PNG, "https://x.test/cat.webp", prompt="What colour?", schema=SCHEMA, detail="high"
    )
    assert reply.data == {"colour": "red", "count": 2}
    body = sent(route)
    assert body["model"] == "claude-opus-5"
    assert (body["max_tokens"], body["temperature"]) == (4096, 0.0)
    (turn,) = body["messages"]
    assert turn["role"] == "user"
    png, url, prompt = turn["content"]
    assert png["source"]["media_type"] == "image/png"
    assert png["source"]["type"] == "base64"
    assert url == {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.webp"}}
    assert prompt == {"type": "text", "text": "What colour?"}
    assert body["output_config"]["format"]["schema"]["additionalProperties"] is False
    assert route.calls.last.request.headers["x-api-key"] == KEY


def test_describe_uses_the_chat_model_without_a_vision_model(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/v1/messages").mock(return_value=ok(message("A red square.")))
    reply = make_hub().describe_image(TINY_PNG)
    assert (reply.text, reply.finish_reason, sent(route)["model"]) == (
        "A red square.", "stop", MODEL
    )  # fmt: skip
    assert "output_config" not in sent(route)


def test_a_description_that_is_not_the_json_asked_for_is_a_response_error(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    api.post("/v1/messages").mock(return_value=ok(message("It is red.")))
    with pytest.raises(ResponseError, match="not the JSON asked for"):
        make_hub().describe_image(TINY_PNG, schema=SCHEMA)


def test_an_image_of_unknown_format_is_refused_before_sending(make_hub: MakeHub) -> None:
    from modelport.errors import ImageError

    vision = make_hub().backend("vision")
    with pytest.raises(ImageError, match="format is unknown"):
        vision.describe(VisionRequest([Image(data=b"????", source="mystery")]))


async def test_async_describe_matches_sync(
    api: respx.MockRouter, make_async_hub: MakeAsyncHub
) -> None:
    route = api.post("/v1/messages").mock(return_value=ok(message('{"colour": "red", "count": 1}')))
    hub = make_async_hub(vision_model="claude-opus-5")
    reply = await hub.describe_image(TINY_PNG, schema=SCHEMA)
    assert reply.data == {"colour": "red", "count": 1}
    assert sent(route)["model"] == "claude-opus-5"
    vision = hub.backend("vision")
    direct = await vision.adescribe(
        VisionRequest([Image.from_bytes(TINY_PNG)], options=ChatOptions(max_tokens=9))
    )
    assert direct.data is None
    assert sent(route)["max_tokens"] == 9


# --- the model list -------------------------------------------------------------------------


def _model(model_id: str, created_at: str = "2026-05-01T00:00:00Z") -> dict[str, Any]:
    return {"type": "model", "id": model_id, "display_name": model_id, "created_at": created_at}


def _pages(request: httpx.Request) -> httpx.Response:
    """Three pages, each after the last id of the one before."""
    after = request.url.params.get("after_id")
    assert request.url.params["limit"] == "1000"
    pages = {
        None: ([_model("claude-sonnet-5"), _model("claude-opus-5")], True),
        "claude-opus-5": ([_model("claude-haiku-4-5", "1970-01-01T00:00:00Z")], True),
        "claude-haiku-4-5": ([_model("claude-sonnet-4-5", "2025-09-29T00:00:00+00:00")], False),
    }
    models, more = pages[after]
    return ok({"data": models, "has_more": more, "first_id": models[0]["id"],
               "last_id": models[-1]["id"]})  # fmt: skip


def test_models_are_listed_across_pages(api: respx.MockRouter, make_hub: MakeHub) -> None:
    route = api.get("/v1/models").mock(side_effect=_pages)
    models = make_hub().models()
    assert [m.id for m in models] == [
        "claude-sonnet-5", "claude-opus-5", "claude-haiku-4-5", "claude-sonnet-4-5"
    ]  # fmt: skip
    assert route.call_count == 3
    assert route.calls.last.request.headers["anthropic-version"] == "2023-06-01"
    assert {m.backend for m in models} == {"anthropic"}
    assert models[0].created_at == datetime(2026, 5, 1, tzinfo=UTC)
    assert models[2].created_at is None  # the epoch: the API does not know the date
    assert models[3].created_at == datetime(2025, 9, 29, tzinfo=UTC)


async def test_async_models_are_listed_across_pages(
    api: respx.MockRouter, make_async_hub: MakeAsyncHub
) -> None:
    route = api.get("/v1/models").mock(side_effect=_pages)
    models = await make_async_hub().models()
    assert len(models) == 4
    assert route.call_count == 3


def test_a_model_list_that_is_not_one_is_a_response_error(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    api.get("/v1/models").mock(return_value=ok({"models": []}))
    with pytest.raises(ResponseError, match="not a model list"):
        make_hub().models()


def test_the_docs_settings_table_names_exactly_the_settings() -> None:
    """docs/anthropic.md keeps its own settings table: it must not drift."""
    from pathlib import Path

    import attrs

    from modelport_anthropic import AnthropicSettings

    page = (Path(__file__).parents[2] / "docs" / "anthropic.md").read_text(encoding="utf-8")
    section = page.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = {row.split("|")[1].strip(" `") for row in section.splitlines() if row[:3] == "| `"}
    assert documented == {f.name for f in attrs.fields(AnthropicSettings)}
