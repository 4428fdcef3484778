"""The OpenAI backend passes the chat, vision and training conformance suites, its API faked
with respx at the transport."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

import modelport_openai
from modelport import Usage
from modelport.testing.conformance import (
    ChatConformance,
    TrainingConformance,
    VisionConformance,
)

from .conftest import BASE, KEY, chunk, completion, error, ok, sse

STATUS = {"auth": 401, "rate_limit": 429, "server": 500, "bad_request": 400}


class ChatConformanceRouter:
    """The OpenAI API at BASE with a key, a model list, and failures on chat completions."""

    api: respx.MockRouter

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"base_url": BASE}

    def env(self) -> Mapping[str, str]:
        return {"OPENAI_API_KEY": KEY}

    @pytest.fixture(autouse=True)
    def _router(self, api: respx.MockRouter) -> None:
        self.api = api
        api.get("/models").mock(
            return_value=ok({"object": "list", "data": [
                {"id": "gpt-6-luna", "object": "model", "created": 1, "owned_by": "o"}]})
        )  # fmt: skip

    def arrange_failure(self, kind: str) -> None:
        self.api.post("/chat/completions").mock(
            return_value=error(STATUS[kind], f"{kind} happened")
        )


class TestOpenAIChat(ChatConformanceRouter, ChatConformance):
    backend = "openai"
    plugins = (("openai", modelport_openai),)
    model = "gpt-6-luna"

    def arrange_reply(self, text: str) -> None:
        words = text.split(" ")
        pieces = [f"{w} " for w in words[:-1]] + [words[-1]]

        def answer(request: httpx.Request) -> httpx.Response:
            if json.loads(request.content).get("stream"):
                return sse(*[chunk(p) for p in pieces], chunk(finish="stop"))
            return ok(completion(text))

        self.api.post("/chat/completions").mock(side_effect=answer)

    def arrange_stream(
        self,
        pieces: Sequence[str],
        *,
        usage: Usage | None = None,
        cut: bool = False,
        error_mid_stream: bool = False,
    ) -> None:
        events = [chunk(p) for p in pieces]
        if error_mid_stream:
            events.append(f"data: {json.dumps({'error': {'message': 'overloaded'}})}\n\n")
        elif not cut:
            events.append(chunk(finish="stop"))
            if usage is not None:
                events.append(chunk(usage=_usage(usage)))
        reply = sse(*events, done=not (cut or error_mid_stream))
        self.api.post("/chat/completions").mock(return_value=reply)

    def arrange_complete(self, text: str, *, usage: Usage) -> None:
        body = completion(text, usage=_usage(usage))
        self.api.post("/chat/completions").mock(return_value=ok(body))

    def arrange_rate_limit(self, retry_after: float) -> None:
        reply = error(429, "slow down", **{"retry-after": str(retry_after)})
        self.api.post("/chat/completions").mock(return_value=reply)

    def last_request_messages(self) -> Sequence[tuple[str, str]]:
        body = json.loads(self.api.calls.last.request.content)
        return [(m["role"], _content(m["content"])) for m in body["messages"]]


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _content(content: str | list[dict[str, Any]]) -> str:
    """A message's text, whether sent as a string or as parts."""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


class TestOpenAIVision(ChatConformanceRouter, VisionConformance):
    backend = "openai"
    plugins = (("openai", modelport_openai),)
    model = "gpt-6-luna"

    def arrange_reply(self, text: str) -> None:
        self.api.post("/chat/completions").mock(return_value=ok(completion(text)))


class FineTuningService:
    """The fine-tuning endpoints, faked statefully: files, jobs, cancel, events."""

    def __init__(self, api: respx.MockRouter) -> None:
        self.failing: int | None = None  # a status every job lookup answers with
        self.files: list[str] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        api.post("/files").mock(side_effect=self.upload)
        api.post("/fine_tuning/jobs").mock(side_effect=self.create)
        api.get("/fine_tuning/jobs").mock(side_effect=self.list)
        api.get(path__regex=r"/fine_tuning/jobs/(?P<job_id>[^/]+)$").mock(side_effect=self.get)
        api.post(path__regex=r"/fine_tuning/jobs/(?P<job_id>[^/]+)/cancel$").mock(
            side_effect=self.cancel
        )
        api.get(path__regex=r"/fine_tuning/jobs/(?P<job_id>[^/]+)/events$").mock(
            side_effect=self.events
        )

    def upload(self, request: httpx.Request) -> httpx.Response:
        self.files.append(f"file-{len(self.files) + 1}")
        return ok({"id": self.files[-1], "object": "file", "purpose": "fine-tune"})

    def create(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["training_file"] not in self.files:
            return error(400, "invalid training_file")
        job_id = f"ftjob-{len(self.jobs) + 1}"
        self.jobs[job_id] = {
            "id": job_id, "object": "fine_tuning.job", "model": body["model"],
            "created_at": 1_721_764_800 + len(self.jobs), "finished_at": None,
            "fine_tuned_model": None, "status": "validating_files",
            "training_file": body["training_file"], "error": None,
        }  # fmt: skip
        return ok(self.jobs[job_id])

    def list(self, request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params.get("limit", 20))
        newest = sorted(self.jobs.values(), key=lambda j: -int(j["created_at"]))
        return ok({"object": "list", "data": newest[:limit], "has_more": False})

    def get(self, request: httpx.Request, job_id: str) -> httpx.Response:
        if self.failing is not None:
            return error(self.failing, "it failed")
        if job_id not in self.jobs:
            return error(404, f"No such job: {job_id}")
        return ok(self.jobs[job_id])

    def cancel(self, request: httpx.Request, job_id: str) -> httpx.Response:
        if job_id not in self.jobs:
            return error(404, f"No such job: {job_id}")
        self.jobs[job_id]["status"] = "cancelled"
        return ok(self.jobs[job_id])

    def events(self, request: httpx.Request, job_id: str) -> httpx.Response:
        if job_id not in self.jobs:
            return error(404, f"No such job: {job_id}")
        created = int(self.jobs[job_id]["created_at"])
        return ok({"object": "list", "data": [  # newest first, as the API sends them
            {"object": "fine_tuning.job.event", "created_at": created + 5, "level": "info",
             "message": "Validating training file"},
            {"object": "fine_tuning.job.event", "created_at": created, "level": "info",
             "message": "Created fine-tuning job"},
        ]})  # fmt: skip


class TestOpenAITraining(TrainingConformance):
    backend = "openai"
    plugins = (("openai", modelport_openai),)
    base_model = "gpt-4o-mini-2024-07-18"

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"base_url": BASE}

    def env(self) -> Mapping[str, str]:
        return {"OPENAI_API_KEY": KEY}

    @pytest.fixture(autouse=True)
    def _router(self, api: respx.MockRouter) -> None:
        self.api = api

    def arrange_service(self) -> None:
        self.service = FineTuningService(self.api)

    def arrange_failure(self, kind: str) -> None:
        self.service.failing = STATUS[kind]
