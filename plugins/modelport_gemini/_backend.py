"""One backend object serves chat and vision over the Gemini API, sync and async."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from modelport import BackendContext, ChatRequest, ModelInfo, Reply, StreamDelta, VisionRequest
from modelport.flows import Flow, ItemFlow, twin, twin_iter
from modelport.http import HTTPClient, Request
from modelport.logs import redact

from ._errors import hints, read_gemini_error
from ._settings import GeminiSettings, key_variable
from ._wire import StreamReader, generate_call, is_last, model_page, reply, vision_chat

__all__ = ["GeminiBackend"]

#: Pages of the model list read at most (a server repeating its page token cannot loop us).
MAX_PAGES = 50


class GeminiBackend:
    """Chat (complete, stream, models) and vision (describe) through ``generateContent``."""

    #: What Gemini reads inline; the core re-encodes other types and downloads URLs for us.
    media_types = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
    accepts_urls = False

    def __init__(self, context: BackendContext[GeminiSettings]) -> None:
        self.name, self.settings = context.name, context.settings
        self.key_env = key_variable(self.settings, context.env)
        key = context.secret(self.key_env).reveal()  # MissingSecretError names the variable
        self.http = HTTPClient(
            self.name,
            self.settings.base_url.rstrip("/"),
            headers={**self.settings.headers, "x-goog-api-key": key},  # never in the URL
            timeout_s=self.settings.timeout_s,
            connect_timeout_s=self.settings.connect_timeout_s,
            max_connections=self.settings.max_connections,
            key_env=self.key_env,
            read_error=read_gemini_error,
            hints=hints(self.key_env),
        )
        self.close, self.aclose = self.http.close, self.http.aclose

    def __repr__(self) -> str:
        return f"GeminiBackend(name={self.name!r}, base_url={redact(self.settings.base_url)!r})"

    @property
    def configured_models(self) -> Mapping[str, str]:
        """The models the config names, each with its setting (for shutdown warnings)."""
        section = f"backends.{self.name}"
        found = {self.settings.model: f"{section}.model"}
        if self.settings.vision_model:
            found[self.settings.vision_model] = f"{section}.vision_model"
        return found

    def _generate(self, request: ChatRequest, model: str) -> Flow[Reply]:
        defaults = self.settings.options
        answer = yield self.http.json(
            generate_call(self.name, request, model, defaults, stream=False)
        )
        structured = defaults.merged(request.options).json_schema is not None
        return reply(self.name, answer, model, structured=structured)

    def _complete(self, request: ChatRequest) -> Flow[Reply]:
        return (yield from self._generate(request, request.model or self.settings.model))

    def _stream(self, request: ChatRequest) -> ItemFlow[StreamDelta]:
        model = request.model or self.settings.model
        call = generate_call(self.name, request, model, self.settings.options, stream=True)
        yield from self.http.stream(call, feed=StreamReader(model, self.http), finished=is_last)

    def _models(self) -> Flow[Sequence[ModelInfo]]:
        models: list[ModelInfo] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            params = {"pageSize": 1000} | ({"pageToken": token} if token else {})
            page, token = model_page(
                self.name, (yield self.http.json(Request("GET", "/models", params=params)))
            )
            models += page
            if token is None:
                break
        return models

    def _describe(self, request: VisionRequest) -> Flow[Reply]:
        model = request.model or self.settings.vision_model or self.settings.model
        return (yield from self._generate(vision_chat(request, model), model))

    complete, acomplete = twin(_complete)
    stream, astream = twin_iter(_stream)
    models, amodels = twin(_models)
    describe, adescribe = twin(_describe)
