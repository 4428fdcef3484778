"""The OpenAI wire format: request bodies out, replies, stream chunks, models and jobs in.

Pure functions over plain JSON, so the hot path builds no SDK objects only to convert them
again, and every conversion is testable without HTTP.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from fnmatch import fnmatchcase
from typing import Any, Literal

import attrs

from modelport import (
    ChatOptions,
    ChatRequest,
    Image,
    JobEvent,
    JobStatus,
    Message,
    ModelInfo,
    Reply,
    StreamDelta,
    TextPart,
    TrainingJob,
    Usage,
    VisionRequest,
)
from modelport.errors import BackendConnectionError, ImageError, ResponseError, TransientError

__all__ = [
    "JOB_STATUS",
    "JsonMode",
    "ModelRules",
    "StreamAssembler",
    "chat_body",
    "drop_refused",
    "events_from_json",
    "job_from_json",
    "jobs_from_json",
    "model_rules",
    "models_from_json",
    "reply_from_json",
    "shutdown_day",
    "vision_body",
]

#: OpenAI's job statuses and the core's. Unknown statuses count as running (not terminal), so
#: waiting goes on rather than stopping on a status this table has not seen yet.
JOB_STATUS: Mapping[str, JobStatus] = {
    "validating_files": JobStatus.VALIDATING,
    "queued": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}

_SCHEMA_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_NONE: Mapping[str, str] = {}


# --- what a model accepts -------------------------------------------------------------------


@attrs.frozen
class ModelRules:
    """What the backend's settings declare about one model's requests.

    :ivar tokens_param: the key of the reply's token limit.
    :ivar refused: keys the model refuses unless ``reasoning_effort`` is ``"none"``.
    :ivar pattern: the ``reasoning_models`` pattern the model matched, if any.
    """

    tokens_param: str
    refused: frozenset[str] = frozenset()
    pattern: str | None = None


def model_rules(
    model: str, reasoning_models: Mapping[str, Iterable[str]], max_tokens_param: str
) -> ModelRules:
    """The rules for ``model``: the longest ``reasoning_models`` pattern it matches decides
    (case-insensitively, ignoring a fine-tuned model's ``ft:`` prefix). A reasoning model's
    token limit is always ``max_completion_tokens``: it takes no ``max_tokens``."""
    name = model.lower().removeprefix("ft:")
    matches = [p for p in reasoning_models if fnmatchcase(name, p.lower())]
    if not matches:
        return ModelRules(max_tokens_param)
    pattern = max(matches, key=len)
    return ModelRules("max_completion_tokens", frozenset(reasoning_models[pattern]), pattern)


def drop_refused(body: dict[str, Any], rules: ModelRules) -> tuple[str, ...]:
    """Remove from ``body`` the keys its model refuses (unless it asks for no reasoning);
    return them, sorted."""
    if not rules.refused or body.get("reasoning_effort") == "none":
        return ()
    dropped = tuple(sorted(key for key in rules.refused if key in body))
    for key in dropped:
        del body[key]
    return dropped


# --- requests -------------------------------------------------------------------------------


def image_url(image: Image) -> str:
    """The image as OpenAI accepts it: its URL, or its bytes as a ``data:`` URL."""
    if image.url is not None:
        return image.url
    if not image.media_type:
        raise ImageError("the image's format is unknown", source=image.source)
    assert image.data is not None
    return f"data:{image.media_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def _image_part(image: Image, detail: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": image_url(image), "detail": detail}}


def message_json(message: Message) -> dict[str, Any]:
    parts = message.parts
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return {"role": message.role, "content": parts[0].text}
    if all(isinstance(p, TextPart) for p in parts):
        return {"role": message.role, "content": message.text}
    content = [
        {"type": "text", "text": p.text}
        if isinstance(p, TextPart)
        else _image_part(p.image, p.detail)
        for p in parts
        if not isinstance(p, TextPart) or p.text
    ]
    return {"role": message.role, "content": content}


def _response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    title = schema.get("title")
    name = _SCHEMA_NAME.sub("_", title)[:64] if isinstance(title, str) and title else "response"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema)}}


#: How a server is asked for JSON: by schema (``response_format`` of type ``json_schema``), or
#: by JSON mode (``json_object``, for servers that take no schema: the schema then goes to the
#: model as an instruction).
JsonMode = Literal["json_schema", "json_object"]


def _schema_instruction(schema: Mapping[str, Any]) -> dict[str, Any]:
    text = "Answer with one JSON object, and nothing else, that matches this JSON schema: "
    return {"role": "system", "content": text + json.dumps(schema, separators=(",", ":"))}


def _quirks(
    body: dict[str, Any],
    schema: Mapping[str, Any] | None,
    json_mode: JsonMode,
    renamed: Mapping[str, str],
) -> dict[str, Any]:
    """``body`` as a server with these quirks takes it: JSON mode instead of a schema, and
    request keys under the server's own names (``seed`` as Mistral's ``random_seed``)."""
    if schema is not None and json_mode == "json_object":
        body["response_format"] = {"type": "json_object"}
        body["messages"].insert(0, _schema_instruction(schema))
    for ours, theirs in renamed.items():
        if ours in body:
            body[theirs] = body.pop(ours)
    return body


def _apply_options(
    body: dict[str, Any], options: ChatOptions, max_tokens_param: str
) -> dict[str, Any]:
    if options.temperature is not None:
        body["temperature"] = options.temperature
    if options.top_p is not None:
        body["top_p"] = options.top_p
    if options.max_tokens is not None:
        body[max_tokens_param] = options.max_tokens
    if options.stop:
        body["stop"] = list(options.stop)
    if options.seed is not None:
        body["seed"] = options.seed
    if options.json_schema is not None:
        body["response_format"] = _response_format(options.json_schema)
    if options.reasoning_effort is not None:
        body["reasoning_effort"] = options.reasoning_effort
    if options.extra:
        body.update(options.extra)
    return body


def _stream_keys(body: dict[str, Any], stream: bool, usage: bool) -> dict[str, Any]:
    if stream:
        body["stream"] = True
        if usage:
            body["stream_options"] = {"include_usage": True}
    return body


def chat_body(
    request: ChatRequest,
    *,
    model: str,
    defaults: ChatOptions,
    max_tokens_param: str,
    stream: bool = False,
    stream_usage: bool = True,
    json_mode: JsonMode = "json_schema",
    renamed: Mapping[str, str] = _NONE,
) -> dict[str, Any]:
    """The ``/chat/completions`` body for ``request``; ``defaults`` lie under its options."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [message_json(m) for m in request.messages],
    }
    options = defaults.merged(request.options)
    _apply_options(body, options, max_tokens_param)
    _quirks(body, options.json_schema, json_mode, renamed)
    return _stream_keys(body, stream, stream_usage)


def vision_body(
    request: VisionRequest,
    *,
    model: str,
    defaults: ChatOptions,
    max_tokens_param: str,
    json_mode: JsonMode = "json_schema",
    renamed: Mapping[str, str] = _NONE,
) -> dict[str, Any]:
    """One user message: the prompt, then every image at the request's detail level."""
    content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
    content += [_image_part(image, request.detail) for image in request.images]
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
    options = defaults.merged(request.options)
    _apply_options(body, options, max_tokens_param)
    return _quirks(body, options.json_schema, json_mode, renamed)


# --- replies --------------------------------------------------------------------------------


def _usage(data: Any) -> Usage | None:
    if not isinstance(data, Mapping):
        return None
    return Usage(int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers send content parts even for text
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return ""


def reply_from_json(
    data: Any,
    *,
    backend: str,
    model: str,
    request_id: str | None,
    structured: bool = False,
) -> Reply:
    """A :class:`Reply` from a chat completion; with ``structured``, ``data`` is the JSON."""
    try:
        choice = data["choices"][0]
        message = choice.get("message") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ResponseError(
            "the response holds no choices", backend=backend, request_id=request_id
        ) from None
    finish = choice.get("finish_reason")
    refusal = message.get("refusal")
    text = _text(message.get("content"))
    if not text and isinstance(refusal, str) and refusal:
        text, finish = refusal, "refusal"
    parsed = None
    if structured:
        parsed = parse_structured(text, finish, backend=backend, request_id=request_id)
    return Reply(
        text=text,
        model=data.get("model") or model,
        usage=_usage(data.get("usage")) or Usage(),
        finish_reason=finish,
        request_id=request_id,
        data=parsed,
    )


def parse_structured(text: str, finish: str | None, *, backend: str, request_id: str | None) -> Any:
    if finish == "refusal":
        raise ResponseError(f"the model refused: {text}", backend=backend, request_id=request_id)
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


# --- streams --------------------------------------------------------------------------------


class StreamAssembler:
    """Turns chunk payloads into deltas. Text comes as it arrives; finish reason and usage
    (which OpenAI sends in a chunk of their own, after the last text) come in one last delta,
    from :meth:`finish`."""

    __slots__ = ("backend", "done", "finish_reason", "model", "on_error", "usage")

    def __init__(
        self, backend: str, model: str, on_error: Callable[[Any], Exception] | None = None
    ) -> None:
        self.backend = backend
        self.model = model
        #: The error for an error chunk (the kit's ``HTTPClient.event_error``).
        self.on_error = on_error
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.done = False

    def feed(self, payload: str) -> StreamDelta | None:
        """The delta in one event's data, or ``None`` when it carries no text."""
        if payload == "[DONE]":
            self.done = True
            return None
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise ResponseError(
                f"the stream sent a chunk that is not JSON: {payload[:80]!r}",
                backend=self.backend,
            ) from None
        if not isinstance(chunk, dict):
            raise ResponseError(
                "the stream sent a chunk that is not an object", backend=self.backend
            )
        error = chunk.get("error")
        if error:
            if self.on_error is not None:
                raise self.on_error(chunk)
            text = error.get("message") if isinstance(error, Mapping) else str(error)
            raise TransientError(f"the server failed mid-stream: {text}", backend=self.backend)
        self.model = chunk.get("model") or self.model
        usage = _usage(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        choices = chunk.get("choices")
        if not choices:
            return None
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        delta = choice.get("delta") or {}
        text = _text(delta.get("content")) or _text(delta.get("refusal"))
        return StreamDelta(text=text, model=self.model) if text else None

    def finish(self) -> StreamDelta:
        """The closing delta. A stream that ended with neither ``[DONE]`` nor a finish reason
        was cut off, which is an error (the reply so far is incomplete)."""
        if not self.done and self.finish_reason is None:
            raise BackendConnectionError(
                "the stream ended before the reply was complete", backend=self.backend
            )
        return StreamDelta(
            model=self.model, finish_reason=self.finish_reason or "stop", usage=self.usage
        )


# --- models and jobs ------------------------------------------------------------------------


def _when(value: Any) -> datetime | None:
    if isinstance(value, (int, float)) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return None


def _items(data: Any, backend: str) -> list[Mapping[str, Any]]:
    items = data.get("data") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise ResponseError("the response holds no 'data' list", backend=backend)
    return [item for item in items if isinstance(item, Mapping)]


_DIGITS = re.compile(r"\d+(\.\d*)?")


def shutdown_day(value: Any) -> date | None:
    """The day in a model's ``shutdown_date``: an ISO date or date-time (``Z`` or an offset
    is turned into UTC), or a Unix timestamp in seconds or milliseconds, as a number or a
    string. Anything else (absent, empty, unreadable) is ``None``: a malformed date must
    not break the model list."""
    if isinstance(value, str):
        text = value.strip()
        if _DIGITS.fullmatch(text) and len(text) != 8:  # 8 digits: a basic ISO date
            return shutdown_day(float(text))
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            return None
        return when.astimezone(UTC).date() if when.tzinfo is not None else when.date()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    if value >= 100_000_000_000:  # later than the year 5138 in seconds: milliseconds
        value /= 1000
    try:
        return datetime.fromtimestamp(value, UTC).date()
    except (OverflowError, OSError, ValueError):
        return None


def models_from_json(data: Any, backend: str) -> list[ModelInfo]:
    return sorted(
        (
            ModelInfo(
                id=str(item["id"]),
                backend=backend,
                owned_by=item.get("owned_by"),
                created_at=_when(item.get("created")),
                shutdown_date=shutdown_day(item.get("shutdown_date")),
            )
            for item in _items(data, backend)
            if item.get("id")
        ),
        key=lambda m: m.id,
    )


def job_from_json(data: Any, backend: str) -> TrainingJob:
    if not isinstance(data, Mapping) or not data.get("id"):
        raise ResponseError("the response is not a fine-tuning job", backend=backend)
    error = data.get("error")
    message = None
    if isinstance(error, Mapping) and (error.get("message") or error.get("code")):
        message = str(error.get("message") or error.get("code"))
    return TrainingJob(
        id=str(data["id"]),
        backend=backend,
        base_model=str(data.get("model") or ""),
        status=JOB_STATUS.get(str(data.get("status")), JobStatus.RUNNING),
        created_at=_when(data.get("created_at")),
        finished_at=_when(data.get("finished_at")),
        fine_tuned_model=data.get("fine_tuned_model"),
        training_file=data.get("training_file"),
        error=message,
    )


def jobs_from_json(data: Any, backend: str) -> list[TrainingJob]:
    return [job_from_json(item, backend) for item in _items(data, backend)]


def events_from_json(data: Any, backend: str) -> list[JobEvent]:
    """Events oldest first (the API lists newest first)."""
    events = [
        JobEvent(
            created_at=_when(item.get("created_at")) or datetime.now(UTC),
            message=str(item.get("message", "")),
            level=str(item.get("level") or "info"),
        )
        for item in _items(data, backend)
    ]
    events.sort(key=lambda e: e.created_at)
    return events
