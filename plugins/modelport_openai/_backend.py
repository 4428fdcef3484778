"""The backend object: one per hub and backend name, serving chat, vision and training.

Every operation is written once, as a flow (:mod:`modelport.flows`), and ``twin`` makes its
sync and async methods. The I/O is modelport's HTTP backend kit (:mod:`modelport.http`): its
``httpx`` clients (the configured timeouts and connection limit, pooled per event loop), its
status-to-error table with OpenAI's error body read by :mod:`._errors`, its SSE framing. The
JSON is read straight into modelport's types.

The ``openai`` SDK does what it does well and is rarely on the hot path: the Files API
(multipart uploads with progress, deletes), through the kit's own HTTP clients with
``max_retries=0``, so the core's retry policy is the only retry loop. It loads on first use.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any, ClassVar
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
from modelport.errors import (
    BackendError,
    ConfigError,
    NotFoundError,
    PermissionDeniedError,
    ResponseError,
    UnsupportedError,
)
from modelport.flows import Flow, Invoke, ItemFlow, Step, twin, twin_iter
from modelport.http import HTTPClient, Request
from modelport.logs import get_logger, redact
from modelport.training import dataset_to_jsonl

from ._errors import error_reader, sdk_error, training_refusal
from ._settings import OpenAISettings, resolve
from ._wire import (
    ModelRules,
    StreamAssembler,
    chat_body,
    drop_refused,
    events_from_json,
    job_from_json,
    jobs_from_json,
    model_rules,
    models_from_json,
    reply_from_json,
    vision_body,
)

__all__ = ["OpenAIBackend"]

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


_PERMISSION = "the key is valid but not allowed to do this (check its project and model access)"
_OTHER_TRAINER = "train with another backend: [capabilities] training = <name>"


def _utc_today() -> date:
    return datetime.now(UTC).date()


class OpenAIBackend:
    """Chat, streaming, vision, model list and fine-tuning over the OpenAI API."""

    def __init__(self, context: BackendContext[OpenAISettings]) -> None:
        settings = context.settings
        self.name = context.name
        self.config = resolve(context.name, settings, context.env)
        variable = self.config.api_key_env
        self._key: Secret | None = None  # a Secret's repr never shows the key
        headers = dict(settings.headers)
        if self.config.require_key or context.env.get(variable):
            self._key = context.secret(variable)
            headers["Authorization"] = f"Bearer {self._key.reveal()}"
        if self.config.organization:
            headers["OpenAI-Organization"] = self.config.organization
        if self.config.project:
            headers["OpenAI-Project"] = self.config.project
        self.http = HTTPClient(
            self.name,
            self.config.base_url,
            headers=headers,
            params=settings.query,
            timeout_s=settings.timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            max_connections=settings.max_connections,
            key_env=variable,
            read_error=error_reader(self.config.base_url),
            hints={PermissionDeniedError: _PERMISSION},
        )
        self._model_cache: tuple[float, list[ModelInfo]] | None = None
        self._rules: dict[str, ModelRules] = {}
        self._dropped_logged: set[tuple[str, tuple[str, ...]]] = set()
        #: Today's date (UTC); tests replace it to see the fine-tuning closure either side.
        self.today: Callable[[], date] = _utc_today
        if self._example_token_limit is not None:
            self.example_token_limit = self._example_token_limit

    def __repr__(self) -> str:
        return f"OpenAIBackend(name={self.name!r}, base_url={redact(self.config.base_url)!r})"

    #: The fewest training examples OpenAI accepts.
    min_examples = 10
    #: Tokens per training example; longer ones are truncated (gpt-4o-mini, gpt-4.1). An
    #: instance attribute, set from ``_example_token_limit``: a subclass whose limit depends on
    #: the model (Together's) sets that to ``None`` and then has no ``example_token_limit``.
    example_token_limit: int
    _example_token_limit: ClassVar[int | None] = 65_536

    #: The image formats the API takes; the core re-encodes anything else.
    media_types = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})

    @property
    def training_media_types(self) -> frozenset[str]:
        """The image types vision fine-tuning takes (OpenAI's and Azure's fine-tuning API;
        none for other servers): datasets built from dialogues keep such images."""
        if self.config.preset.name not in ("openai", "azure"):
            return frozenset()
        return frozenset({"image/png", "image/jpeg", "image/webp"})

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

    # --- plumbing -------------------------------------------------------------------------

    def close(self) -> None:
        self.http.close()

    async def aclose(self) -> None:
        await self.http.aclose()

    def _sdk_files(self, http_client: Any) -> Any:
        """The SDK's Files API over one of the kit's HTTP clients (uploads are rare: the SDK
        client is made per call, so it never outlives the HTTP client it borrows)."""
        import openai

        cls = openai.AsyncOpenAI if isinstance(http_client, httpx.AsyncClient) else openai.OpenAI
        key = self._key.reveal() if self._key is not None else _NO_KEY
        return cls(
            api_key=key,
            organization=self.config.organization,
            project=self.config.project,
            base_url=self.config.base_url,
            max_retries=0,
            http_client=http_client,  # which sends the headers and query of the kit's client
        ).files

    def _json(self, response: httpx.Response) -> Any:
        return self.http.parse_json(response)

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
            stream_usage=self.config.stream_usage,
            json_mode=self.config.preset.json_mode,
            renamed=self.config.preset.renamed,
        )
        return self._allowed(body, model, rules)

    def _vision_body(self, request: VisionRequest, model: str) -> dict[str, Any]:
        rules = self._model_rules(model)
        body = vision_body(
            request,
            model=model,
            defaults=self.config.settings.options,
            max_tokens_param=rules.tokens_param,
            json_mode=self.config.preset.json_mode,
            renamed=self.config.preset.renamed,
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
        cached = self._model_cache
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1]
        return None

    def _cache_models(self, models: list[ModelInfo]) -> list[ModelInfo]:
        ttl = self.config.settings.models_ttl_s
        if ttl > 0:
            self._model_cache = (time.monotonic() + ttl, models)
        return models

    # --- chat -----------------------------------------------------------------------------

    def _model(self, requested: str | None, *, vision: bool = False) -> Flow[str]:
        """The model to call: the request's, else the configured one, else the first the
        server lists."""
        model = self._chat_model(requested, vision)
        if model:
            return model
        return self._auto_model((yield from self._models()))

    def _post(self, path: str, body: Mapping[str, Any]) -> Step[httpx.Response]:
        return self.http.send(Request("POST", path, json=body))

    def _complete(self, request: ChatRequest) -> Flow[Reply]:
        model = yield from self._model(request.model)
        body = self._chat_body(request, model, stream=False)
        response = yield self._post("/chat/completions", body)
        return self._reply(response, model, request.options.json_schema is not None)

    def _stream(self, request: ChatRequest) -> ItemFlow[StreamDelta]:
        model = yield from self._model(request.model)
        body = self._chat_body(request, model, stream=True)
        assembler = StreamAssembler(self.name, model, on_error=self.http.event_error)
        yield from self.http.stream(
            Request("POST", "/chat/completions", json=body),
            feed=lambda event: assembler.feed(event.data),
            end=assembler.finish,
        )

    def _models(self) -> Flow[list[ModelInfo]]:
        cached = self._cached_models()
        if cached is not None:
            return cached
        data = yield self.http.json(Request("GET", "/models"))
        return self._cache_models(models_from_json(data, self.name))

    def _describe(self, request: VisionRequest) -> Flow[Reply]:
        model = yield from self._model(request.model, vision=True)
        response = yield self._post("/chat/completions", self._vision_body(request, model))
        return self._reply(response, model, request.options.json_schema is not None)

    complete, acomplete = twin(_complete)
    stream, astream = twin_iter(_stream)
    models, amodels = twin(_models)
    describe, adescribe = twin(_describe)

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

    def _files(self, call: Callable[[Any], Any]) -> Flow[Any]:
        """``call(files)`` on the SDK's Files API (sync or async), its failures mapped."""

        def sync() -> Any:
            return call(self._sdk_files(self.http.client))

        async def async_() -> Any:
            pool = self.http.pool
            index, client = pool.acquire()
            try:
                return await call(self._sdk_files(client))
            finally:
                pool.release(index)

        try:
            return (yield Invoke(sync, async_))
        except Exception as exc:
            error = sdk_error(exc, self.http)
            if error is None:
                raise
            raise error from exc

    def _upload(
        self,
        dataset: TrainingDataset,
        *,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Flow[str]:
        self._check_training_open()
        file = self._upload_file(dataset, on_progress)
        try:
            raw = yield from self._files(
                lambda files: files.with_raw_response.create(file=file, purpose="fine-tune")
            )
        except BackendError as exc:
            raise training_refusal(exc) from exc.__cause__
        return self._file_id(self._json(raw.http_response))

    def _delete_file(self, file_id: str) -> Flow[None]:
        """Delete an uploaded file (the hub does, when the job it was for did not start)."""
        yield from self._files(lambda files: files.delete(file_id))

    def _job_call(
        self, method: str, job_id: str | None = None, tail: str = "", **request: Any
    ) -> Flow[Any]:
        """A fine-tuning jobs endpoint's JSON; a 404 on a job's path is an unknown job."""
        path = "/fine_tuning/jobs" + (f"/{quote(job_id, safe='')}{tail}" if job_id else "")
        try:
            return (yield self.http.json(Request(method, path, **request)))
        except NotFoundError as exc:
            if job_id is not None:
                exc.hint = "no such job; list them with: modelport jobs list --remote"
            raise

    def _start(self, spec: JobSpec) -> Flow[TrainingJob]:
        self._check_training_open(note=True)
        try:
            data = yield from self._job_call("POST", json=self._job_body(spec))
        except BackendError as exc:
            raise training_refusal(exc) from exc.__cause__
        return job_from_json(data, self.name)

    def _get_job(self, job_id: str) -> Flow[TrainingJob]:
        return job_from_json((yield from self._job_call("GET", job_id)), self.name)

    def _list_jobs(self, *, limit: int = 20) -> Flow[list[TrainingJob]]:
        data = yield from self._job_call("GET", params={"limit": limit})
        return jobs_from_json(data, self.name)

    def _cancel_job(self, job_id: str) -> Flow[TrainingJob]:
        return job_from_json((yield from self._job_call("POST", job_id, "/cancel")), self.name)

    def _job_events(self, job_id: str) -> Flow[list[JobEvent]]:
        data = yield from self._job_call("GET", job_id, "/events", params={"limit": 100})
        return events_from_json(data, self.name)

    upload, aupload = twin(_upload)
    delete_file, adelete_file = twin(_delete_file)
    start, astart = twin(_start)
    get_job, aget_job = twin(_get_job)
    list_jobs, alist_jobs = twin(_list_jobs)
    cancel_job, acancel_job = twin(_cancel_job)
    job_events, ajob_events = twin(_job_events)
