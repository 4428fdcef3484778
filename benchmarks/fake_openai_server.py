"""A minimal OpenAI-compatible server on 127.0.0.1 for benchmarks (it also speaks Anthropic's
Messages API and Gemini's ``generateContent``).

    python benchmarks/fake_openai_server.py [--port 0] [--chunks 20]

Prints ``PORT <n>`` once listening. It answers, over HTTP/1.1 keep-alive:

* ``POST /v1/chat/completions`` (a fixed completion, or a stream of ``--chunks`` chunks when
  the body asks for ``"stream": true``) and ``GET /v1/models``: OpenAI;
* ``POST /v1/messages`` (a fixed Message, or when the body asks for ``"stream": true`` the
  events ``message_start``, ``content_block_start``, ``--chunks`` text deltas,
  ``content_block_stop``, ``message_delta`` with the usage and ``message_stop``): Anthropic;
* ``POST /v1beta/models/<model>:generateContent`` (a fixed answer) and
  ``:streamGenerateContent?alt=sse`` (``--chunks`` chunks of text, the last with
  ``finishReason`` ``STOP`` and the ``usageMetadata``): Gemini.

All three replies carry the same text, and the streams the same number of text pieces. Every
response is one pre-built buffer written in one call, with ``TCP_NODELAY`` set: a server that
writes headers and body apart stalls each request for tens of milliseconds on delayed ACKs
(uvicorn's default h11 server does), which would drown what is being measured. It runs in its
own process, so its CPU time is not counted against any client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
from typing import Any

#: The text of every whole reply.
TEXT = "The capital of France is Paris. " * 4


def _response(body: bytes, content_type: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type
        + b"\r\ncontent-length: " + str(len(body)).encode()
        + b"\r\nx-request-id: req_bench\r\nconnection: keep-alive\r\n\r\n" + body
    )  # fmt: skip


def build_responses(chunks: int) -> dict[str, bytes]:
    completion = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_bench",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": TEXT,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 24,
            "completion_tokens": 28,
            "total_tokens": 52,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
    }
    events = []
    for i in range(chunks):
        events.append({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "delta": {"content": f"word{i} "}, "finish_reason": None}],
        })  # fmt: skip
    events.append({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    })  # fmt: skip
    events.append({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18", "choices": [],
        "usage": {"prompt_tokens": 24, "completion_tokens": chunks, "total_tokens": 24 + chunks},
    })  # fmt: skip
    sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    anthropic, anthropic_sse = _anthropic(chunks)
    gemini, gemini_sse = _gemini(chunks)
    models = {
        "object": "list",
        "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1_721_172_741, "owned_by": "system"}
        ],
    }
    return {
        "completion": _response(json.dumps(completion).encode(), b"application/json"),
        "stream": _response(sse.encode(), b"text/event-stream"),
        "models": _response(json.dumps(models).encode(), b"application/json"),
        "anthropic": _response(json.dumps(anthropic).encode(), b"application/json"),
        "anthropic_stream": _response(anthropic_sse.encode(), b"text/event-stream"),
        "gemini": _response(json.dumps(gemini).encode(), b"application/json"),
        "gemini_stream": _response(gemini_sse.encode(), b"text/event-stream"),
        "missing": b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
    }


def _anthropic(chunks: int) -> tuple[dict[str, Any], str]:
    """Anthropic's Messages API: a whole Message, and a stream of events (``event:`` named)."""
    model = "claude-sonnet-5"
    message = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": TEXT}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 24,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 28,
            "service_tier": "standard",
        },
    }
    start = {
        **message, "content": [], "stop_reason": None,
        "usage": {"input_tokens": 24, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 1},
    }  # fmt: skip
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": f"word{i} "}}
        for i in range(chunks)
    ]  # fmt: skip
    events += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": chunks}},
        {"type": "message_stop"},
    ]  # fmt: skip
    sse = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    return message, sse


def _gemini(chunks: int) -> tuple[dict[str, Any], str]:
    """Gemini's ``generateContent`` answer, and ``streamGenerateContent?alt=sse`` chunks."""
    model = "gemini-3.5-flash"

    def answer(text: str, *, last: bool, output: int) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}}
        chunk: dict[str, Any] = {"candidates": [candidate]}
        if last:
            candidate["finishReason"] = "STOP"
            candidate["index"] = 0
            chunk["usageMetadata"] = {
                "promptTokenCount": 24,
                "candidatesTokenCount": output,
                "totalTokenCount": 24 + output,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 24}],
            }
        return chunk | {"modelVersion": model, "responseId": "resp_bench"}

    events = [answer(f"word{i} ", last=i == chunks - 1, output=chunks) for i in range(chunks)]
    sse = "".join(f"data: {json.dumps(e)}\r\n\r\n" for e in events)
    return answer(TEXT, last=True, output=28), sse


async def serve(port: int, chunks: int) -> None:
    responses = build_responses(chunks)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, _, headers = head.partition(b"\r\n")
                path = request_line.split(b" ")[1]
                length = 0
                for line in headers.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                streamed = b'"stream":true' in body or b'"stream": true' in body
                if path.startswith(b"/v1/chat/completions"):
                    writer.write(responses["stream" if streamed else "completion"])
                elif path.startswith(b"/v1/messages"):
                    writer.write(responses["anthropic_stream" if streamed else "anthropic"])
                elif path.startswith(b"/v1beta/models/") and b":streamGenerateContent" in path:
                    writer.write(responses["gemini_stream"])
                elif path.startswith(b"/v1beta/models/") and b":generateContent" in path:
                    writer.write(responses["gemini"])
                elif path.startswith(b"/v1/models"):
                    writer.write(responses["models"])
                else:
                    writer.write(responses["missing"])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=20)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.chunks))


if __name__ == "__main__":
    main()
