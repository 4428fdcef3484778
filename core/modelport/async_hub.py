"""The asyncio twin of :class:`modelport.Hub`: the same methods, awaited.

Both hubs drive the same operations (``modelport._operations``): backends that implement the
optional ``Async*`` protocols are awaited directly; sync-only backends, stores and sentiment
analyzers run in worker threads, so the event loop never blocks.
"""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import datetime
from typing import Any, TypeVar, cast

from ._operations import MAX_OUTAGE_S, DatasetSource, StreamState, _Chain, _Turn
from .backends import AsyncClosable, Closable, implements
from .flows import Flow, adrive, adrive_iter
from .hub import _HubBase
from .images import ImageSource
from .training import DatasetReport
from .types import (
    Answer,
    ChatOptions,
    Dialogue,
    JobEvent,
    JobRecord,
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

R = TypeVar("R")


class AsyncHub(_HubBase):
    """The asyncio hub. Use ``async with``, or await :meth:`aclose`.

    Takes the same arguments as :class:`modelport.Hub` (``asleep`` replaces ``sleep`` for
    retries and the rate limiter). A backend that implements the optional ``Async*`` protocol
    is awaited; sync-only backends, stores, sentiment analyzers and other blocking work run in
    worker threads, so the event loop never blocks.
    """

    async def __aenter__(self) -> AsyncHub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every backend that was opened (``aclose()`` or ``close()``), and the
        connections of shared limiters."""
        for backend in self._rt.closables():
            if implements(backend, AsyncClosable):
                await backend.aclose()
            if implements(backend, Closable):
                backend.close()

    async def _do(self, flow: Flow[R]) -> R:
        return await adrive(flow, sleep=self._rt.asleep)

    # --- chat --------------------------------------------------------------------------------

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
        return await self._do(
            self._ops.ask(
                text,
                dialogue=dialogue,
                assistant=assistant,
                images=images,
                options=options,
                model=model,
            )
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
        turn = self._ops.turn(
            text,
            dialogue=dialogue,
            assistant=assistant,
            images=images,
            options=options,
            model=model,
            operation="stream",
        )
        return AsyncReplyStream(self, *(await self._do(turn)))

    async def models(self, *, backend: str | None = None) -> tuple[ModelInfo, ...]:
        """See :meth:`modelport.Hub.models` (which also warns of shutdown dates)."""
        return await self._do(self._ops.models(backend))

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
        return await self._do(
            self._ops.describe_image(
                images, prompt=prompt, schema=schema, detail=detail, model=model
            )
        )

    async def analyze(self, text: str) -> Sentiment:
        """See :meth:`modelport.Hub.analyze`."""
        return await self._do(self._ops.analyze(text))

    async def analyze_many(self, texts: Sequence[str]) -> list[Sentiment]:
        """See :meth:`modelport.Hub.analyze_many`."""
        return await self._do(self._ops.analyze_many(texts))

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
        return await self._do(
            self._ops.dialogues(
                assistant=assistant, since=since, until=until, limit=limit, offset=offset
            )
        )

    async def dialogue(self, dialogue_id: str, *, last: int | None = None) -> Dialogue:
        """See :meth:`modelport.Hub.dialogue`."""
        return await self._do(self._ops.dialogue(dialogue_id, last=last))

    async def delete_dialogue(self, dialogue_id: str) -> None:
        await self._do(self._ops.delete_dialogue(dialogue_id))

    def _all_dialogues(
        self, assistant: str | None, since: datetime | None
    ) -> AsyncIterator[Dialogue]:
        return adrive_iter(self._ops.all_dialogues(assistant, since), sleep=self._rt.asleep)

    # --- usage -------------------------------------------------------------------------------

    async def usage(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[UsageRecord, ...]:
        """See :meth:`modelport.Hub.usage`."""
        return await self._do(self._ops.usage(since=since, until=until))

    async def usage_report(
        self, *, since: datetime | None = None, until: datetime | None = None, by: str = "day"
    ) -> UsageReport:
        """See :meth:`modelport.Hub.usage_report`."""
        return await self._do(self._ops.usage_report(since=since, until=until, by=by))

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
        backend: str | None = None,
    ) -> TrainingJob:
        """See :meth:`modelport.Hub.train`. ``on_progress`` is called from a worker thread
        when the trainer is sync only."""
        return await self._do(
            self._ops.train(
                dataset,
                base_model=base_model,
                suffix=suffix,
                hyperparameters=hyperparameters,
                validation=validation,
                description=description,
                on_progress=on_progress,
                backend=backend,
            )
        )

    async def training_base_model(
        self,
        base_model: str | None = None,
        *,
        backend: str | None = None,
        assistant: str | None = None,
    ) -> str | None:
        """See :meth:`modelport.Hub.training_base_model`."""
        return await self._do(
            self._ops.training_base_model(base_model, backend=backend, assistant=assistant)
        )

    async def check_dataset(
        self,
        dataset: DatasetSource,
        *,
        base_model: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        backend: str | None = None,
    ) -> DatasetReport:
        """See :meth:`modelport.Hub.check_dataset`."""
        return await self._do(
            self._ops.check_dataset(
                dataset, base_model=base_model, hyperparameters=hyperparameters, backend=backend
            )
        )

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
        return await self._do(
            self._ops.dynamic_train(
                assistant=assistant,
                since=since,
                labels=labels,
                repeat=repeat,
                train_kwargs=train_kwargs,
            )
        )

    async def dialogue_dataset(
        self,
        *,
        assistant: str | None = None,
        since: datetime | None = None,
        labels: Collection[SentimentLabel | str] | None = None,
        repeat: bool = False,
        backend: str | None = None,
    ) -> TrainingDataset:
        """See :meth:`modelport.Hub.dialogue_dataset`."""
        return await self._do(
            self._ops.dialogue_dataset(
                assistant=assistant, since=since, labels=labels, repeat=repeat, backend=backend
            )
        )

    async def job(self, job_id: str) -> TrainingJob:
        """See :meth:`modelport.Hub.job`."""
        return await self._do(self._ops.job(job_id))

    async def jobs(self) -> tuple[JobRecord, ...]:
        """See :meth:`modelport.Hub.jobs`."""
        return await self._do(self._ops.jobs())

    async def job_record(self, job_id: str) -> JobRecord | None:
        """See :meth:`modelport.Hub.job_record`."""
        return await self._do(self._ops.record(job_id))

    async def remote_jobs(self, *, limit: int = 20) -> tuple[TrainingJob, ...]:
        """See :meth:`modelport.Hub.remote_jobs`."""
        return await self._do(self._ops.remote_jobs(limit=limit))

    async def cancel_job(self, job_id: str) -> TrainingJob:
        """See :meth:`modelport.Hub.cancel_job`."""
        return await self._do(self._ops.cancel_job(job_id))

    async def job_events(self, job_id: str) -> tuple[JobEvent, ...]:
        """See :meth:`modelport.Hub.job_events`."""
        return await self._do(self._ops.job_events(job_id))

    async def serving_notes(self, job: TrainingJob) -> tuple[str, ...]:
        """See :meth:`modelport.Hub.serving_notes`."""
        return await self._do(self._ops.serving_notes(job))

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
        return await self._do(
            self._ops.wait_job(
                job_id,
                poll_s=poll_s,
                max_poll_s=max_poll_s,
                timeout_s=timeout_s,
                on_update=on_update,
                on_event=on_event,
                on_poll=on_poll,
                max_outage_s=max_outage_s,
            )
        )


class AsyncReplyStream(AsyncIterator[StreamDelta]):
    """The deltas of a streamed reply, for ``async for``; then ``answer`` is set.

    See :class:`modelport.ReplyStream` for retries and fallbacks before the first delta.
    """

    def __init__(self, hub: AsyncHub, turn: _Turn, chain: _Chain) -> None:
        self._state = StreamState()
        flow = hub._ops.stream(turn, chain, self._state)
        deltas = adrive_iter(flow, sleep=hub._rt.asleep)
        self._deltas = cast("AsyncGenerator[StreamDelta, None]", deltas)  # closable

    async def __anext__(self) -> StreamDelta:
        return await anext(self._deltas)

    @property
    def answer(self) -> Answer | None:
        """The stored answer, once the last delta was read (``None`` until then)."""
        return self._state.answer

    async def aclose(self) -> None:
        """Stop early; nothing is stored."""
        await self._deltas.aclose()

    @property
    def text(self) -> str:
        return "".join(d.text for d in self._state.deltas)
