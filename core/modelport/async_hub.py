"""The asyncio twin of :class:`modelport.Hub`: the same methods, awaited.

Backends that implement the optional ``Async*`` protocols are awaited directly; sync-only
backends, stores and sentiment analyzers run in worker threads, so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import attrs

from ._runtime import Call
from .errors import BackendError, CorruptRecordError, ModelportError, RecordNotFoundError
from .hub import (
    _END,
    MAX_OUTAGE_S,
    DatasetSource,
    _assemble,
    _Attempt,
    _base_model,
    _Chain,
    _close,
    _dataset,
    _dialogue_assistant,
    _HubBase,
    _images,
    _job_not_recorded,
    _learnt,
    _loader,
    _new_record,
    _prepare_turn,
    _Progress,
    _quietly,
    _store_turn,
    _Turn,
    _Uploads,
    _vision_request,
    _wider,
    _window,
)
from .images import ImageSource
from .logs import get_logger
from .training import DatasetReport, dataset_from_dialogues
from .types import (
    Answer,
    Capability,
    ChatOptions,
    Dialogue,
    JobEvent,
    JobRecord,
    JobSpec,
    Message,
    ModelInfo,
    Page,
    Reply,
    Sentiment,
    SentimentLabel,
    StreamDelta,
    TrainingDataset,
    TrainingJob,
    UploadProgress,
    UsageRecord,
    UsageReport,
)

__all__ = ["AsyncHub", "AsyncReplyStream"]

T = TypeVar("T")


class AsyncHub(_HubBase):
    """The asyncio hub. Use ``async with``, or await :meth:`aclose`.

    Takes the same arguments as :class:`modelport.Hub` (``asleep`` replaces ``sleep`` for
    retries and the rate limiter).
    """

    async def __aenter__(self) -> AsyncHub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every backend that was opened (``aclose()`` or ``close()``), and the
        connections of shared limiters."""
        for backend in self._rt.closables():
            aclose = getattr(backend, "aclose", None)
            if callable(aclose):
                await aclose()
            close = getattr(backend, "close", None)
            if callable(close):
                close()

    async def _run(self, call: Call, fn: Callable[[], Awaitable[T]], request: Any = None) -> T:
        return (await self._rt.acall(call, fn, request=request))[0]

    async def _thread(self, call: Call, fn: Callable[[], T], request: Any = None) -> T:
        return await self._run(call, partial(asyncio.to_thread, fn), request)

    def _store(self) -> tuple[str, Any]:
        return self._rt.backend(Capability.STORAGE)

    async def _by_protocol(
        self, call: Call, backend: Any, sync_name: str, *args: Any, request: Any = None
    ) -> Any:
        """Await the backend's ``a<name>`` when it has the async protocol, else thread it."""
        if self._rt.has_async(call.backend, call.capability, backend):
            method = getattr(backend, "a" + sync_name)
            return await self._run(call, lambda: method(*args), request)
        return await self._thread(call, partial(getattr(backend, sync_name), *args), request)

    # --- chat --------------------------------------------------------------------------------

    async def _history(
        self, dialogue: str | None, assistant: str | None
    ) -> tuple[str | None, list[Message]]:
        """See :meth:`modelport.Hub._history`."""
        if dialogue is None:
            return assistant, []
        window = self.assistant(assistant).history
        loaded = await self.dialogue(dialogue, last=window.max_messages)
        assistant = _dialogue_assistant(self.settings, assistant, loaded.assistant)
        own = self.assistant(assistant).history
        if _wider(own, window):
            loaded = await self.dialogue(dialogue, last=own.max_messages)
        return assistant, _window(loaded.messages, own)

    async def _turn(
        self,
        text: str | Message,
        dialogue: str | None,
        assistant: str | None,
        images: Iterable[ImageSource],
        options: ChatOptions | None,
        model: str | None,
    ) -> tuple[_Turn, str, Any]:
        assistant, history = await self._history(dialogue, assistant)
        name, chat = self._rt.backend(Capability.CHAT, self.assistant(assistant).backend)
        self._store()  # a store that cannot be used fails now, before the paid call
        if self._rt.usage.budgeted(assistant):  # and a spent budget too
            await asyncio.to_thread(self._rt.usage.check_budget, self._rt, assistant)
        images = list(images)
        prepared = await asyncio.to_thread(_images, self.settings, chat, images) if images else []
        turn = _prepare_turn(
            self.settings,
            history,
            text,
            assistant=assistant,
            dialogue_id=dialogue,
            images=prepared,
            options=options,
            model=model,
        )
        return turn, name, chat

    async def ask(
        self,
        text: str | Message,
        *,
        dialogue: str | None = None,
        assistant: str | None = None,
        images: Iterable[ImageSource] = (),
        options: ChatOptions | None = None,
        model: str | None = None,
    ) -> Answer:
        """See :meth:`modelport.Hub.ask`."""
        turn, name, chat = await self._turn(text, dialogue, assistant, images, options, model)
        chain = _Chain(self._rt, turn, self._chat_call(turn, "complete", name), (name, chat))
        attempt, reply = await chain.arun(
            lambda a: self._by_protocol(a.call, a.chat, "complete", a.request, request=a.request)
        )
        return await self._finish(turn, reply, attempt.name)

    async def _finish(self, turn: _Turn, reply: Reply, backend: str | None = None) -> Answer:
        sentiment = None
        if self._rt.available(Capability.SENTIMENT):
            try:
                sentiment = await self.analyze(reply.text)
            except Exception as exc:  # a plugin's own error too: the reply is paid for
                _quietly("reply_sentiment_failed", exc)
        dialogue_id = await asyncio.to_thread(_store_turn, self._rt, turn, reply, sentiment)
        return Answer(
            reply, dialogue_id, sentiment=sentiment, assistant=turn.assistant, backend=backend
        )

    async def stream(
        self,
        text: str | Message,
        *,
        dialogue: str | None = None,
        assistant: str | None = None,
        images: Iterable[ImageSource] = (),
        options: ChatOptions | None = None,
        model: str | None = None,
    ) -> AsyncReplyStream:
        """See :meth:`modelport.Hub.stream`; iterate the result with ``async for``."""
        turn, name, chat = await self._turn(text, dialogue, assistant, images, options, model)
        return AsyncReplyStream(self, turn, name, chat)

    async def models(self, *, backend: str | None = None) -> tuple[ModelInfo, ...]:
        """See :meth:`modelport.Hub.models` (which also warns of shutdown dates)."""
        name, chat = self._rt.backend(Capability.CHAT, backend)
        call = Call(Capability.CHAT, name, "models")
        found = tuple(await self._by_protocol(call, chat, "models"))
        self._shutdown_notices(name, chat, found)
        return found

    # --- vision and sentiment ----------------------------------------------------------------

    async def describe_image(
        self,
        *images: ImageSource,
        prompt: str | None = None,
        schema: Mapping[str, Any] | None = None,
        detail: str = "auto",
        model: str | None = None,
    ) -> Reply:
        """See :meth:`modelport.Hub.describe_image`."""
        name, vision = self._rt.backend(Capability.VISION)
        prepared = await asyncio.to_thread(_images, self.settings, vision, images)
        request = _vision_request(prepared, prompt, schema, detail, model)
        call = Call(Capability.VISION, name, "describe", model=model, tokens=1000 * len(images))
        reply: Reply = await self._by_protocol(call, vision, "describe", request, request=request)
        await asyncio.to_thread(self._rt.usage.settle, self._rt, reply)
        return reply

    async def analyze(self, text: str) -> Sentiment:
        """See :meth:`modelport.Hub.analyze`."""
        name, analyzer = self._rt.backend(Capability.SENTIMENT)
        call = Call(Capability.SENTIMENT, name, "analyze")
        result: Sentiment = await self._thread(call, partial(analyzer.analyze, text), text)
        return result

    # --- dialogues ---------------------------------------------------------------------------

    async def dialogues(
        self,
        *,
        assistant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        """See :meth:`modelport.Hub.dialogues`."""
        name, store = self._store()
        return await self._thread(
            Call(Capability.STORAGE, name, "list_dialogues"),
            partial(
                store.list_dialogues,
                assistant=assistant,
                since=since,
                until=until,
                limit=limit,
                offset=offset,
            ),
        )

    async def dialogue(self, dialogue_id: str, *, last: int | None = None) -> Dialogue:
        """See :meth:`modelport.Hub.dialogue`."""
        name, store = self._store()
        return await self._thread(
            Call(Capability.STORAGE, name, "load_dialogue", dialogue_id=dialogue_id),
            _loader(store, dialogue_id, last),
        )

    async def delete_dialogue(self, dialogue_id: str) -> None:
        name, store = self._store()
        await self._thread(
            Call(Capability.STORAGE, name, "delete_dialogue", dialogue_id=dialogue_id),
            partial(store.delete_dialogue, dialogue_id),
        )

    async def _all_dialogues(self, assistant: str | None, since: datetime | None) -> list[Dialogue]:
        found: list[Dialogue] = []
        offset: int | None = 0
        while offset is not None:
            page = await self.dialogues(assistant=assistant, since=since, limit=100, offset=offset)
            for info in page.items:
                try:
                    found.append(await self.dialogue(info.id))
                except (CorruptRecordError, RecordNotFoundError) as exc:  # damaged, or deleted
                    _quietly("dialogue_skipped", exc)
            offset = page.next_offset
        return found

    # --- usage -------------------------------------------------------------------------------

    async def usage(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[UsageRecord, ...]:
        """See :meth:`modelport.Hub.usage`."""
        return await asyncio.to_thread(self._rt.usage.list_usage, self._rt, since, until)

    async def usage_report(
        self, *, since: datetime | None = None, until: datetime | None = None, by: str = "day"
    ) -> UsageReport:
        """See :meth:`modelport.Hub.usage_report`."""
        records = await self.usage(since=since, until=until)
        return UsageReport.of(records, by=by, since=since, until=until)

    # --- training ----------------------------------------------------------------------------

    async def train(
        self,
        dataset: DatasetSource,
        *,
        base_model: str | None = None,
        suffix: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        validation: DatasetSource | None = None,
        description: str = "",
        on_progress: Callable[[UploadProgress], None] | None = None,
    ) -> TrainingJob:
        """See :meth:`modelport.Hub.train`. ``on_progress`` is called from a worker thread
        when the trainer is sync only."""
        model = _base_model(self.settings, base_model)
        data = await asyncio.to_thread(self._checked, dataset, model, hyperparameters)
        check = (
            await asyncio.to_thread(self._checked, validation, model, hyperparameters)
            if validation is not None
            else None
        )
        name, trainer = self._rt.backend(Capability.TRAINING)
        upload = Call(Capability.TRAINING, name, "upload", model=model, idempotent=False)
        uploads = _Uploads(on_progress)
        native = self._rt.has_async(name, Capability.TRAINING, trainer)

        async def send(file: str, part: TrainingDataset) -> str:
            if native:
                kwargs = uploads.begin(file, trainer.aupload)
                found = await self._run(upload, lambda: trainer.aupload(part, **kwargs), part)
            else:
                kwargs = uploads.begin(file, trainer.upload)
                found = await self._thread(upload, partial(trainer.upload, part, **kwargs), part)
            return uploads.done(file, found)

        file_id = await send("training", data)
        try:
            check_id = await send("validation", check) if check else None
            spec = JobSpec(model, file_id, check_id, suffix, dict(hyperparameters or {}))
            start = attrs.evolve(upload, operation="start")
            uploads.starting = True
            job: TrainingJob = await self._by_protocol(start, trainer, "start", spec, request=spec)
        except ModelportError as exc:
            deleted: list[str] = []
            delete = Call(Capability.TRAINING, name, "delete_file")
            for orphan in uploads.to_delete(exc, trainer, "adelete_file", "delete_file"):
                try:
                    if native and callable(getattr(trainer, "adelete_file", None)):
                        await self._run(delete, partial(trainer.adelete_file, orphan))
                    else:
                        await self._thread(delete, partial(trainer.delete_file, orphan))
                except Exception as error:  # never hide why the job did not start
                    get_logger().warning("upload_not_deleted", file_id=orphan, error=str(error))
                else:
                    deleted.append(orphan)
            uploads.explain(exc, deleted)
            raise
        await self._save_record(_new_record(job, name, model, data, description))
        return job

    async def check_dataset(
        self,
        dataset: DatasetSource,
        *,
        base_model: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
    ) -> DatasetReport:
        """See :meth:`modelport.Hub.check_dataset`."""
        data = await asyncio.to_thread(_dataset, self.settings, dataset)
        return await asyncio.to_thread(self._report, data, base_model, hyperparameters)

    async def dynamic_train(
        self,
        *,
        assistant: str | None = None,
        since: datetime | None = None,
        labels: Collection[SentimentLabel | str] | None = None,
        repeat: bool = False,
        **train_kwargs: Any,
    ) -> TrainingJob:
        """See :meth:`modelport.Hub.dynamic_train`."""
        dataset = await self.dialogue_dataset(
            assistant=assistant, since=since, labels=labels, repeat=repeat
        )
        train_kwargs.setdefault("base_model", self.assistant(assistant).model)
        return await self.train(dataset, **train_kwargs)

    async def dialogue_dataset(
        self,
        *,
        assistant: str | None = None,
        since: datetime | None = None,
        labels: Collection[SentimentLabel | str] | None = None,
        repeat: bool = False,
    ) -> TrainingDataset:
        """See :meth:`modelport.Hub.dialogue_dataset`."""
        exclude = set() if repeat else _learnt(await self.jobs())
        return dataset_from_dialogues(
            await self._all_dialogues(assistant, since),
            instructions=lambda name: self.assistant(name).instructions,
            labels=labels,
            exclude=exclude,
        )

    async def _save_record(self, record: JobRecord) -> None:
        """See :meth:`modelport.Hub._save_record`."""
        if self._rt.available(Capability.STORAGE):
            name, store = self._store()
            try:
                await self._thread(
                    Call(Capability.STORAGE, name, "save_job"), partial(store.save_job, record)
                )
            except Exception as exc:
                _job_not_recorded(record, exc)

    async def _record(self, job_id: str) -> JobRecord | None:
        if not self._rt.available(Capability.STORAGE):
            return None
        name, store = self._store()
        try:
            record: JobRecord = await self._thread(
                Call(Capability.STORAGE, name, "load_job"), partial(store.load_job, job_id)
            )
        except RecordNotFoundError:
            return None
        return record

    async def _trainer_call(
        self, job_id: str, operation: str
    ) -> tuple[TrainingJob, JobRecord | None]:
        record = await self._record(job_id)
        name, trainer = self._rt.backend(Capability.TRAINING, record.backend if record else None)
        call = Call(Capability.TRAINING, name, operation)
        job: TrainingJob = await self._by_protocol(call, trainer, operation, job_id)
        return job, record

    async def job(self, job_id: str) -> TrainingJob:
        """See :meth:`modelport.Hub.job`."""
        job, record = await self._trainer_call(job_id, "get_job")
        if record is not None and record.status != job.status:
            await self._save_record(record.with_status(job))
        return job

    async def jobs(self) -> tuple[JobRecord, ...]:
        """See :meth:`modelport.Hub.jobs`."""
        name, store = self._store()
        return tuple(
            await self._thread(Call(Capability.STORAGE, name, "list_jobs"), store.list_jobs)
        )

    async def remote_jobs(self, *, limit: int = 20) -> tuple[TrainingJob, ...]:
        """See :meth:`modelport.Hub.remote_jobs`."""
        name, trainer = self._rt.backend(Capability.TRAINING)
        call = Call(Capability.TRAINING, name, "list_jobs")
        if self._rt.has_async(name, Capability.TRAINING, trainer):
            return tuple(await self._run(call, lambda: trainer.alist_jobs(limit=limit)))
        return tuple(await self._thread(call, partial(trainer.list_jobs, limit=limit)))

    async def cancel_job(self, job_id: str) -> TrainingJob:
        """See :meth:`modelport.Hub.cancel_job`."""
        job, record = await self._trainer_call(job_id, "cancel_job")
        if record is not None:
            await self._save_record(record.with_status(job))
        return job

    async def job_events(self, job_id: str) -> tuple[JobEvent, ...]:
        """See :meth:`modelport.Hub.job_events`."""
        record = await self._record(job_id)
        name, trainer = self._rt.backend(Capability.TRAINING, record.backend if record else None)
        call = Call(Capability.TRAINING, name, "job_events")
        return tuple(await self._by_protocol(call, trainer, "job_events", job_id))

    async def _events_quietly(self, job_id: str) -> tuple[JobEvent, ...]:
        try:
            return await self.job_events(job_id)
        except BackendError as exc:
            get_logger().warning("job_events_unavailable", job_id=job_id, error=str(exc))
            return ()

    async def wait_job(
        self,
        job_id: str,
        *,
        poll_s: float = 5.0,
        max_poll_s: float = 60.0,
        timeout_s: float | None = None,
        on_update: Callable[[TrainingJob], None] | None = None,
        on_event: Callable[[JobEvent], None] | None = None,
        on_poll: Callable[[TrainingJob, float], None] | None = None,
        max_outage_s: float | None = MAX_OUTAGE_S,
    ) -> TrainingJob:
        """See :meth:`modelport.Hub.wait_job`."""
        progress = _Progress(on_update, on_event)
        while True:
            try:
                job = await self.job(job_id)
            except BackendError as exc:
                if not exc.retryable:
                    raise
                delay = progress.failed(job_id, exc, poll_s, max_poll_s, timeout_s, max_outage_s)
                if on_poll is not None and progress.latest is not None:
                    on_poll(progress.latest, delay)
                await self._rt.asleep(delay)
                continue
            if on_event is not None:
                progress.events(await self._events_quietly(job_id))
            progress.job(job)
            if job.status.is_terminal:
                return job
            delay = progress.next_delay(job, poll_s, max_poll_s, timeout_s)
            if on_poll is not None:
                on_poll(job, delay)
            await self._rt.asleep(delay)


class AsyncReplyStream(AsyncIterator[StreamDelta]):
    """The deltas of a streamed reply, for ``async for``; then ``answer`` is set.

    See :class:`modelport.ReplyStream` for retries and fallbacks before the first delta.
    """

    def __init__(self, hub: AsyncHub, turn: _Turn, backend: str, chat: Any) -> None:
        self._hub, self._turn = hub, turn
        self._call = hub._chat_call(turn, "stream", backend)
        self._chain = _Chain(hub._rt, turn, self._call, (backend, chat))
        self._backend, self._request = backend, turn.request  # the serving ones, once open
        self._native = False  # whether the backend being read is awaited (else threaded)
        self._deltas: list[StreamDelta] = []
        self._source: Any = None
        self._started = time.perf_counter()
        self._attempts = 0
        self._finished = False  # completed, broken or closed: no more deltas, nothing stored
        self.answer: Answer | None = None

    async def _next(self, source: Any) -> Any:
        if self._native:
            return await anext(source, _END)
        return await asyncio.to_thread(next, source, _END)

    async def _open(self) -> Any:
        async def first(attempt: _Attempt) -> tuple[Any, Any]:
            chat, request = attempt.chat, attempt.request
            self._native = self._hub._rt.has_async(attempt.name, Capability.CHAT, chat)
            source = chat.astream(request) if self._native else iter(chat.stream(request))
            try:
                return source, await self._next(source)
            except BaseException:
                await self._close(source)
                raise

        attempt, ((source, head), self._attempts) = await self._chain.arun(
            lambda a: self._hub._rt.acall(a.call, partial(first, a), observe=False)
        )
        self._backend, self._request, self._call = attempt.name, attempt.request, attempt.call
        if head is not _END:
            self._deltas.append(head)
        return source

    async def __anext__(self) -> StreamDelta:
        if self._finished:
            raise StopAsyncIteration
        if self._source is None:
            self._source = await self._open()
            if self._deltas:
                return self._deltas[0]
        try:
            delta = await self._next(self._source)
        except Exception as exc:
            self._finished = True
            self._hub._rt.failed_after_start(self._call, exc, self._attempts)
            raise
        if delta is _END:
            self._finished = True
            reply = _assemble(self._deltas, self._request.model)
            self._hub._rt.succeeded(self._call, self._request, reply, self._started, self._attempts)
            self.answer = await self._hub._finish(self._turn, reply, self._backend)
            raise StopAsyncIteration
        self._deltas.append(delta)
        result: StreamDelta = delta
        return result

    async def _close(self, source: Any) -> None:
        aclose = getattr(source, "aclose", None)
        if callable(aclose):
            await aclose()
        else:
            _close(source)

    async def aclose(self) -> None:
        """Stop early; nothing is stored."""
        self._finished = True
        if self._source is not None:
            await self._close(self._source)

    @property
    def text(self) -> str:
        return "".join(d.text for d in self._deltas)
