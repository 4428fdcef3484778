"""One backend object serves chat and vision over Ollama's HTTP API, sync and async."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx

from modelport import (
    BackendContext,
    ChatRequest,
    ImagePart,
    Message,
    ModelInfo,
    Reply,
    StreamDelta,
    TextPart,
    VisionRequest,
)
from modelport.errors import BackendConnectionError, ResponseError

from .errors import from_status, from_transport
from .settings import OllamaSettings
from .wire import chat_body, delta, reply


class OllamaBackend:
    """Chat (complete, stream, models) and vision (describe) through ``/api/chat``."""

    #: Ollama decodes these; the core re-encodes any other image type before calling us.
    media_types = frozenset({"image/png", "image/jpeg"})
    #: Ollama takes image bytes only: the core downloads image URLs for us.
    accepts_urls = False

    def __init__(self, context: BackendContext) -> None:
        self.name = context.name
        self.settings: OllamaSettings = context.settings
        headers = {}
        if self.settings.api_key_env:  # MissingSecretError, naming the variable, if unset
            token = context.secret(self.settings.api_key_env)
            headers["Authorization"] = f"Bearer {token.reveal()}"
        self._http: dict[str, Any] = {
            "base_url": self.settings.base_url,
            "timeout": self.settings.timeout_s,
            "headers": headers,
        }
        self._client: httpx.Client | None = None
        self._aclient: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None

    def __repr__(self) -> str:  # never the headers: they may hold the token
        return f"OllamaBackend({self.name!r}, {self.settings.base_url!r})"

    # --- chat --------------------------------------------------------------------------------

    def complete(self, request: ChatRequest) -> Reply:
        body = self._body(request, stream=False)
        with self._mapped():
            response = self.client.post("/api/chat", json=body)
        return reply(self.name, self._json(response), request.options)

    def stream(self, request: ChatRequest) -> Iterator[StreamDelta]:
        body = self._body(request, stream=True)
        with self._mapped(), self.client.stream("POST", "/api/chat", json=body) as response:
            if response.is_error:
                response.read()
                self._json(response)  # raises the mapped error
            yield from self._deltas(response.iter_lines())

    def models(self) -> Sequence[ModelInfo]:
        with self._mapped():
            response = self.client.get("/api/tags")
        return self._models(self._json(response))

    async def acomplete(self, request: ChatRequest) -> Reply:
        body = self._body(request, stream=False)
        with self._mapped():
            response = await self.aclient.post("/api/chat", json=body)
        return reply(self.name, self._json(response), request.options)

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        body = self._body(request, stream=True)
        with self._mapped():
            async with self.aclient.stream("POST", "/api/chat", json=body) as response:
                if response.is_error:
                    await response.aread()
                    self._json(response)
                done = False
                async for line in response.aiter_lines():
                    if line.strip():
                        piece = delta(self.name, line)
                        done = piece.finish_reason is not None
                        yield piece
                self._check_done(done)

    async def amodels(self) -> Sequence[ModelInfo]:
        with self._mapped():
            response = await self.aclient.get("/api/tags")
        return self._models(self._json(response))

    # --- vision ------------------------------------------------------------------------------

    def describe(self, request: VisionRequest) -> Reply:
        return self.complete(self._vision_chat(request))

    async def adescribe(self, request: VisionRequest) -> Reply:
        return await self.acomplete(self._vision_chat(request))

    def _vision_chat(self, request: VisionRequest) -> ChatRequest:
        parts: list[TextPart | ImagePart] = [TextPart(request.prompt)]
        parts += [ImagePart(image) for image in request.images]
        model = request.model or self.settings.vision_model
        return ChatRequest([Message("user", parts)], model=model, options=request.options)

    # --- plumbing ----------------------------------------------------------------------------

    def _body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        model = request.model or self.settings.model
        body = chat_body(request.messages, model, request.options, stream=stream)
        if self.settings.keep_alive is not None:
            body["keep_alive"] = self.settings.keep_alive
        return body

    def _deltas(self, lines: Iterator[str]) -> Iterator[StreamDelta]:
        done = False
        for line in lines:
            if line.strip():
                piece = delta(self.name, line)
                done = piece.finish_reason is not None
                yield piece
        self._check_done(done)

    def _check_done(self, done: bool) -> None:
        if not done:
            raise BackendConnectionError(
                "the stream ended before the answer was done", backend=self.name
            )

    def _json(self, response: httpx.Response) -> Any:
        if response.is_error:
            raise from_status(
                self.name,
                response.status_code,
                response.content,
                response.headers.get("retry-after"),
            )
        try:
            return response.json()
        except ValueError as exc:
            raise ResponseError(
                f"the answer is not JSON: {response.text[:80]!r}", backend=self.name
            ) from exc

    def _models(self, listing: Any) -> list[ModelInfo]:
        if not isinstance(listing, dict) or not isinstance(listing.get("models"), list):
            raise ResponseError(f"not a model list: {listing!r:.120}", backend=self.name)
        return [
            ModelInfo(
                id=str(entry["name"]),
                backend=self.name,
                created_at=_when(entry.get("modified_at")),
            )
            for entry in listing["models"]
            if isinstance(entry, dict) and "name" in entry
        ]

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        """Turn httpx's transport failures into the core's errors."""
        try:
            yield
        except httpx.TransportError as exc:
            raise from_transport(self.name, exc) from exc

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(**self._http)
        return self._client

    @property
    def aclient(self) -> httpx.AsyncClient:
        """The async client of the running event loop (a client cannot cross loops)."""
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient[0] is not loop:
            self._aclient = (loop, httpx.AsyncClient(**self._http))
        return self._aclient[1]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._aclient is not None and self._aclient[0] is asyncio.get_running_loop():
            await self._aclient[1].aclose()
        self._aclient = None


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
