"""What a backend implements, one protocol per capability.

A plugin offers backends through the ``modelport_register_backends`` hook; the core builds the
chosen one with its factory and calls it through these protocols. Sync methods are required.
The ``Async*`` twins are optional: when a backend lacks them, the async hub runs the sync
method in a worker thread. Storage and sentiment are sync only (the async hub offloads them).

Backends raise :class:`modelport.errors.BackendError` subclasses (mapped from their vendor's
errors, chained with ``from``) and never retry by themselves: the core's policy does.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import attrs

from .config import Secret, read_secret
from .types import (
    ChatRequest,
    Dialogue,
    DialogueInfo,
    JobEvent,
    JobRecord,
    JobSpec,
    Message,
    ModelInfo,
    Page,
    Reply,
    Sentiment,
    StreamDelta,
    TrainingDataset,
    TrainingJob,
    UsageRecord,
    VisionRequest,
)

__all__ = [
    "AsyncChatBackend",
    "AsyncTrainer",
    "AsyncVisionBackend",
    "BackendContext",
    "ChatBackend",
    "SentimentAnalyzer",
    "Store",
    "Trainer",
    "UsageStore",
    "VisionBackend",
]


@attrs.frozen(repr=False)
class BackendContext:
    """What a backend factory receives.

    :ivar name: the backend's name (``[backends.<name>]``).
    :ivar settings: that section structured into the backend's settings class (or the raw
        mapping when the backend declared none).
    """

    name: str
    settings: Any
    env: Mapping[str, str] = attrs.field(factory=lambda: os.environ, eq=False)

    def secret(self, variable: str) -> Secret:
        """Read a secret (an API key) from the environment.

        :raises modelport.errors.MissingSecretError: saying which variable to set.
        """
        return read_secret(variable, backend=self.name, env=self.env)

    def __repr__(self) -> str:
        return f"BackendContext(name={self.name!r}, settings={self.settings!r})"


@runtime_checkable
class ChatBackend(Protocol):
    """Chat completion, streaming and model listing."""

    def complete(self, request: ChatRequest) -> Reply:
        """Answer ``request`` in one piece."""
        ...

    def stream(self, request: ChatRequest) -> Iterator[StreamDelta]:
        """Answer ``request`` piece by piece; the last delta carries the finish reason."""
        ...

    def models(self) -> Sequence[ModelInfo]:
        """The models this backend offers."""
        ...


@runtime_checkable
class AsyncChatBackend(Protocol):
    """The optional asyncio twin of :class:`ChatBackend`."""

    async def acomplete(self, request: ChatRequest) -> Reply: ...

    def astream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]: ...

    async def amodels(self) -> Sequence[ModelInfo]: ...


@runtime_checkable
class VisionBackend(Protocol):
    """Image description, as text or as JSON matching ``request.options.json_schema``."""

    def describe(self, request: VisionRequest) -> Reply: ...


@runtime_checkable
class AsyncVisionBackend(Protocol):
    """The optional asyncio twin of :class:`VisionBackend`."""

    async def adescribe(self, request: VisionRequest) -> Reply: ...


@runtime_checkable
class SentimentAnalyzer(Protocol):
    """The mood of a text."""

    def analyze(self, text: str) -> Sentiment: ...


@runtime_checkable
class Store(Protocol):
    """Dialogues and training-job records.

    Ids are chosen by the store. A missing id raises
    :class:`~modelport.errors.RecordNotFoundError`; any other failure to read or write is a
    :class:`~modelport.errors.StorageError` naming the file (or table) and what to do, never a
    bare ``OSError``. Reading never writes, so a read-only store can still be read.
    """

    def create_dialogue(
        self, *, assistant: str | None = None, title: str | None = None
    ) -> DialogueInfo: ...

    def append(self, dialogue_id: str, *messages: Message) -> None:
        """Append ``messages`` in one atomic write. The hub appends a whole turn (the question,
        then its reply) at once: after a crash the dialogue holds the whole turn or none of
        it. Safe to call from several threads (and, for stores that persist, processes) at
        once; the messages of concurrent appends never interleave, and each append lands
        after every append that finished before it started."""
        ...

    def load_dialogue(self, dialogue_id: str, *, last: int | None = None) -> Dialogue:
        """The dialogue with its messages, oldest first. With ``last``, only the last
        ``last`` messages (a turn may be cut): the hub asks for the recent history only, and a
        store should not read a long dialogue whole for that."""
        ...

    def list_dialogues(
        self,
        *,
        assistant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        """Dialogues, newest first, filtered by assistant and by last activity."""
        ...

    def delete_dialogue(self, dialogue_id: str) -> None: ...

    def save_job(self, record: JobRecord) -> None:
        """Create or replace the record of a training job."""
        ...

    def load_job(self, job_id: str) -> JobRecord: ...

    def list_jobs(self) -> Sequence[JobRecord]: ...


@runtime_checkable
class Trainer(Protocol):
    """Fine-tuning: upload a dataset, start, follow and cancel jobs.

    ``upload`` and ``start`` are not idempotent: the core never retries them blindly.

    Two optional extras, used when present (the async twins are ``aupload`` and
    ``adelete_file``):

    * ``upload(dataset, *, on_progress=None)``: a trainer whose ``upload`` takes an
      ``on_progress`` keyword is passed a callable to call as ``on_progress(sent, total)``
      (bytes) while the data goes out; the hub turns that into upload progress for its caller.
    * ``delete_file(file_id) -> None``: the hub deletes an uploaded file when the job it was
      uploaded for could not be started, so it is not left orphaned on the backend.
    """

    def upload(self, dataset: TrainingDataset) -> str:
        """Upload ``dataset``; return the backend's file id (see the class for progress)."""
        ...

    def start(self, spec: JobSpec) -> TrainingJob: ...

    def get_job(self, job_id: str) -> TrainingJob: ...

    def list_jobs(self, *, limit: int = 20) -> Sequence[TrainingJob]:
        """The backend's jobs, newest first, at most ``limit``."""
        ...

    def cancel_job(self, job_id: str) -> TrainingJob:
        """Cancel a job; the job comes back with status ``cancelled``."""
        ...

    def job_events(self, job_id: str) -> Sequence[JobEvent]:
        """The job's events, oldest first."""
        ...


@runtime_checkable
class AsyncTrainer(Protocol):
    """The optional asyncio twin of :class:`Trainer`."""

    async def aupload(self, dataset: TrainingDataset) -> str: ...

    async def astart(self, spec: JobSpec) -> TrainingJob: ...

    async def aget_job(self, job_id: str) -> TrainingJob: ...

    async def alist_jobs(self, *, limit: int = 20) -> Sequence[TrainingJob]: ...

    async def acancel_job(self, job_id: str) -> TrainingJob: ...

    async def ajob_events(self, job_id: str) -> Sequence[JobEvent]: ...


@runtime_checkable
class UsageStore(Protocol):
    """The optional part of a :class:`Store` that keeps usage records (``modelport usage``).

    A store without it still works; usage is then only seen by observers.
    """

    def record_usage(self, record: UsageRecord) -> None:
        """Keep one call's usage (an append: records are never changed)."""
        ...

    def list_usage(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> Sequence[UsageRecord]:
        """Usage records with ``since <= at < until``, oldest first."""
        ...
