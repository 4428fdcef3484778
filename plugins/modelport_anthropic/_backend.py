"""One backend object serves chat and vision over Anthropic's Messages API, sync and async.

Every operation is written once, as a flow (:mod:`modelport.flows`); ``twin`` makes its sync
and async methods, and the HTTP backend kit (:mod:`modelport.http`) does the I/O, the SSE
framing, the error mapping and the masking of the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelport import BackendContext, ChatRequest, ModelInfo, Reply, StreamDelta, VisionRequest
from modelport.flows import Flow, ItemFlow, twin, twin_iter
from modelport.http import Answer, HTTPClient, Request
from modelport.logs import redact

from ._errors import HINTS, read_anthropic_error
from ._settings import AnthropicSettings
from ._wire import StreamReader, is_last, messages_body, models_page, reply_from_json, vision_body

__all__ = ["AnthropicBackend"]

#: The most models one page of ``/v1/models`` holds, and the most pages read.
_PAGE, _MAX_PAGES = 1000, 100


class AnthropicBackend:
    """Chat (complete, stream, models) and vision (describe) through ``/v1/messages``."""

    #: The image types the API reads; the core re-encodes anything else.
    media_types = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
    #: The API fetches image URLs itself.
    accepts_urls = True

    def __init__(self, context: BackendContext[AnthropicSettings]) -> None:
        self.name, self.settings = context.name, context.settings
        settings = self.settings
        key = context.secret(settings.api_key_env)  # MissingSecretError when unset
        headers = {
            **settings.headers,
            "x-api-key": key.reveal(),
            "anthropic-version": settings.anthropic_version,
        }
        self.http = HTTPClient(
            self.name,
            settings.base_url,
            headers=headers,  # the kit masks the key in every message, log and repr
            timeout_s=settings.timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            max_connections=settings.max_connections,
            key_env=settings.api_key_env,
            request_id_headers=("request-id", "x-request-id"),
            read_error=read_anthropic_error,
            hints=HINTS,
        )
        self.close, self.aclose = self.http.close, self.http.aclose

    def __repr__(self) -> str:
        return f"AnthropicBackend(name={self.name!r}, base_url={redact(self.settings.base_url)!r})"

    @property
    def configured_models(self) -> Mapping[str, str]:
        """The models this backend uses when a call names none, each with its setting."""
        section = f"backends.{self.name}"
        found = {self.settings.vision_model: f"{section}.vision_model"}
        found[self.settings.model] = f"{section}.model"
        return {model: key for model, key in found.items() if model}

    def _reply(self, body: dict[str, Any], structured: bool) -> Flow[Reply]:
        answer: Answer = yield self.http.fetch(Request("POST", "/v1/messages", json=body))
        return reply_from_json(
            answer.data,
            backend=self.name,
            model=body["model"],
            request_id=answer.request_id,
            structured=structured,
        )

    def _complete(self, request: ChatRequest) -> Flow[Reply]:
        settings = self.settings
        model = request.model or settings.model
        body = messages_body(
            request,
            model=model,
            defaults=settings.options,
            max_tokens=settings.max_tokens,
            stream=False,
        )
        return (yield from self._reply(body, _schema(body)))

    def _stream(self, request: ChatRequest) -> ItemFlow[StreamDelta]:
        settings = self.settings
        model = request.model or settings.model
        body = messages_body(
            request,
            model=model,
            defaults=settings.options,
            max_tokens=settings.max_tokens,
            stream=True,
        )
        reader = StreamReader(self.http, model)
        call = Request("POST", "/v1/messages", json=body)
        yield from self.http.stream(call, feed=reader.feed, finished=is_last, on_open=reader.opened)

    def _models(self) -> Flow[list[ModelInfo]]:
        found: list[ModelInfo] = []
        params: dict[str, Any] = {"limit": _PAGE}
        for _ in range(_MAX_PAGES):
            data = yield self.http.json(Request("GET", "/v1/models", params=params))
            models, after = models_page(data, self.name)
            found += models
            if after is None:
                break
            params = {"limit": _PAGE, "after_id": after}
        return found

    def _describe(self, request: VisionRequest) -> Flow[Reply]:
        settings = self.settings
        model = request.model or settings.vision_model or settings.model
        body = vision_body(
            request, model=model, defaults=settings.options, max_tokens=settings.max_tokens
        )
        return (yield from self._reply(body, _schema(body)))

    complete, acomplete = twin(_complete)
    stream, astream = twin_iter(_stream)
    models, amodels = twin(_models)
    describe, adescribe = twin(_describe)


def _schema(body: Mapping[str, Any]) -> bool:
    """Whether ``body`` asks for JSON matching a schema."""
    config = body.get("output_config")
    return isinstance(config, Mapping) and isinstance(config.get("format"), Mapping)
