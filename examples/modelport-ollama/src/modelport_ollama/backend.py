"""One backend object serves chat and vision over Ollama's HTTP API, sync and async."""

from __future__ import annotations

from collections.abc import Sequence

from modelport import BackendContext, ChatRequest, ModelInfo, Reply, StreamDelta, VisionRequest
from modelport.flows import Flow, ItemFlow, twin, twin_iter
from modelport.http import HTTPClient, Request

from .errors import HINTS, read_ollama_error
from .settings import OllamaSettings
from .wire import api_chat, delta, is_last, model_list, reply, vision_chat


class OllamaBackend:
    """Chat (complete, stream, models) and vision (describe) through ``/api/chat``."""

    # What Ollama reads: the core re-encodes other image types and downloads URLs for us.
    media_types = frozenset({"image/png", "image/jpeg"})
    accepts_urls = False

    def __init__(self, context: BackendContext[OllamaSettings]) -> None:
        self.name, self.settings = context.name, context.settings
        env = self.settings.api_key_env  # the token's variable: MissingSecretError if unset
        headers = {"Authorization": f"Bearer {context.secret(env).reveal()}"} if env else {}
        self.http = HTTPClient(
            self.name,
            self.settings.base_url,
            headers=headers,  # the kit masks the token in every message, log and repr
            timeout_s=self.settings.timeout_s,
            read_error=read_ollama_error,
            hints=HINTS,
        )
        self.close, self.aclose = self.http.close, self.http.aclose

    def _complete(self, request: ChatRequest) -> Flow[Reply]:
        answer = yield self.http.json(api_chat(request, self.settings, stream=False))
        return reply(self.name, answer, request)

    def _stream(self, request: ChatRequest) -> ItemFlow[StreamDelta]:
        call = api_chat(request, self.settings, stream=True)
        yield from self.http.stream(call, framing="ndjson", feed=delta, finished=is_last)

    def _models(self) -> Flow[Sequence[ModelInfo]]:
        listing = yield self.http.json(Request("GET", "/api/tags"))
        return model_list(self.name, listing)

    def _describe(self, request: VisionRequest) -> Flow[Reply]:
        return (yield from self._complete(vision_chat(request, self.settings.vision_model)))

    complete, acomplete = twin(_complete)
    stream, astream = twin_iter(_stream)
    models, amodels = twin(_models)
    describe, adescribe = twin(_describe)
