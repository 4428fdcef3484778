"""Image description through the OpenAI backend."""

from __future__ import annotations

import base64

import pytest
import respx

from modelport import Image
from modelport.errors import NotFoundError, RateLimitedError, ResponseError

from .conftest import PNG, MakeAsyncHub, MakeHub, completion, error, ok, sent


def test_images_go_as_data_urls_or_urls_with_the_detail_level(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion("Two cats.")))
    reply = make_hub().describe_image(
        Image.from_bytes(PNG), "https://x.test/b.jpg", prompt="Count the cats.", detail="low"
    )
    assert reply.text == "Two cats."
    assert reply.request_id == "req_123"
    body = sent(route)
    assert body["model"] == "gpt-6-luna"
    (message,) = body["messages"]
    assert message["role"] == "user"
    text, first, second = message["content"]
    assert text == {"type": "text", "text": "Count the cats."}
    encoded = base64.b64encode(PNG).decode()
    assert first == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{encoded}", "detail": "low"},
    }
    assert second["image_url"] == {"url": "https://x.test/b.jpg", "detail": "low"}


def test_a_vision_model_can_be_set_apart_from_the_chat_model(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion()))
    hub = make_hub(vision_model="my-vision-model")
    hub.describe_image(Image.from_bytes(PNG))
    assert sent(route)["model"] == "my-vision-model"
    hub.describe_image(Image.from_bytes(PNG), model="my-other-model")
    assert sent(route)["model"] == "my-other-model"


def test_a_structured_description_follows_the_schema(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/chat/completions").mock(
        return_value=ok(completion('{"animals": ["cat", "cat"], "indoors": true}'))
    )
    schema = {
        "type": "object",
        "properties": {"animals": {"type": "array", "items": {"type": "string"}}},
    }
    reply = make_hub().describe_image(Image.from_bytes(PNG), schema=schema)
    assert reply.data == {"animals": ["cat", "cat"], "indoors": True}
    assert sent(route)["response_format"]["json_schema"] == {"name": "response", "schema": schema}


def test_a_refused_structured_description_is_a_response_error(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    refusal = completion()
    refusal["choices"][0]["message"] = {"role": "assistant", "content": None, "refusal": "I can't."}
    api.post("/chat/completions").mock(return_value=ok(refusal))
    with pytest.raises(ResponseError, match=r"the model refused: I can't\."):
        make_hub().describe_image(Image.from_bytes(PNG), schema={"type": "object"})


def test_vision_errors_map_like_chat(api: respx.MockRouter, make_hub: MakeHub) -> None:
    route = api.post("/chat/completions").mock(
        return_value=error(404, "The model `gpt-vision` does not exist")
    )
    hub = make_hub()
    with pytest.raises(NotFoundError, match="modelport models"):
        hub.describe_image(Image.from_bytes(PNG), model="gpt-vision")
    assert route.call_count == 1
    route.mock(return_value=error(429))
    with pytest.raises(RateLimitedError):
        hub.describe_image(Image.from_bytes(PNG))
    assert route.call_count == 1 + 3  # not retried, then the policy's 3 attempts


async def test_async_describe_matches_sync(
    api: respx.MockRouter, make_async_hub: MakeAsyncHub
) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion("A cat.")))
    reply = await make_async_hub().describe_image(Image.from_bytes(PNG), prompt="What?")
    assert reply.text == "A cat."
    assert sent(route)["messages"][0]["content"][0]["text"] == "What?"


def test_a_server_that_cannot_fetch_urls_gets_the_bytes_fetched_for_it(
    make_hub: MakeHub,
) -> None:
    local = "http://localhost:11434/v1"
    with respx.mock(assert_all_called=True) as router:
        router.get("https://img.test/cat.png").respond(200, content=PNG)
        route = router.post(f"{local}/chat/completions").respond(200, json=completion("A cat."))
        assert make_hub("ollama").describe_image("https://img.test/cat.png").text == "A cat."
    part = sent(route)["messages"][0]["content"][1]
    assert part["image_url"]["url"] == f"data:image/png;base64,{base64.b64encode(PNG).decode()}"


def test_images_openai_does_not_take_are_re_encoded_before_sending(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    import io

    from PIL import Image as PIL

    bmp = io.BytesIO()
    PIL.new("RGB", (4, 4), (1, 2, 3)).save(bmp, "BMP")
    route = api.post("/chat/completions").mock(return_value=ok(completion()))
    make_hub().describe_image(bmp.getvalue())
    url = sent(route)["messages"][0]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
