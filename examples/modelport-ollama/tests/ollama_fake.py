"""Ollama's answers, built as the server sends them (for respx routes)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import respx

BASE = "http://ollama.test:11434"


def answer(text: str, *, model: str = "llama3.2", **extra: Any) -> dict[str, Any]:
    """A whole ``/api/chat`` answer."""
    return {
        "model": model,
        "created_at": "2026-11-24T10:00:00Z",
        "message": {"role": "assistant", "content": text},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 12,
        "eval_count": 4,
        **extra,
    }


def ndjson(*pieces: str, done: bool = True, model: str = "llama3.2") -> httpx.Response:
    """A streamed answer: one JSON object per line, the last with ``"done": true``."""
    lines = [
        {"model": model, "message": {"role": "assistant", "content": p}, "done": False}
        for p in pieces
    ]
    if done:
        lines.append({**answer("", model=model), "done_reason": "stop"})
    body = "".join(json.dumps(line) + "\n" for line in lines)
    return httpx.Response(
        200, content=body.encode(), headers={"content-type": "application/x-ndjson"}
    )


def failure(status: int, message: str = "it failed", **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": message}, headers=headers)


def sent(route: respx.Route, index: int = -1) -> dict[str, Any]:
    """The JSON body of a request ``route`` received."""
    return json.loads(route.calls[index].request.content)  # type: ignore[no-any-return]


TAGS = {
    "models": [
        {"name": "llama3.2:latest", "modified_at": "2026-10-01T09:30:00.123456+02:00"},
        {"name": "llava:latest", "modified_at": "2026-09-01T09:30:00Z"},
    ]
}
