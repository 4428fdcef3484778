"""The Messages API's wire format: request bodies out; replies, stream events and model pages
in. Pure functions over plain JSON, testable without HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from modelport import (
    ChatOptions,
    ChatRequest,
    Image,
    ImagePart,
    Message,
    ModelInfo,
    Reply,
    StreamDelta,
    TextPart,
    Usage,
    VisionRequest,
)
from modelport.errors import ImageError, ResponseError
from modelport.http import Event, HTTPClient

__all__ = [
    "STOP_REASONS",
    "StreamReader",
    "finish_reason",
    "messages_body",
    "models_page",
    "reply_from_json",
    "strict_schema",
    "usage_from_json",
    "vision_body",
]

#: Anthropic's stop reasons as modelport's finish reasons; one not listed passes unchanged.
STOP_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "refusal",
    "tool_use": "tool_calls",
    "pause_turn": "pause_turn",
}

#: Keys of a JSON schema whose values are data, not schemas (left as they are).
_DATA_KEYS = frozenset({"enum", "const", "default", "examples"})


# --- requests -------------------------------------------------------------------------------


def _image_block(image: Image) -> dict[str, Any]:
    """An image as a content block: by URL (the API fetches it), or its bytes in base64."""
    url = image.url
    if url is not None and not url.startswith("data:"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    if url is not None:  # data:<type>;base64,<data> (the hub decodes these itself)
        head, _, data = url.removeprefix("data:").partition(",")
        media_type, _, encoding = head.partition(";")
        if encoding != "base64" or not media_type or not data:
            raise ImageError("only base64 data: URLs with a media type are sent", source=url)
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if not image.media_type or image.data is None:
        raise ImageError("the image's format is unknown", source=image.source)
    data = base64.b64encode(image.data).decode("ascii")
    source = {"type": "base64", "media_type": image.media_type, "data": data}
    return {"type": "image", "source": source}


def _blocks(parts: Iterable[TextPart | ImagePart]) -> list[dict[str, Any]]:
    """Content blocks; empty text is left out (the API refuses empty text blocks)."""
    return [
        {"type": "text", "text": part.text}
        if isinstance(part, TextPart)
        else _image_block(part.image)
        for part in parts
        if not isinstance(part, TextPart) or part.text
    ]


def _turns(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """User and assistant messages as turns: consecutive messages of one role are merged into
    one turn (their blocks in order), and a message with no content is left out."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        blocks = _blocks(message.parts)
        if message.role == "system" or not blocks:
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": message.role, "content": blocks})
    for turn in turns:  # one text block is sent as a plain string
        content = turn["content"]
        if len(content) == 1 and content[0]["type"] == "text":
            turn["content"] = content[0]["text"]
    return turns


def strict_schema(schema: Any) -> Any:
    """``schema`` with ``"additionalProperties": false`` on every object schema that does not
    say otherwise (structured outputs require it); a copy, the original is left alone."""
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {
        key: value if key in _DATA_KEYS else strict_schema(value) for key, value in schema.items()
    }
    kind = out.get("type")
    is_object = kind == "object" or (isinstance(kind, list) and "object" in kind)
    if is_object and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _options(body: dict[str, Any], options: ChatOptions, max_tokens: int) -> dict[str, Any]:
    """Generation options onto ``body``. ``seed`` and ``reasoning_effort`` have no Messages API
    counterpart and are not sent; ``extra`` is laid over the rest (its ``output_config`` merged
    key by key with the schema's)."""
    body["max_tokens"] = options.max_tokens or max_tokens
    if options.temperature is not None:
        body["temperature"] = options.temperature
    if options.top_p is not None:
        body["top_p"] = options.top_p
    if options.stop:
        body["stop_sequences"] = list(options.stop)
    if options.json_schema is not None:
        schema = strict_schema(options.json_schema)
        body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    for key, value in options.extra.items():
        ours = body.get(key)
        if isinstance(ours, dict) and isinstance(value, Mapping):
            body[key] = {**ours, **value}
        else:
            body[key] = value
    return body


def messages_body(
    request: ChatRequest, *, model: str, defaults: ChatOptions, max_tokens: int, stream: bool
) -> dict[str, Any]:
    """The ``/v1/messages`` body for ``request``: its system messages (wherever they stand)
    joined into ``system``, the rest as alternating turns; ``defaults`` lie under its
    options, and ``max_tokens`` is the limit when none of them gives one."""
    system = "\n\n".join(m.text for m in request.messages if m.role == "system" and m.text)
    body: dict[str, Any] = {"model": model, "messages": _turns(request.messages)}
    if system:
        body["system"] = system
    _options(body, defaults.merged(request.options), max_tokens)
    if stream:
        body["stream"] = True
    return body


def vision_body(
    request: VisionRequest, *, model: str, defaults: ChatOptions, max_tokens: int
) -> dict[str, Any]:
    """One user turn: the images first, then the prompt (the order Anthropic advises)."""
    content = [_image_block(image) for image in request.images]
    content.append({"type": "text", "text": request.prompt})
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
    return _options(body, defaults.merged(request.options), max_tokens)


# --- replies --------------------------------------------------------------------------------


def finish_reason(stop_reason: Any) -> str | None:
    """A stop reason as a finish reason (see :data:`STOP_REASONS`)."""
    if not isinstance(stop_reason, str) or not stop_reason:
        return None
    return STOP_REASONS.get(stop_reason, stop_reason)


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_json(usage: Any) -> Usage:
    """Tokens in: ``input_tokens`` plus the prompt-cache tokens (written and read), which is
    every input token of the request; tokens out: ``output_tokens``."""
    if not isinstance(usage, Mapping):
        return Usage()
    prompt = sum(
        _count(usage, key)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return Usage(prompt, _count(usage, "output_tokens"))


def _text(blocks: Iterable[Any]) -> str:
    """The text blocks' text; thinking, tool and other blocks are left out."""
    return "".join(
        block["text"]
        for block in blocks
        if isinstance(block, Mapping)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    )


def parse_structured(text: str, finish: str | None, *, backend: str, request_id: str | None) -> Any:
    """The reply's JSON, asked for with a schema.

    :raises ResponseError: when the model refused, or the text is not JSON.
    """
    if finish == "refusal":
        raise ResponseError(
            f"the model refused: {text[:200]!r}", backend=backend, request_id=request_id
        )
    try:
        return json.loads(text)
    except ValueError as exc:
        cut = " (the reply was cut at max_tokens)" if finish == "length" else ""
        raise ResponseError(
            f"the reply is not the JSON asked for{cut}: {exc}",
            backend=backend,
            request_id=request_id,
            hint="raise max_tokens or simplify the schema" if cut else None,
        ) from None


def reply_from_json(
    data: Any, *, backend: str, model: str, request_id: str | None, structured: bool
) -> Reply:
    """A :class:`Reply` from a Message object; with ``structured``, ``data`` is its JSON."""
    content = data.get("content") if isinstance(data, Mapping) else None
    if not isinstance(content, list):
        raise ResponseError(
            f"the answer is not a message: {data!r:.120}", backend=backend, request_id=request_id
        )
    text = _text(content)
    finish = finish_reason(data.get("stop_reason"))
    parsed = None
    if structured:
        parsed = parse_structured(text, finish, backend=backend, request_id=request_id)
    return Reply(
        text=text,
        model=str(data.get("model") or model),
        usage=usage_from_json(data.get("usage")),
        finish_reason=finish,
        request_id=request_id,
        data=parsed,
    )


# --- streams --------------------------------------------------------------------------------


class StreamReader:
    """Turns the stream's events into deltas: one per piece of text, and a last one (at
    ``message_stop``) carrying the finish reason and the usage.

    ``message_start`` gives the model and the input usage, ``message_delta`` the stop reason
    and the cumulative usage; ``ping``, ``content_block_stop``, deltas other than text
    (thinking, signature, tool input, citations) and event types this reader does not know are
    skipped; an ``error`` event raises what ``http`` maps it to, with the request id of the
    event or else of the response (:meth:`opened` keeps it).
    """

    __slots__ = ("backend", "http", "model", "request_id", "stop_reason", "usage")

    def __init__(self, http: HTTPClient, model: str) -> None:
        self.http = http
        self.backend = http.backend
        self.model = model
        self.request_id: str | None = None
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] = {}

    def opened(self, headers: Mapping[str, str]) -> None:
        """The stream's response is open: keep its request id."""
        self.request_id = self.http.request_id(headers)

    def _usage(self, usage: Any) -> None:
        if isinstance(usage, Mapping):
            self.usage.update({k: v for k, v in usage.items() if v is not None})

    def _text(self, text: Any) -> StreamDelta | None:
        return StreamDelta(text=text, model=self.model) if isinstance(text, str) and text else None

    def feed(self, event: Event) -> StreamDelta | None:
        data = event.json()
        if not isinstance(data, Mapping):
            raise ResponseError(
                f"the stream sent an event that is not an object: {event.data[:80]!r}",
                backend=self.backend,
                request_id=self.request_id,
            )
        kind = data.get("type") or event.name
        if kind == "content_block_delta":  # the hot path first
            delta = data.get("delta")
            if isinstance(delta, Mapping) and delta.get("type") == "text_delta":
                return self._text(delta.get("text"))
        elif kind == "message_start":
            message = data.get("message")
            if isinstance(message, Mapping):
                self.model = str(message.get("model") or self.model)
                self._usage(message.get("usage"))
        elif kind == "content_block_start":
            block = data.get("content_block")
            if isinstance(block, Mapping) and block.get("type") == "text":
                return self._text(block.get("text"))
        elif kind == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, Mapping) and delta.get("stop_reason"):
                self.stop_reason = str(delta["stop_reason"])
            self._usage(data.get("usage"))
        elif kind == "message_stop":
            return StreamDelta(
                model=self.model,
                finish_reason=finish_reason(self.stop_reason) or "stop",
                usage=usage_from_json(self.usage),
            )
        elif kind == "error":
            request_id = data.get("request_id")
            if not isinstance(request_id, str) or not request_id:
                request_id = self.request_id
            raise self.http.event_error(data, request_id=request_id)
        return None


def is_last(delta: StreamDelta) -> bool:
    """Whether ``delta`` ends the stream (the one made at ``message_stop`` does)."""
    return delta.finish_reason is not None


# --- models ---------------------------------------------------------------------------------


def _when(value: Any) -> datetime | None:
    """An RFC 3339 time; the epoch (what the API gives for an unknown date) is ``None``."""
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None
    if when is None:
        return None
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return when if when.timestamp() > 0 else None


def models_page(data: Any, backend: str) -> tuple[list[ModelInfo], str | None]:
    """One page of ``/v1/models``: its models, and the id to list after when more follow."""
    items = data.get("data") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise ResponseError(f"not a model list: {data!r:.120}", backend=backend)
    models = [
        ModelInfo(
            id=str(item["id"]),
            backend=backend,
            owned_by="anthropic",
            created_at=_when(item.get("created_at")),
        )
        for item in items
        if isinstance(item, Mapping) and item.get("id")
    ]
    last = data.get("last_id") or (models[-1].id if models else None)
    more = data.get("has_more") is True and isinstance(last, str) and last
    return models, last if more else None
