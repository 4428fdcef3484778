"""Scripted fake backends for every capability, and an in-memory store."""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, ClassVar

import attrs

from ..errors import InvalidRequestError, NotFoundError, RecordNotFoundError, UnsupportedError
from ..hookspecs import hookimpl
from ..registry import BackendRegistry
from ..types import (
    ChatRequest,
    Dialogue,
    DialogueInfo,
    Evidence,
    JobEvent,
    JobRecord,
    JobSpec,
    JobStatus,
    Message,
    ModelInfo,
    Page,
    Reply,
    Sentiment,
    SentimentLabel,
    StreamDelta,
    TrainingDataset,
    TrainingJob,
    Usage,
    UsageRecord,
    VisionRequest,
    utcnow,
)

__all__ = [
    "FakeBackends",
    "FakeChat",
    "FakeSentiment",
    "FakeTrainer",
    "FakeVision",
    "MemoryStore",
]

#: A scripted item: a reply (text or :class:`Reply`), an exception to raise, or for streams a
#: list of deltas (text, :class:`StreamDelta`, or an exception raised mid-stream).
Scripted = Any


class _Script:
    """A thread-safe queue of scripted results and a record of calls."""

    def __init__(self, items: Iterable[Scripted] = ()) -> None:
        self._items: deque[Scripted] = deque(items)
        self._lock = threading.Lock()
        self.calls: list[Any] = []

    def script(self, *items: Scripted) -> None:
        """Queue results; each call takes the next one (an exception is raised)."""
        with self._lock:
            self._items.extend(items)

    def _take(self, call: Any) -> tuple[bool, Scripted]:
        with self._lock:
            self.calls.append(call)
            if self._items:
                return True, self._items.popleft()
            return False, None

    @property
    def pending(self) -> int:
        """How many scripted results are left."""
        return len(self._items)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


class FakeChat(_Script):
    """A chat backend that returns what it was scripted to, else echoes the last user message.

    ``calls`` records every :class:`ChatRequest`, sync and async alike.
    """

    def __init__(
        self, replies: Iterable[Scripted] = (), *, model: str = "fake-model",
        models: Sequence[str] = ("fake-model", "fake-model-large"),
    ) -> None:  # fmt: skip
        super().__init__(replies)
        self.model = model
        self.model_ids = tuple(models)

    def _reply(self, request: ChatRequest, item: Scripted, scripted: bool) -> Reply:
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Reply):
            return item
        if isinstance(item, list):
            item = "".join(d.text if isinstance(d, StreamDelta) else str(d) for d in item)
        text = item if scripted else f"echo: {request.messages[-1].text}"
        prompt = sum(_tokens(m.text) for m in request.messages)
        return Reply(
            text=str(text),
            model=request.model or self.model,
            usage=Usage(prompt, _tokens(str(text))),
            finish_reason="stop",
            request_id=f"req-{uuid.uuid4().hex[:8]}",
        )

    def complete(self, request: ChatRequest) -> Reply:
        scripted, item = self._take(request)
        return self._reply(request, item, scripted)

    def _deltas(self, request: ChatRequest) -> Iterator[StreamDelta | BaseException]:
        scripted, item = self._take(request)
        if isinstance(item, BaseException):
            raise item
        if not isinstance(item, list):
            reply = self._reply(request, item, scripted)
            words = reply.text.split(" ")
            item = [w if i == 0 else f" {w}" for i, w in enumerate(words)]
            item.append(StreamDelta(finish_reason="stop", usage=reply.usage))
        model = request.model or self.model
        for piece in item:
            if isinstance(piece, BaseException):
                yield piece
            elif isinstance(piece, StreamDelta):
                yield attrs.evolve(piece, model=piece.model or model)
            else:
                yield StreamDelta(text=str(piece), model=model)

    def stream(self, request: ChatRequest) -> Iterator[StreamDelta]:
        for piece in self._deltas(request):
            if isinstance(piece, BaseException):
                raise piece
            yield piece

    def models(self) -> Sequence[ModelInfo]:
        self._take("models")
        return [ModelInfo(id=m, backend="fake-chat", owned_by="modelport") for m in self.model_ids]

    async def acomplete(self, request: ChatRequest) -> Reply:
        await asyncio.sleep(0)
        return self.complete(request)

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        for piece in self._deltas(request):
            await asyncio.sleep(0)
            if isinstance(piece, BaseException):
                raise piece
            yield piece

    async def amodels(self) -> Sequence[ModelInfo]:
        return self.models()


class FakeVision(_Script):
    """A vision backend: scripted replies, else a description naming the images' sizes.

    Script a dict (or list) to return it as ``reply.data`` for a structured request.
    """

    def __init__(self, replies: Iterable[Scripted] = (), *, model: str = "fake-vision") -> None:
        super().__init__(replies)
        self.model = model

    def describe(self, request: VisionRequest) -> Reply:
        scripted, item = self._take(request)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Reply):
            return item
        model = request.model or self.model
        if isinstance(item, (dict, list)):
            import json

            return Reply(json.dumps(item), model, finish_reason="stop", data=item)
        if not scripted:
            sizes = ", ".join(
                f"{len(i.data)} bytes of {i.media_type}" if i.data is not None else str(i.url)
                for i in request.images
            )
            item = f"{len(request.images)} image(s): {sizes}"
        return Reply(
            str(item), model, usage=Usage(85 * len(request.images), 10), finish_reason="stop"
        )

    async def adescribe(self, request: VisionRequest) -> Reply:
        await asyncio.sleep(0)
        return self.describe(request)


class FakeSentiment(_Script):
    """A sentiment analyzer: scripted results (a :class:`Sentiment` or a label), else a tiny
    rule: "good", "great", "thank" and "love" count positive; "bad", "awful", "hate" negative."""

    POSITIVE = ("good", "great", "thank", "love")
    NEGATIVE = ("bad", "awful", "hate", "wrong")

    def analyze(self, text: str) -> Sentiment:
        scripted, item = self._take(text)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Sentiment):
            return item
        if scripted:
            label = SentimentLabel(item)
            score = {"positive": 0.8, "negative": -0.8}.get(label.value, 0.0)
            return Sentiment(label, score, analyzer="fake-sentiment")
        lower = text.lower()
        pos = [w for w in self.POSITIVE if w in lower]
        neg = [w for w in self.NEGATIVE if w in lower]
        score = max(-1.0, min(1.0, 0.5 * (len(pos) - len(neg))))
        if pos and neg:
            label = SentimentLabel.MIXED
        else:
            label = (
                SentimentLabel.POSITIVE
                if score > 0
                else SentimentLabel.NEGATIVE
                if score < 0
                else SentimentLabel.NEUTRAL
            )
        evidence = [Evidence(w, 0.5) for w in pos] + [Evidence(w, -0.5) for w in neg]
        return Sentiment(label, score, evidence, analyzer="fake-sentiment")


class MemoryStore:
    """A thread-safe, in-memory store of dialogues, job records and usage records (nothing
    persists). ``usage_records`` lists what ``record_usage`` kept, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dialogues: dict[str, Dialogue] = {}
        self._updated: dict[str, datetime] = {}
        self._jobs: dict[str, JobRecord] = {}
        self.usage_records: list[UsageRecord] = []

    def create_dialogue(
        self, *, assistant: str | None = None, title: str | None = None
    ) -> DialogueInfo:
        now = utcnow()
        dialogue = Dialogue(
            id=uuid.uuid4().hex[:12], created_at=now, assistant=assistant, title=title
        )
        with self._lock:
            self._dialogues[dialogue.id] = dialogue
            self._updated[dialogue.id] = now
        return self._info(dialogue)

    def _info(self, d: Dialogue) -> DialogueInfo:
        return DialogueInfo(
            id=d.id,
            created_at=d.created_at,
            updated_at=self._updated[d.id],
            assistant=d.assistant,
            title=d.title,
            message_count=len(d.messages),
        )

    def _get(self, dialogue_id: str) -> Dialogue:
        try:
            return self._dialogues[dialogue_id]
        except KeyError:
            raise RecordNotFoundError(
                f"no dialogue {dialogue_id!r}", hint="list them with: modelport dialogues list"
            ) from None

    def append(self, dialogue_id: str, *messages: Message) -> None:
        if not messages:
            return
        with self._lock:
            dialogue = self._get(dialogue_id)
            self._dialogues[dialogue_id] = attrs.evolve(
                dialogue, messages=(*dialogue.messages, *messages)
            )
            self._updated[dialogue_id] = messages[-1].created_at or utcnow()

    def load_dialogue(self, dialogue_id: str, *, last: int | None = None) -> Dialogue:
        with self._lock:
            dialogue = self._get(dialogue_id)
        if last is None:
            return dialogue
        return attrs.evolve(dialogue, messages=dialogue.messages[-last:] if last > 0 else ())

    def list_dialogues(
        self,
        *,
        assistant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        with self._lock:
            infos = [self._info(d) for d in self._dialogues.values()]
        infos = [
            i
            for i in infos
            if (assistant is None or i.assistant == assistant)
            and (since is None or i.updated_at >= since)
            and (until is None or i.updated_at < until)
        ]
        infos.sort(key=lambda i: i.updated_at, reverse=True)
        return Page(infos[offset : offset + limit], offset=offset, total=len(infos))

    def delete_dialogue(self, dialogue_id: str) -> None:
        with self._lock:
            self._get(dialogue_id)
            del self._dialogues[dialogue_id]
            del self._updated[dialogue_id]

    def save_job(self, record: JobRecord) -> None:
        with self._lock:
            self._jobs[record.job_id] = record

    def load_job(self, job_id: str) -> JobRecord:
        with self._lock:
            try:
                return self._jobs[job_id]
            except KeyError:
                raise RecordNotFoundError(f"no job record {job_id!r}") from None

    def list_jobs(self) -> Sequence[JobRecord]:
        with self._lock:
            return list(self._jobs.values())

    def record_usage(self, record: UsageRecord) -> None:
        with self._lock:
            self.usage_records.append(record)

    def list_usage(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> Sequence[UsageRecord]:
        with self._lock:
            found = [
                r
                for r in self.usage_records
                if (since is None or r.at >= since) and (until is None or r.at < until)
            ]
        return sorted(found, key=lambda r: r.at)


class _FakeJobs(_Script):
    """What the fake trainers share (see :class:`FakeTrainer`)."""

    #: Real trainers commonly want 10 examples or more; one is enough here.
    min_examples = 1
    #: The backend name the jobs report.
    backend = "fake-training"

    def __init__(
        self,
        replies: Iterable[Scripted] = (),
        *,
        progression: Sequence[JobStatus | str] = ("queued", "running", "succeeded"),
    ) -> None:
        super().__init__(replies)
        self.progression = tuple(JobStatus(s) for s in progression)
        self.uploads: dict[str, TrainingDataset] = {}
        self._jobs: dict[str, tuple[TrainingJob, int]] = {}
        self._ids = itertools.count(1)

    def _raise_scripted(self, call: Any) -> None:
        _, item = self._take(call)
        if isinstance(item, BaseException):
            raise item

    def upload(
        self,
        dataset: TrainingDataset,
        *,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> str:
        if on_progress is not None:
            from ..training import dataset_to_jsonl

            size = len(dataset_to_jsonl(dataset).encode("utf-8"))
            on_progress(size // 2, size)
        self._raise_scripted(("upload", dataset))
        if on_progress is not None:
            on_progress(size, size)
        file_id = f"file-{next(self._ids)}"
        self.uploads[file_id] = dataset
        return file_id

    def delete_file(self, file_id: str) -> None:
        self._raise_scripted(("delete_file", file_id))
        if self.uploads.pop(file_id, None) is None:
            raise NotFoundError(f"no file {file_id}", backend="fake-training", status=404)

    def start(self, spec: JobSpec) -> TrainingJob:
        self._raise_scripted(("start", spec))
        if spec.training_file not in self.uploads:
            raise UnsupportedError(
                f"unknown training file {spec.training_file}", backend="fake-training"
            )
        job = TrainingJob(
            id=f"ftjob-{next(self._ids)}",
            backend=self.backend,
            base_model=spec.base_model,
            status=self.progression[0],
            created_at=utcnow(),
            training_file=spec.training_file,
        )
        self._jobs[job.id] = (job, 0)
        return job

    def _job(self, job_id: str) -> tuple[TrainingJob, int]:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFoundError(f"no job {job_id}", backend="fake-training", status=404) from None

    def get_job(self, job_id: str) -> TrainingJob:
        self._raise_scripted(("get_job", job_id))
        job, step = self._job(job_id)
        if not job.status.is_terminal and step + 1 < len(self.progression):
            step += 1
            status = self.progression[step]
            job = attrs.evolve(
                job,
                status=status,
                finished_at=utcnow() if status.is_terminal else None,
                fine_tuned_model=f"{job.base_model}:ft-{job.id}"
                if status is JobStatus.SUCCEEDED
                else None,
            )
            self._jobs[job_id] = (job, step)
        return self._reported(job, step)

    def _reported(self, job: TrainingJob, step: int) -> TrainingJob:
        return job

    def list_jobs(self, *, limit: int = 20) -> Sequence[TrainingJob]:
        self._raise_scripted(("list_jobs", limit))
        return [job for job, _ in reversed(self._jobs.values())][:limit]  # newest first

    def cancel_job(self, job_id: str) -> TrainingJob:
        """Cancel the job; a job that has finished raises ``InvalidRequestError``."""
        self._raise_scripted(("cancel_job", job_id))
        job, step = self._job(job_id)
        if job.status.is_terminal:
            raise InvalidRequestError(
                f"job {job_id} is already {job.status.value}; there is nothing to cancel",
                backend=self.backend,
                status=400,
            )
        job = attrs.evolve(job, status=JobStatus.CANCELLED, finished_at=utcnow())
        self._jobs[job_id] = (job, step)
        return job


class FakeTrainer(_FakeJobs):
    """A trainer whose jobs move through ``progression`` one step per ``get_job``.

    Script an exception to make the next call (upload, start, ...) raise it. ``uploads`` keeps
    every uploaded dataset (until ``delete_file`` deletes it). ``upload`` reports its progress
    in two steps, half and all of the dataset's JSONL bytes. A job that succeeded has a
    ``fine_tuned_model``; ``job_events`` gives one event per status reached.
    """

    def job_events(self, job_id: str) -> Sequence[JobEvent]:
        self._raise_scripted(("job_events", job_id))
        job, step = self._job(job_id)
        return [
            JobEvent(created_at=job.created_at or utcnow(), message=f"status: {s.value}")
            for s in self.progression[: step + 1]
        ]


@attrs.define
class FakeBackends:
    """A plugin that offers one fake backend per capability.

    Register it (``make_plugins(plugins=[fakes])``, or use :func:`make_test_hub`) and select
    the backends by name: ``fake-chat``, ``fake-vision``, ``fake-sentiment``, ``memory`` and
    ``fake-training``. Each attribute is the very object the hub will call, so a test can
    script it and inspect its ``calls``.
    """

    chat: FakeChat = attrs.field(factory=FakeChat)
    vision: FakeVision = attrs.field(factory=FakeVision)
    sentiment: FakeSentiment = attrs.field(factory=FakeSentiment)
    store: MemoryStore = attrs.field(factory=MemoryStore)
    trainer: FakeTrainer = attrs.field(factory=FakeTrainer)

    #: capability -> (backend name, attribute holding the fake)
    BACKENDS: ClassVar[dict[str, tuple[str, str]]] = {
        "chat": ("fake-chat", "chat"),
        "vision": ("fake-vision", "vision"),
        "sentiment": ("fake-sentiment", "sentiment"),
        "storage": ("memory", "store"),
        "training": ("fake-training", "trainer"),
    }

    @classmethod
    def capabilities(cls) -> dict[str, str]:
        """The ``[capabilities]`` config that selects these backends."""
        return {capability: name for capability, (name, _) in cls.BACKENDS.items()}

    @hookimpl
    def modelport_register_backends(self, registry: BackendRegistry) -> None:
        for capability, (name, attribute) in self.BACKENDS.items():
            registry.add(
                name,
                _constant(getattr(self, attribute)),
                capabilities=[capability],
                description=f"scripted fake {capability} backend (modelport.testing)",
            )


def _constant(backend: object) -> Callable[[Any], object]:
    return lambda _context: backend


class FakeStatusTrainer(_FakeJobs):
    """A :class:`FakeTrainer` for a backend without an events endpoint: no ``job_events``
    (the hub makes events from the status changes). Its jobs report their progress instead
    (``step`` of ``total_steps``, ``loss``, ``seconds_left``) while running, and a job that
    succeeded has a ``result``, an artifact path, and no ``fine_tuned_model``.

    Not among :class:`FakeBackends`: register it as a plugin of its own
    (``make_test_hub(plugins=[trainer])``), as the backend ``fake-status-training``.
    """

    backend = "fake-status-training"
    total_steps = 10

    def _reported(self, job: TrainingJob, step: int) -> TrainingJob:
        if job.status is JobStatus.RUNNING:
            done = min(step * 3, self.total_steps)
            return attrs.evolve(
                job,
                step=done,
                total_steps=self.total_steps,
                loss=round(2.0 / (1 + done), 4),
                seconds_left=float(self.total_steps - done),
            )
        if job.status is JobStatus.SUCCEEDED:
            return attrs.evolve(job, fine_tuned_model=None, result=f"/jobs/{job.id}/adapter")
        return job

    @hookimpl
    def modelport_register_backends(self, registry: BackendRegistry) -> None:
        registry.add(
            self.backend,
            _constant(self),
            capabilities=["training"],
            description="scripted fake trainer without events (modelport.testing)",
        )
