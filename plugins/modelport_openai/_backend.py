"""The backend object: one per hub and backend name, serving chat, vision and training.

It owns its HTTP clients (``httpx.Client`` / ``httpx.AsyncClient``, with the configured
timeouts and connection limits) and hands them to the SDK with ``max_retries=0``, so the core's
retry policy is the only retry loop and every request goes through a transport the backend
controls. The SDK and its clients are created on first use.

Chat and vision go through the SDK's generic ``post`` with ``cast_to=httpx.Response`` and the
JSON is read straight into modelport's types: the SDK still builds, authenticates and sends the
request and raises its errors, but no response object is built only to be converted again.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import httpx

from modelport import (
    BackendContext,
    ChatRequest,
    JobEvent,
    JobSpec,
    ModelInfo,
    Reply,
    Secret,
    StreamDelta,
    TrainingDataset,
    TrainingJob,
    VisionRequest,
)
from modelport.errors import ConfigError, ResponseError, UnsupportedError
from modelport.logs import get_logger, redact
from modelport.training import dataset_to_jsonl

from ._errors import ErrorContext, map_error
from ._pool import AsyncClientPool
from ._settings import OpenAISettings, resolve
from ._wire import (
    ModelRules,
    StreamAssembler,
    asse_payloads,
    chat_body,
    drop_refused,
    events_from_json,
    job_from_json,
    jobs_from_json,
    model_rules,
    models_from_json,
    reply_from_json,
    sse_payloads,
    vision_body,
)

if TYPE_CHECKING:
    import openai

__all__ = ["OpenAIBackend"]

#: A dated snapshot's suffix (``gpt-4o-mini-2024-07-18``), priced as its alias when unlisted.


class _Response(Protocol):
    """What is read of an HTTP response (httpx's, or the SDK's own httpx2's)."""

    @property
    def content(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...


_NO_KEY = "no-key"  # what the SDK sends to servers that need no key (it insists on one)


class _Sending(io.BytesIO):
    """An upload's bytes that report how far the HTTP client has read them: httpx streams a
    multipart file in 64 KiB reads as it sends, so ``on_progress(sent, total)`` follows the
    upload (at most one chunk ahead of the socket)."""

    def __init__(self, data: bytes, on_progress: Callable[[int, int], None]) -> None:
        super().__init__(data)
        self._total = len(data)
        self._on_progress = on_progress

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        if chunk:
            self._on_progress(self.tell(), self._total)
        return chunk


_OTHER_TRAINER = "train with another backend: [capabilities] training = <name>"


def _utc_today() -> date:
    return datetime.now(UTC).date()


class OpenAIBackend:
    """Chat, streaming, vision, model list and fine-tuning over the OpenAI API."""

    def __init__(self, context: BackendContext) -> None:
        settings = context.settings
        if not isinstance(settings, OpenAISettings):  # pragma: no cover - the core structures it
            raise TypeError(f"expected OpenAISettings, got {type(settings).__name__}")
        self.name = context.name
        self.config = resolve(context.name, settings, context.env)
        variable = self.config.api_key_env
        self._key: Secret | None = None  # a Secret's repr never shows the key
        if self.config.require_key or context.env.get(variable):
            self._key = context.secret(variable)
        self._errors = ErrorContext(
            backend=self.name,
            base_url=self.config.base_url,
            api_key_env=variable,
            timeout_s=settings.timeout_s,
            secret=self._key,
        )
        self._lock = threading.Lock()
        self._client: openai.OpenAI | None = None
        self._apool: AsyncClientPool | None = None
        self._models: tuple[float, list[ModelInfo]] | None = None
        self._rules: dict[str, ModelRules] = {}
        self._dropped_logged: set[tuple[str, tuple[str, ...]]] = set()
        #: Today's date (UTC); tests replace it to see the fine-tuning closure either side.
        self.today: Callable[[], date] = _utc_today

    def __repr__(self) -> str:
        return f"OpenAIBackend(name={self.name!r}, base_url={redact(self.config.base_url)!r})"

    #: The fewest training examples OpenAI accepts.
    min_examples = 10
    #: Tokens per training example; longer ones are truncated (gpt-4o-mini, gpt-4.1).
    example_token_limit = 65_536

    #: The image formats the API takes; the core re-encodes anything else.
    media_types = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})

    @property
    def accepts_urls(self) -> bool:
        """Whether image URLs go to the server as they are (else the core fetches them)."""
        return self.config.image_urls

    @property
    def configured_models(self) -> Mapping[str, str]:
        """The models this backend uses when a call and its assistant name none, each with
        the setting that names it (the hub warns when one has a shutdown date)."""
        section = f"backends.{self.name}"
        found = {self.config.vision_model: f"{section}.vision_model"}
        found[self.config.model] = f"{section}.model"
        return {model: key for model, key in found.items() if model}

    def training_price(self, base_model: str) -> float | None:
        """US dollars per million training tokens for ``base_model``, when known."""
        prices = self.config.training_prices
        match = max((p for p in prices if base_model.startswith(p)), key=len, default=None)
        return prices[match] if match is not None else None

    def chat_price(self, model: str) -> tuple[float, float] | None:
        """US dollars per million tokens (input, output) for chat and vision calls to
        ``model``, when this backend's preset lists that exact name (the core's ``[prices]``
        config comes first, and the core asks again with a dated snapshot's alias)."""
        return self.config.preset.chat_prices.get(model)

    def training_warnings(self, base_model: str | None = None) -> list[str]:
        """What ``modelport train --check`` should know beyond the data: here, that the vendor
        stops taking new fine-tuning jobs (or has stopped)."""
        closes = self.config.training_closes
        if closes is None:
            return []
        if self.today() >= closes:
            return [
                f"OpenAI accepts no new fine-tuning jobs since {closes.isoformat()}: starting "
                f"one will fail; {_OTHER_TRAINER}"
            ]
        return [
            f"OpenAI accepts no new fine-tuning jobs from {closes.isoformat()} (the base models "
            f"shut down on 2027-01-14); start jobs before then, or {_OTHER_TRAINER}"
        ]

    def _check_training_open(self, *, note: bool = False) -> None:
        """Refuse an upload or a job from the vendor's closing day on; with ``note``, say
        before then that the day is coming."""
        closes = self.config.training_closes
        if closes is None:
            return
        if self.today() >= closes:
            raise UnsupportedError(
                f"OpenAI accepts no new fine-tuning jobs since {closes.isoformat()}",
                backend=self.name,
                hint=_OTHER_TRAINER,
            )
        if not note:
            return
        get_logger().warning(
            "fine_tuning_closes",
            backend=self.name,
            closes=closes.isoformat(),
            note=f"OpenAI accepts no new fine-tuning jobs from {closes.isoformat()}; "
            f"jobs started before then run to the end. After it, {_OTHER_TRAINER}",
        )

    # --- clients --------------------------------------------------------------------------

    def _client_args(self) -> dict[str, Any]:
        settings = self.config.settings
        return {
            "api_key": self._key.reveal() if self._key is not None else _NO_KEY,
            "organization": self.config.organization,
            "project": self.config.project,
            "base_url": self.config.base_url,
            "timeout": httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            "max_retries": 0,
            "default_headers": dict(settings.headers) or None,
            "default_query": dict(settings.query) or None,
        }

    def _http_args(self, connections: int) -> dict[str, Any]:
        settings = self.config.settings
        return {
            "timeout": httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            "limits": httpx.Limits(
                max_connections=connections, max_keepalive_connections=connections
            ),
            "follow_redirects": True,
        }

    @property
    def client(self) -> openai.OpenAI:
        """The SDK client, created on first use."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    import openai

                    http = httpx.Client(**self._http_args(self.config.settings.max_connections))
                    # openai 3.x annotates its own httpx2 but accepts an httpx client.
                    self._client = openai.OpenAI(**self._client_args(), http_client=http)  # type: ignore[arg-type]
                client = self._client
        return client

    def _make_async(self, connections: int) -> openai.AsyncOpenAI:
        import openai

        http = httpx.AsyncClient(**self._http_args(connections))
        return openai.AsyncOpenAI(**self._client_args(), http_client=http)  # type: ignore[arg-type]

    @property
    def apool(self) -> AsyncClientPool:
        """The async clients of the running event loop (see :mod:`._pool`)."""
        loop = asyncio.get_running_loop()
        pool = self._apool
        if pool is None or pool.loop is not loop:
            pool = self._apool = AsyncClientPool(
                loop, self._make_async, self.config.settings.max_connections
            )
        return pool

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        pool, self._apool = self._apool, None
        if pool is not None and pool.loop is asyncio.get_running_loop():
            await pool.aclose()

    # --- requests -------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        training: bool = False,
    ) -> httpx.Response:
        options: Any = {"params": params} if params else {}
        with self._mapped(training=training):
            if method == "GET":
                return self.client.get(path, cast_to=httpx.Response, options=options)
            return self.client.post(path, body=body, cast_to=httpx.Response, options=options)

    async def _arequest(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        training: bool = False,
    ) -> httpx.Response:
        options: Any = {"params": params} if params else {}
        pool = self.apool
        index, client = pool.acquire()
        try:
            with self._mapped(training=training):
                if method == "GET":
                    return await client.get(path, cast_to=httpx.Response, options=options)
                return await client.post(path, body=body, cast_to=httpx.Response, options=options)
        finally:
            pool.release(index)

    # --- shared ---------------------------------------------------------------------------

    @contextmanager
    def _mapped(self, *, training: bool = False) -> Iterator[None]:
        """Raise SDK and HTTP failures as the core's errors, chained with ``from``."""
        try:
            yield
        except Exception as exc:
            error = map_error(exc, self._errors, training=training)
            if error is None:
                raise
            raise error from exc

    def _json(self, response: _Response) -> Any:
        try:
            return json.loads(response.content)
        except ValueError:
            raise ResponseError(
                f"the server answered with something that is not JSON: {response.text[:60]!r}",
                backend=self.name,
                status=response.status_code,
                request_id=response.headers.get("x-request-id"),
                hint=f"check that base_url ({redact(self.config.base_url)}) is an OpenAI-compatible"
                " API",
            ) from None

    def _auto_model(self, models: Sequence[ModelInfo]) -> str:
        """The first model listed, preferring one with no shutdown date."""
        if not models:
            raise ConfigError(
                f"backend {self.name!r} has no model set and the server lists none",
                key=f"backends.{self.name}.model",
                hint=f"set [backends.{self.name}] model = ...",
            )
        return next((m.id for m in models if m.shutdown_date is None), models[0].id)

    def _chat_model(self, requested: str | None, vision: bool = False) -> str | None:
        return requested or (self.config.vision_model if vision else self.config.model) or None

    def _model_rules(self, model: str) -> ModelRules:
        rules = self._rules.get(model)
        if rules is None:
            config = self.config
            rules = model_rules(model, config.reasoning_models, config.max_tokens_param)
            self._rules[model] = rules
        return rules

    def _allowed(self, body: dict[str, Any], model: str, rules: ModelRules) -> dict[str, Any]:
        """``body`` without the keys ``model`` refuses; says so once per model and key set."""
        dropped = drop_refused(body, rules)
        if dropped and (model, dropped) not in self._dropped_logged:
            self._dropped_logged.add((model, dropped))
            get_logger().debug(
                "options_dropped",
                backend=self.name,
                model=model,
                dropped=list(dropped),
                reason=f"{model!r} matches the reasoning model pattern {rules.pattern!r} in "
                f"[backends.{self.name}] reasoning_models, which refuses these unless "
                'reasoning_effort = "none"',
            )
        return body

    def _chat_body(self, request: ChatRequest, model: str, stream: bool) -> dict[str, Any]:
        rules = self._model_rules(model)
        body = chat_body(
            request,
            model=model,
            defaults=self.config.settings.options,
            max_tokens_param=rules.tokens_param,
            stream=stream,
            stream_usage=self.config.settings.stream_usage,
        )
        return self._allowed(body, model, rules)

    def _vision_body(self, request: VisionRequest, model: str) -> dict[str, Any]:
        rules = self._model_rules(model)
        body = vision_body(
            request,
            model=model,
            defaults=self.config.settings.options,
            max_tokens_param=rules.tokens_param,
        )
        return self._allowed(body, model, rules)

    def _reply(self, response: httpx.Response, model: str, structured: bool) -> Reply:
        return reply_from_json(
            self._json(response),
            backend=self.name,
            model=model,
            request_id=response.headers.get("x-request-id"),
            structured=structured,
        )

    def _cached_models(self) -> list[ModelInfo] | None:
        cached = self._models
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1]
        return None

    def _cache_models(self, models: list[ModelInfo]) -> list[ModelInfo]:
        ttl = self.config.settings.models_ttl_s
        if ttl > 0:
            self._models = (time.monotonic() + ttl, models)
        return models

    # --- chat -----------------------------------------------------------------------------

    def complete(self, request: ChatRequest) -> Reply:
        model = self._chat_model(request.model) or self._auto_model(self.models())
        response = self._request(
            "POST", "/chat/completions", body=self._chat_body(request, model, stream=False)
        )
        return self._reply(response, model, request.options.json_schema is not None)

    def stream(self, request: ChatRequest) -> Iterator[StreamDelta]:
        model = self._chat_model(request.model) or self._auto_model(self.models())
        body = self._chat_body(request, model, stream=True)
        with self._mapped():
            response = self.client.post(
                "/chat/completions", body=body, cast_to=httpx.Response, stream=True
            )
        try:
            assembler = StreamAssembler(self.name, model)
            with self._mapped():
                for payload in sse_payloads(response.iter_lines()):
                    delta = assembler.feed(payload)
                    if delta is not None:
                        yield delta
                    if assembler.done:
                        break
            yield assembler.finish()
        finally:
            response.close()

    def models(self) -> list[ModelInfo]:
        cached = self._cached_models()
        if cached is not None:
            return cached
        response = self._request("GET", "/models")
        return self._cache_models(models_from_json(self._json(response), self.name))

    async def acomplete(self, request: ChatRequest) -> Reply:
        model = self._chat_model(request.model) or self._auto_model(await self.amodels())
        response = await self._arequest(
            "POST", "/chat/completions", body=self._chat_body(request, model, stream=False)
        )
        return self._reply(response, model, request.options.json_schema is not None)

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        model = self._chat_model(request.model) or self._auto_model(await self.amodels())
        body = self._chat_body(request, model, stream=True)
        pool = self.apool
        index, client = pool.acquire()
        try:
            with self._mapped():
                response = await client.post(
                    "/chat/completions", body=body, cast_to=httpx.Response, stream=True
                )
            try:
                assembler = StreamAssembler(self.name, model)
                with self._mapped():
                    async for payload in asse_payloads(response.aiter_lines()):
                        delta = assembler.feed(payload)
                        if delta is not None:
                            yield delta
                        if assembler.done:
                            break
                yield assembler.finish()
            finally:
                await response.aclose()
        finally:
            pool.release(index)

    async def amodels(self) -> list[ModelInfo]:
        cached = self._cached_models()
        if cached is not None:
            return cached
        response = await self._arequest("GET", "/models")
        return self._cache_models(models_from_json(self._json(response), self.name))

    # --- vision ---------------------------------------------------------------------------

    def describe(self, request: VisionRequest) -> Reply:
        model = self._chat_model(request.model, vision=True) or self._auto_model(self.models())
        response = self._request(
            "POST", "/chat/completions", body=self._vision_body(request, model)
        )
        return self._reply(response, model, request.options.json_schema is not None)

    async def adescribe(self, request: VisionRequest) -> Reply:
        model = self._chat_model(request.model, vision=True) or self._auto_model(
            await self.amodels()
        )
        response = await self._arequest(
            "POST", "/chat/completions", body=self._vision_body(request, model)
        )
        return self._reply(response, model, request.options.json_schema is not None)

    # --- training -------------------------------------------------------------------------

    @staticmethod
    def _upload_file(
        dataset: TrainingDataset, on_progress: Callable[[int, int], None] | None = None
    ) -> tuple[str, bytes | io.BytesIO, str]:
        name = PurePath(dataset.source).name
        if not name.endswith(".jsonl"):
            name = "modelport-dataset.jsonl"
        data = dataset_to_jsonl(dataset).encode("utf-8")
        if on_progress is not None:
            on_progress(0, len(data))
            return name, _Sending(data, on_progress), "application/jsonl"
        return name, data, "application/jsonl"

    def _file_id(self, data: Any) -> str:
        if not isinstance(data, Mapping) or not data.get("id"):
            raise ResponseError("the upload's response holds no file id", backend=self.name)
        return str(data["id"])

    @staticmethod
    def _job_body(spec: JobSpec) -> dict[str, Any]:
        body: dict[str, Any] = {"model": spec.base_model, "training_file": spec.training_file}
        if spec.validation_file:
            body["validation_file"] = spec.validation_file
        if spec.suffix:
            body["suffix"] = spec.suffix
        if spec.hyperparameters:
            body["method"] = {
                "type": "supervised",
                "supervised": {"hyperparameters": dict(spec.hyperparameters)},
            }
        return body

    @staticmethod
    def _job_path(job_id: str, tail: str = "") -> str:
        return f"/fine_tuning/jobs/{quote(job_id, safe='')}{tail}"

    def upload(
        self,
        dataset: TrainingDataset,
        *,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> str:
        self._check_training_open()
        with self._mapped(training=True):
            raw = self.client.files.with_raw_response.create(
                file=self._upload_file(dataset, on_progress), purpose="fine-tune"
            )
        return self._file_id(self._json(raw.http_response))

    def delete_file(self, file_id: str) -> None:
        """Delete an uploaded file (the hub does, when the job it was for did not start)."""
        with self._mapped():
            self.client.files.delete(file_id)

    def start(self, spec: JobSpec) -> TrainingJob:
        self._check_training_open(note=True)
        response = self._request(
            "POST", "/fine_tuning/jobs", body=self._job_body(spec), training=True
        )
        return job_from_json(self._json(response), self.name)

    def get_job(self, job_id: str) -> TrainingJob:
        response = self._request("GET", self._job_path(job_id))
        return job_from_json(self._json(response), self.name)

    def list_jobs(self, *, limit: int = 20) -> list[TrainingJob]:
        response = self._request("GET", "/fine_tuning/jobs", params={"limit": limit})
        return jobs_from_json(self._json(response), self.name)

    def cancel_job(self, job_id: str) -> TrainingJob:
        response = self._request("POST", self._job_path(job_id, "/cancel"))
        return job_from_json(self._json(response), self.name)

    def job_events(self, job_id: str) -> list[JobEvent]:
        response = self._request("GET", self._job_path(job_id, "/events"), params={"limit": 100})
        return events_from_json(self._json(response), self.name)

    async def aupload(
        self,
        dataset: TrainingDataset,
        *,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> str:
        self._check_training_open()
        with self._mapped(training=True):
            raw = await self.apool.first().files.with_raw_response.create(
                file=self._upload_file(dataset, on_progress), purpose="fine-tune"
            )
        return self._file_id(self._json(raw.http_response))

    async def adelete_file(self, file_id: str) -> None:
        with self._mapped():
            await self.apool.first().files.delete(file_id)

    async def astart(self, spec: JobSpec) -> TrainingJob:
        self._check_training_open(note=True)
        response = await self._arequest(
            "POST", "/fine_tuning/jobs", body=self._job_body(spec), training=True
        )
        return job_from_json(self._json(response), self.name)

    async def aget_job(self, job_id: str) -> TrainingJob:
        response = await self._arequest("GET", self._job_path(job_id))
        return job_from_json(self._json(response), self.name)

    async def alist_jobs(self, *, limit: int = 20) -> list[TrainingJob]:
        response = await self._arequest("GET", "/fine_tuning/jobs", params={"limit": limit})
        return jobs_from_json(self._json(response), self.name)

    async def acancel_job(self, job_id: str) -> TrainingJob:
        response = await self._arequest("POST", self._job_path(job_id, "/cancel"))
        return job_from_json(self._json(response), self.name)

    async def ajob_events(self, job_id: str) -> list[JobEvent]:
        response = await self._arequest(
            "GET", self._job_path(job_id, "/events"), params={"limit": 100}
        )
        return events_from_json(self._json(response), self.name)
