"""modelport's requests as Gemini ``generateContent`` calls, and Gemini's answers as
modelport's types (the JSON of the public REST API, ``v1beta``)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from modelport import (
    ChatOptions,
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
from modelport.errors import ResponseError, UnsupportedError
from modelport.http import Event, HTTPClient, Request

from ._errors import event_status

__all__ = [
    "FILTERED",
    "StreamReader",
    "finish_reason",
    "generate_call",
    "is_last",
    "model_page",
    "reply",
    "usage",
    "vision_chat",
]

#: Finish reasons that mean Google withheld (the rest of) the answer: ``"content_filter"``.
FILTERED = frozenset({
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
})  # fmt: skip
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"} | dict.fromkeys(FILTERED, "content_filter")
#: Keys of ``ChatOptions.extra`` that belong at the request's top level, not in its
#: ``generationConfig``.
_TOP_LEVEL = frozenset({"safetySettings", "cachedContent"})
_RESOLUTION = {"low": "MEDIA_RESOLUTION_LOW", "high": "MEDIA_RESOLUTION_HIGH"}


def generate_call(
    backend: str, request: ChatRequest, model: str, defaults: ChatOptions, *, stream: bool
) -> Request:
    """The ``generateContent`` (or streamed ``streamGenerateContent``) call for ``request``."""
    system = [m for m in request.messages if m.role == "system"]
    body: dict[str, Any] = {
        "contents": [_content(backend, m) for m in request.messages if m.role != "system"],
    }
    if system:
        body["systemInstruction"] = {"parts": [p for m in system for p in _parts(backend, m)]}
    options = defaults.merged(request.options)
    config = _generation_config(options, request.messages)
    for key in _TOP_LEVEL & set(config):
        body[key] = config.pop(key)
    if config:
        body["generationConfig"] = config
    name = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
    method = "streamGenerateContent" if stream else "generateContent"
    path = f"/{quote(name, safe='/')}:{method}"
    return Request("POST", path, json=body, params={"alt": "sse"} if stream else None)


def _content(backend: str, message: Message) -> dict[str, Any]:
    role = "model" if message.role == "assistant" else "user"
    return {"role": role, "parts": _parts(backend, message)}


def _parts(backend: str, message: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            if part.text:
                parts.append({"text": part.text})
            continue
        image = part.image
        if image.data is None:  # the core downloads URLs for us (accepts_urls is False)
            raise UnsupportedError(
                f"Gemini takes image bytes, not a URL: {image!r}",
                backend=backend,
                hint="pass the image as bytes or a path",
            )
        data = base64.b64encode(image.data).decode("ascii")
        parts.append({"inlineData": {"mimeType": image.media_type or "image/png", "data": data}})
    return parts or [{"text": ""}]


def _generation_config(options: ChatOptions, messages: Sequence[Message]) -> dict[str, Any]:
    config: dict[str, Any] = {
        key: value
        for key, value in (
            ("temperature", options.temperature),
            ("topP", options.top_p),
            ("maxOutputTokens", options.max_tokens),
            ("stopSequences", list(options.stop) or None),
            ("seed", options.seed),
        )
        if value is not None
    }
    effort = options.reasoning_effort
    if effort is not None:
        thinking = {"thinkingBudget": 0} if effort == "none" else {"thinkingLevel": effort.upper()}
        config["thinkingConfig"] = thinking
    if options.json_schema is not None:
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = dict(options.json_schema)
    details = {p.detail for m in messages for p in m.images}
    detail = "high" if "high" in details else details.pop() if len(details) == 1 else "auto"
    if detail in _RESOLUTION:
        config["mediaResolution"] = _RESOLUTION[detail]
    return config | dict(options.extra)


def vision_chat(request: VisionRequest, model: str) -> ChatRequest:
    """A vision request as a chat request: one user message, the prompt and the images."""
    parts: list[TextPart | ImagePart] = [TextPart(request.prompt)]
    parts += [ImagePart(image, detail=request.detail) for image in request.images]
    return ChatRequest([Message("user", parts)], model=model, options=request.options)


# --- answers ---------------------------------------------------------------------------------


def finish_reason(reason: str) -> str:
    """Gemini's ``finishReason`` as modelport's (``"stop"``, ``"length"``,
    ``"content_filter"``, or the reason lowercased)."""
    return _FINISH.get(reason, reason.lower())


def usage(metadata: Any) -> Usage:
    """``usageMetadata`` as usage; thinking tokens are output tokens (they are billed so)."""
    if not isinstance(metadata, Mapping):
        return Usage()
    output = int(metadata.get("candidatesTokenCount") or 0)
    return Usage(
        int(metadata.get("promptTokenCount") or 0),
        output + int(metadata.get("thoughtsTokenCount") or 0),
    )


def _object(backend: str, answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise ResponseError(f"the answer is not a JSON object: {answer!r:.80}", backend=backend)
    return answer


def _blocked(backend: str, what: str, reason: str, message: str = "") -> ResponseError:
    return ResponseError(
        f"Google blocked the {what} ({reason})" + (f": {message}" if message else ""),
        backend=backend,
        hint="rephrase the request; Google's safety filters and the key's safety settings "
        "decide what is blocked",
    )


def _candidate(backend: str, answer: dict[str, Any], *, required: bool) -> dict[str, Any] | None:
    """The first candidate; a blocked prompt, or no candidate when one is required, raises."""
    feedback = answer.get("promptFeedback")
    if isinstance(feedback, Mapping) and feedback.get("blockReason"):
        message = str(feedback.get("blockReasonMessage") or "")
        raise _blocked(backend, "prompt", str(feedback["blockReason"]), message)
    candidates = answer.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    if required:
        raise ResponseError(f"the answer has no candidate: {answer!r:.120}", backend=backend)
    return None


def _text(candidate: Mapping[str, Any]) -> str:
    """The candidate's text parts joined, its thoughts (``"thought": true``) left out."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if not isinstance(parts, list):
        return ""
    return "".join(
        str(part["text"])
        for part in parts
        if isinstance(part, Mapping) and "text" in part and not part.get("thought")
    )


def reply(backend: str, answer: Any, model: str, *, structured: bool) -> Reply:
    """A whole ``generateContent`` answer as a reply (``data`` parsed when ``structured``)."""
    answer = _object(backend, answer)
    candidate = _candidate(backend, answer, required=True)
    assert candidate is not None
    text = _text(candidate)
    reason = str(candidate.get("finishReason") or "STOP")
    if not text and reason not in ("STOP", "MAX_TOKENS"):
        raise _blocked(backend, "answer", reason)
    data = None
    if structured:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ResponseError(
                f"asked for JSON, got text that is not: {text[:80]!r}", backend=backend
            ) from exc
    return Reply(
        text=text,
        model=str(answer.get("modelVersion") or model),
        usage=usage(answer.get("usageMetadata")),
        finish_reason=finish_reason(reason),
        request_id=answer.get("responseId"),
        data=data,
    )


class StreamReader:
    """The events of a ``streamGenerateContent?alt=sse`` answer as deltas; the chunk with a
    ``finishReason`` is the last, and carries the usage; an ``{"error": ...}`` event raises
    what ``http`` maps it to."""

    def __init__(self, model: str, http: HTTPClient) -> None:
        self.model = model
        self.http = http
        self.usage: Usage | None = None
        self.started = False  # whether any text came

    def __call__(self, event: Event) -> StreamDelta | None:
        chunk = _object(event.backend, event.json())
        if "error" in chunk:
            raise self.http.event_error(chunk, status=event_status(chunk))
        if "usageMetadata" in chunk:
            self.usage = usage(chunk["usageMetadata"])
        candidate = _candidate(event.backend, chunk, required=False)
        if candidate is None:
            return None
        text = _text(candidate)
        self.started = self.started or bool(text)
        model = str(chunk.get("modelVersion") or self.model)
        reason = candidate.get("finishReason")
        if not reason:
            return StreamDelta(text=text, model=model) if text else None
        if not self.started and reason not in ("STOP", "MAX_TOKENS"):
            raise _blocked(event.backend, "answer", str(reason))
        return StreamDelta(
            text=text, model=model, finish_reason=finish_reason(str(reason)), usage=self.usage
        )


def is_last(delta: StreamDelta) -> bool:
    """Whether ``delta`` ends the stream (the chunk with a finish reason does)."""
    return delta.finish_reason is not None


def model_page(backend: str, listing: Any) -> tuple[list[ModelInfo], str | None]:
    """One page of ``GET /models``: the models that can ``generateContent``, and the token of
    the next page (``None`` on the last)."""
    listing = _object(backend, listing)
    entries = listing.get("models", [])
    if not isinstance(entries, list):
        raise ResponseError(f"not a model list: {listing!r:.120}", backend=backend)
    models = [
        ModelInfo(id=str(entry["name"]).removeprefix("models/"), backend=backend)
        for entry in entries
        if isinstance(entry, Mapping)
        and "name" in entry
        and "generateContent" in (entry.get("supportedGenerationMethods") or ())
    ]
    token = listing.get("nextPageToken")
    return models, str(token) if token else None
