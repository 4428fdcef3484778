"""modelport's requests as calls to Ollama's API, and its answers as modelport's types."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from modelport import (
    ChatRequest,
    ImagePart,
    Message,
    ModelInfo,
    Reply,
    StreamDelta,
    TextPart,
    Usage,
    VisionRequest,
)
from modelport.errors import ResponseError
from modelport.http import Event, Request

from .settings import OllamaSettings


def api_chat(request: ChatRequest, settings: OllamaSettings, *, stream: bool) -> Request:
    """The ``/api/chat`` call that answers ``request``, in one piece or streamed."""
    options = request.options
    body: dict[str, Any] = {
        "model": request.model or settings.model,
        "messages": [_message(m) for m in request.messages],
        "stream": stream,
    }
    tuning = {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "num_predict": options.max_tokens,
        "seed": options.seed,
        "stop": list(options.stop) or None,
    }
    body["options"] = {k: v for k, v in tuning.items() if v is not None} | dict(options.extra)
    if options.json_schema is not None:
        body["format"] = dict(options.json_schema)  # Ollama constrains the answer to it
    if settings.keep_alive is not None:
        body["keep_alive"] = settings.keep_alive
    return Request("POST", "/api/chat", json=body)


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.text}
    images = [part.image.data for part in message.images if part.image.data is not None]
    if images:
        out["images"] = [base64.b64encode(data).decode("ascii") for data in images]
    return out


def vision_chat(request: VisionRequest, model: str) -> ChatRequest:
    """A vision request as a chat request: one user message, the prompt and the images."""
    parts: list[TextPart | ImagePart] = [TextPart(request.prompt)]
    parts += [ImagePart(image) for image in request.images]
    model = request.model or model
    return ChatRequest([Message("user", parts)], model=model, options=request.options)


def reply(backend: str, answer: Any, request: ChatRequest) -> Reply:
    """A whole ``/api/chat`` answer (``"stream": false``) as a reply."""
    answer = _object(backend, answer)
    text = _content(backend, answer)
    data = _parsed(backend, text) if request.options.json_schema is not None else None
    return Reply(
        text=text,
        model=str(answer.get("model", "")),
        usage=_usage(answer),
        finish_reason=answer.get("done_reason") or "stop",
        data=data,
    )


def delta(event: Event) -> StreamDelta:
    """One line of a streamed answer as a delta; the last (``"done": true``) ends it."""
    answer = _object(event.backend, event.json())
    if "error" in answer:  # the server failed after it started answering
        raise ResponseError(f"the stream broke off: {answer['error']}", backend=event.backend)
    if answer.get("done"):
        return StreamDelta(
            text=_content(event.backend, answer, required=False),
            model=answer.get("model"),
            finish_reason=answer.get("done_reason") or "stop",
            usage=_usage(answer),
        )
    return StreamDelta(text=_content(event.backend, answer), model=answer.get("model"))


def is_last(piece: StreamDelta) -> bool:
    """Whether ``piece`` ends the stream (the line with ``"done": true`` does)."""
    return piece.finish_reason is not None


def model_list(backend: str, listing: Any) -> Sequence[ModelInfo]:
    """The ``/api/tags`` answer as the models the server has pulled."""
    entries = _object(backend, listing).get("models")
    if not isinstance(entries, list):
        raise ResponseError(f"not a model list: {listing!r:.120}", backend=backend)
    return [
        ModelInfo(
            id=str(entry["name"]), backend=backend, created_at=_when(entry.get("modified_at"))
        )
        for entry in entries
        if isinstance(entry, dict) and "name" in entry
    ]


def _object(backend: str, answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise ResponseError(f"the answer is not a JSON object: {answer!r:.80}", backend=backend)
    return answer


def _content(backend: str, answer: dict[str, Any], *, required: bool = True) -> str:
    message = answer.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if required:
        raise ResponseError(f"the answer has no message content: {answer!r:.120}", backend=backend)
    return ""


def _usage(answer: dict[str, Any]) -> Usage:
    return Usage(int(answer.get("prompt_eval_count", 0)), int(answer.get("eval_count", 0)))


def _parsed(backend: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ResponseError(
            f"asked for JSON, got text that is not: {text[:80]!r}", backend=backend
        ) from exc


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
