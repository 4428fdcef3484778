"""modelport's requests as Ollama's ``/api/chat`` bodies, and its answers as replies."""

from __future__ import annotations

import base64
import json
from typing import Any

from modelport import ChatOptions, Message, Reply, StreamDelta, Usage
from modelport.errors import ResponseError


def chat_body(
    messages: tuple[Message, ...], model: str, options: ChatOptions, *, stream: bool
) -> dict[str, Any]:
    """The JSON body of one ``/api/chat`` call."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message(m) for m in messages],
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
    return body


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.text}
    images = [part.image.data for part in message.images if part.image.data is not None]
    if images:
        out["images"] = [base64.b64encode(data).decode("ascii") for data in images]
    return out


def reply(backend: str, answer: dict[str, Any], options: ChatOptions) -> Reply:
    """A whole ``/api/chat`` answer (``"stream": false``) as a reply."""
    text = _content(backend, answer)
    data = _parsed(backend, text) if options.json_schema is not None else None
    return Reply(
        text=text,
        model=str(answer.get("model", "")),
        usage=_usage(answer),
        finish_reason=answer.get("done_reason") or "stop",
        data=data,
    )


def delta(backend: str, line: str) -> StreamDelta:
    """One line of a streamed answer as a delta; the last (``"done": true``) ends it."""
    try:
        answer = json.loads(line)
    except ValueError as exc:
        raise ResponseError(f"a streamed line is not JSON: {line[:80]!r}", backend=backend) from exc
    if not isinstance(answer, dict):
        raise ResponseError(f"a streamed line is not an object: {line[:80]!r}", backend=backend)
    if "error" in answer:  # the server failed after it started answering
        raise ResponseError(f"the stream broke off: {answer['error']}", backend=backend)
    if answer.get("done"):
        return StreamDelta(
            text=_content(backend, answer, required=False),
            model=answer.get("model"),
            finish_reason=answer.get("done_reason") or "stop",
            usage=_usage(answer),
        )
    return StreamDelta(text=_content(backend, answer), model=answer.get("model"))


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
