"""The hub's operations, each written once as a flow (see :mod:`modelport.flows`).

:class:`Operations` holds the logic of every operation of :class:`modelport.Hub` and
:class:`modelport.AsyncHub` (ask, stream, models, describe, analyze, dialogues, usage, train,
jobs, waiting) as a generator that yields steps: a backend call is an
:class:`~modelport.flows.Invoke` of its sync and async forms, guarded by
:meth:`Runtime.guarded <modelport._runtime.Runtime.guarded>` (limiter, retries, observers);
blocking work (a store, image decoding, a budget check, reading a dataset) is a
:class:`~modelport.flows.Blocking` step, run in place by the sync hub and in a worker thread by
the async one; a wait is a :class:`~modelport.flows.Sleep`, done with the hub's ``sleep`` or
``asleep``. The two hubs only drive these flows, so they cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import attrs

from ._circuit import is_outage
from ._runtime import Bound, Call, Runtime, got
from ._text import invalid_unicode
from .backends import (
    AnalyzesMany,
    AsyncChatBackend,
    AsyncDeletesFiles,
    AsyncHasJobEvents,
    ChatBackend,
    DeletesFiles,
    HasAcceptsURLs,
    HasConfiguredModels,
    HasDefaultBaseModel,
    HasExampleTokenLimit,
    HasJobEvents,
    HasMediaTypes,
    HasMinExamples,
    HasServingNotes,
    HasTrainingPrice,
    HasTrainingWarnings,
    Store,
    TakesImageExamples,
    implements,
)
from .config import AssistantProfile, Fallback, HistoryWindow, Settings
from .errors import (
    AuthenticationError,
    BackendError,
    BackendNotFoundError,
    CircuitOpenError,
    ConfigError,
    CorruptRecordError,
    InvalidInputError,
    InvalidRequestError,
    ModelportError,
    RecordNotFoundError,
    ReplyNotStoredError,
    ResponseError,
    TrainingDataError,
    TransientError,
    WaitTimeoutError,
)
from .flows import Blocking, Enter, Flow, Invoke, ItemFlow, Sleep, Step, drive_iter
from .images import ImageSource, load_image, prepare_image
from .logs import get_logger, redact_exception
from .training import (
    MIN_EXAMPLES,
    DatasetReport,
    check_dataset,
    dataset_exchanges,
    dataset_from_dialogues,
    default_tokenizer,
    load_dataset,
)
from .types import (
    Answer,
    Capability,
    ChatOptions,
    ChatRequest,
    Dialogue,
    Image,
    ImagePart,
    JobEvent,
    JobRecord,
    JobSpec,
    JobStatus,
    Message,
    ModelInfo,
    Page,
    Part,
    Reply,
    Sentiment,
    SentimentLabel,
    StreamDelta,
    TextPart,
    TrainingDataset,
    TrainingJob,
    Turn,
    UploadProgress,
    Usage,
    UsageRecord,
    UsageReport,
    VisionRequest,
    status_event,
    utcnow,
)

__all__ = ["MAX_OUTAGE_S", "DatasetSource", "Operations", "StreamState"]

T = TypeVar("T")

DatasetSource = TrainingDataset | str | os.PathLike[str]


@attrs.frozen
class _Turn:
    """A prepared ``ask``: the request, and what to record once the reply is in."""

    request: ChatRequest
    user: Message
    assistant: str | None
    backend: str | None
    dialogue_id: str | None
    fallbacks: tuple[Fallback, ...] = ()


def _prepare_turn(
    settings: Settings,
    history: Iterable[Message],
    text: str | Message,
    *,
    assistant: str | None,
    dialogue_id: str | None,
    images: Iterable[Image],
    options: ChatOptions | None,
    model: str | None,
) -> _Turn:
    name, profile = settings.assistant(assistant)
    if isinstance(text, Message):
        user = attrs.evolve(text, created_at=text.created_at or utcnow())
    else:
        parts: list[Part] = [TextPart(text)]
        parts += [ImagePart(i) for i in images]
        user = Message("user", parts, created_at=utcnow())
    if not user.text.strip() and not user.images:
        raise InvalidInputError(
            "the question is empty", hint="ask something, or attach an image; nothing was sent"
        )
    if detail := invalid_unicode(user.text):  # text no backend or file can take
        raise InvalidInputError(
            f"the question is not valid Unicode: {detail}",
            hint="decode the text as UTF-8 before asking; nothing was sent",
        )
    messages = [Message("system", profile.instructions)] if profile.instructions else []
    messages += [m for m in history if m.role != "system" or not profile.instructions]
    messages.append(user)
    request = ChatRequest(
        messages, model=model or profile.model, options=profile.options.merged(options)
    )
    return _Turn(request, user, name, profile.backend, dialogue_id, profile.fallbacks)


@attrs.frozen
class _Attempt:
    """One chat backend (and model) a turn tries, with the call as it is guarded and logged."""

    index: int
    name: str
    chat: Bound[ChatBackend, AsyncChatBackend]
    request: ChatRequest
    call: Call


class _Chain:
    """The chat backends a turn may be served by, in order: the assistant's own, then its
    ``fallbacks``. It picks the next backend, skips those whose circuit is open, keeps the
    circuit breakers informed and logs; :meth:`walk` is the one flow that walks it, for
    ``ask`` and for streams alike (the caller only says how to make one attempt, under the
    retry policy).

    Every fallback's backend name is checked when the chain is made, before any paid call;
    a fallback's backend is built only when it is tried.
    """

    def __init__(
        self, rt: Runtime, turn: _Turn, call: Call, primary: Bound[ChatBackend, AsyncChatBackend]
    ) -> None:
        self._rt, self._turn, self._call = rt, turn, call
        self._chats: dict[str, Bound[ChatBackend, AsyncChatBackend]] = {primary.name: primary}
        self._options: list[tuple[str, ChatRequest]] = [(primary.name, turn.request)]
        for index, fallback in enumerate(turn.fallbacks):
            request = attrs.evolve(turn.request, model=fallback.model)
            self._options.append((self._known(index, fallback), request))
        self._error: Exception | None = None  # the last failure, behind a circuit-open error

    def _known(self, index: int, fallback: Fallback) -> str:
        try:
            return self._rt.spec(Capability.CHAT, fallback.backend).name
        except BackendNotFoundError as exc:
            known = ", ".join(sorted(exc.available)) or "none installed"
            raise ConfigError(
                f"no chat backend named {fallback.backend!r} to fall back to",
                path=self._rt.settings.path,
                key=f"assistants.{self._turn.assistant}.fallbacks[{index}]",
                hint=f"name one of: {known}",
            ) from None

    def walk(self, attempt_flow: Callable[[_Attempt], Flow[T]]) -> Flow[tuple[_Attempt, T]]:
        """Call backends in order until one answers: the attempt that served, and its result."""
        attempt = self.first()
        while True:
            try:
                result = yield from attempt_flow(attempt)
            except Exception as exc:
                if (following := self.after(attempt, exc)) is None:
                    raise
                attempt = following
            else:
                self.served(attempt)
                return attempt, result

    def first(self) -> _Attempt:
        """The first backend to call (raises :class:`CircuitOpenError` when none may be)."""
        return self._from(0)

    def _from(self, index: int) -> _Attempt:
        last = len(self._options) - 1
        while True:
            name, request = self._options[index]
            breaker = self._rt.circuit(name, request.model)
            wait = breaker.admit()
            if wait == 0:
                chat = self._chats.get(name)
                if chat is None:
                    chat = self._chats[name] = self._rt.chat(name)
                call = attrs.evolve(self._call, backend=name, model=request.model)
                return _Attempt(index, name, chat, request, call)
            error = CircuitOpenError(name, failures=breaker.failures, retry_after=wait)
            if index == last:
                raise error from self._error
            self._fell_back(index, error)
            index += 1

    def after(self, attempt: _Attempt, exc: Exception) -> _Attempt | None:
        """The backend to call after ``attempt`` failed with ``exc`` (its retry policy gave
        up), or ``None`` when ``exc`` is to be raised: it does not fall back (see
        :func:`modelport._circuit.is_outage`), or no backend is left."""
        breaker = self._rt.circuit(attempt.name, attempt.request.model)
        if not is_outage(exc):
            if isinstance(exc, InvalidRequestError):  # refused: the backend is up, answering
                breaker.succeeded()
            return None  # an unusable answer or an unsupported request: neutral
        breaker.failed()
        if attempt.index == len(self._options) - 1:
            return None
        self._error = exc
        self._fell_back(attempt.index, exc)
        return self._from(attempt.index + 1)

    def served(self, attempt: _Attempt) -> None:
        """``attempt`` answered (a stream: its first delta came)."""
        self._rt.circuit(attempt.name, attempt.request.model).succeeded()
        if attempt.index:
            get_logger().info(
                "chat_fallback_served",
                backend=attempt.name,
                model=attempt.request.model,
                assistant=self._turn.assistant,
                primary=self._options[0][0],
            )

    def _fell_back(self, index: int, error: Exception) -> None:
        name, request = self._options[index]
        following, then = self._options[index + 1]
        details: dict[str, Any] = {
            "backend": name,
            "model": request.model,
            "assistant": self._turn.assistant,
            "dialogue": self._turn.dialogue_id,
            "error": type(error).__name__,
            "status": getattr(error, "status", None),
            "message": str(error),
            "next": following,
            "next_model": then.model,
        }
        if isinstance(error, AuthenticationError):  # a bad key is not an outage: say so loudly
            details["hint"] = f"backend {name!r} rejected its credentials: check its API key"
            get_logger().error("chat_fallback", **details)
        else:
            get_logger().warning("chat_fallback", **details)


def _window(messages: Sequence[Message], window: HistoryWindow) -> list[Message]:
    """The latest messages that fit ``window``, never opening on a reply whose question was
    cut off."""
    start = len(messages)
    count = start if window.max_messages is None else min(start, window.max_messages)
    budget = window.max_tokens
    while count:
        if budget is not None:
            cost = len(messages[start - 1].text) // 4 + 1  # as ChatRequest.estimated_tokens
            if cost > budget:
                break
            budget -= cost
        start -= 1
        count -= 1
    while start < len(messages) and messages[start].role == "assistant":
        start += 1
    return list(messages[start:])


def _wider(own: HistoryWindow, loaded: HistoryWindow) -> bool:
    """Whether a window needs more messages than were loaded for another."""
    if loaded.max_messages is None:
        return False
    return own.max_messages is None or own.max_messages > loaded.max_messages


def _dialogue_assistant(settings: Settings, asked: str | None, recorded: str | None) -> str | None:
    """The assistant a turn uses: the one asked for, else the one the dialogue was recorded
    with (while it is still configured), else the default."""
    if asked is not None or recorded is None:
        return asked
    if recorded in settings.assistants:
        return recorded
    get_logger().warning(
        "dialogue_assistant_unknown",
        assistant=recorded,
        hint=f"the dialogue's assistant {recorded!r} is no longer configured; "
        "the default assistant answers",
    )
    return None


def _images(settings: Settings, backend: object, sources: Iterable[ImageSource]) -> list[Image]:
    """The images loaded and made fit for ``backend`` (its ``media_types``/``accepts_urls``)."""
    media_types = backend.media_types if implements(backend, HasMediaTypes) else None
    accepts_urls = bool(backend.accepts_urls) if implements(backend, HasAcceptsURLs) else True
    return [
        prepare_image(
            load_image(s), settings.images, media_types=media_types, accepts_urls=accepts_urls
        )
        for s in sources
    ]


def _vision_request(
    images: list[Image],
    prompt: str | None,
    schema: Mapping[str, Any] | None,
    detail: str,
    model: str | None,
) -> VisionRequest:
    if not images:
        raise ConfigError("describe_image needs at least one image")
    return VisionRequest(
        images,
        prompt=prompt or "Describe this image.",
        model=model,
        detail=detail,  # type: ignore[arg-type]
        options=ChatOptions(json_schema=schema),
    )


def _dataset(settings: Settings, source: DatasetSource) -> TrainingDataset:
    if isinstance(source, TrainingDataset):
        return source
    return load_dataset(source, columns=settings.training.csv)


def _required(model: str | None) -> str:
    if not model:
        raise ConfigError(
            "no base model to train",
            hint="pass base_model (CLI: --model), set [training] base_model, or give the "
            "default assistant a model",
        )
    return model


def _assemble(deltas: list[StreamDelta], fallback_model: str | None) -> Reply:
    usage = next((d.usage for d in reversed(deltas) if d.usage is not None), None)
    return Reply(
        text="".join(d.text for d in deltas),
        model=next((d.model for d in deltas if d.model), None) or fallback_model or "",
        usage=usage or Usage(),
        finish_reason=next((d.finish_reason for d in reversed(deltas) if d.finish_reason), None),
    )


def _answer_message(reply: Reply, sentiment: Sentiment | None) -> Message:
    return Message(
        "assistant",
        reply.text,
        created_at=utcnow(),
        model=reply.model,
        sentiment=sentiment,
        usage=reply.usage,
    )


def _store_turn(rt: Runtime, turn: _Turn, reply: Reply, sentiment: Sentiment | None) -> str:
    """Store a finished turn: create the dialogue when it is new, then append the question and
    its answer in one write (a crash keeps the whole turn or none of it). Returns the
    dialogue's id.

    Blocking on purpose: a flow runs the whole of it as one :class:`~modelport.flows.Blocking`
    step (one worker thread in the async hub), rather than paying a thread hop for each store
    call. The reply's usage record is written last, with
    the dialogue's id, whether or not the turn could be stored (never raising).

    :raises ReplyNotStoredError: carrying the reply, whatever the store failed with.
    """
    answer = _answer_message(reply, sentiment)
    dialogue_id, created = turn.dialogue_id, False
    try:
        store_name, store = rt.backend(Capability.STORAGE)
        if dialogue_id is None:
            title = turn.user.text[:80] or None
            info = rt.call(
                Call(Capability.STORAGE, store_name, "create_dialogue"),
                lambda: store.create_dialogue(assistant=turn.assistant, title=title),
            )[0]
            dialogue_id, created = info.id, True
        rt.call(
            Call(Capability.STORAGE, store_name, "append", dialogue_id=dialogue_id),
            lambda: store.append(dialogue_id, turn.user, answer),
            request=Turn((turn.user, answer)),
        )
    except Exception as exc:  # whatever the store did, the paid reply goes back to the caller
        if created and _deleted(store, dialogue_id):  # no empty dialogue is left behind
            dialogue_id = None
        redact_exception(exc)
        raise ReplyNotStoredError(
            exc, reply=reply, sentiment=sentiment, dialogue_id=dialogue_id
        ) from exc
    finally:
        rt.usage.settle(rt, reply, dialogue_id)
    return dialogue_id


def _deleted(store: Any, dialogue_id: str | None) -> bool:
    """Delete a dialogue created for a turn that could not be stored; whether that worked."""
    try:
        store.delete_dialogue(dialogue_id)
    except Exception as exc:  # the store is failing already: the error names the dialogue
        get_logger().warning("empty_dialogue_left", dialogue_id=dialogue_id, error=str(exc))
        return False
    return True


def _quietly(what: str, error: Exception, **details: Any) -> None:
    """Log a failure that must not cost the caller a reply or a job already paid for, nor a
    whole listing."""
    if not isinstance(error, ModelportError):
        redact_exception(error)  # in place
        details["error_type"] = type(error).__name__
    get_logger().warning(what, error=str(error), **details)


def _job_not_recorded(record: JobRecord, error: Exception) -> None:
    _quietly(
        "job_record_not_saved",
        error,
        job_id=record.job_id,
        hint=f"the job runs on {record.backend}; follow it with: modelport jobs show "
        f"{record.job_id} (the store could not keep its record)",
    )


def _loader(store: Store, dialogue_id: str, last: int | None) -> Callable[[], Dialogue]:
    """The store call loading a dialogue (or its tail: the argument only when it is used)."""
    if last is None:
        return lambda: store.load_dialogue(dialogue_id)
    return lambda: store.load_dialogue(dialogue_id, last=last)


def _new_record(
    job: TrainingJob, backend: str, base_model: str, data: TrainingDataset, description: str
) -> JobRecord:
    record = JobRecord(
        job_id=job.id,
        backend=backend,
        base_model=base_model,
        source=data.source,
        description=description,
        exchanges=dataset_exchanges(data),
    )
    return record.with_status(job)


def _learnt(records: Iterable[JobRecord]) -> set[str]:
    """The exchanges that jobs which did not fail or get cancelled learn from."""
    gone = (JobStatus.FAILED, JobStatus.CANCELLED)
    return {key for r in records if r.status not in gone for key in r.exchanges}


#: How long ``wait_job`` goes on polling a backend that keeps failing (5xx, timeouts, refused
#: connections, rate limits) before it gives up; the job itself is not affected.
MAX_OUTAGE_S = 900.0


@attrs.define
class _Progress:
    """What waiting for a job has seen: the last status, the events, the next delay, and how
    long the backend has been failing."""

    on_update: Callable[[TrainingJob], None] | None
    on_event: Callable[[JobEvent], None] | None
    started: float = attrs.field(factory=time.monotonic)
    last: JobStatus | None = None
    latest: TrainingJob | None = None
    seen: set[tuple[datetime, str]] = attrs.field(factory=set)
    polls: int = 0
    failing_since: float | None = None
    failures: int = 0
    #: the progress line last reported (for a trainer without events of its own)
    line: str | None = None

    def made_events(self, job: TrainingJob, record: JobRecord | None) -> list[JobEvent]:
        """Events made for a trainer without ``job_events``: at the first poll, the status
        changes the job record kept; then each new status, and each new progress line
        (step, loss, time left) the job reports."""
        now = utcnow()
        if self.last is None:
            kept = record.status_events() if record is not None else ()
            made = list(kept) or [status_event(None, job.status, now)]
        elif job.status != self.last:
            made = [status_event(self.last, job.status, now)]
        else:
            made = []
        line = job.progress()
        if line is not None and line != self.line:
            self.line = line
            made.append(JobEvent(now, line))
        return made

    def job(self, job: TrainingJob) -> None:
        if job.status != self.last and self.on_update is not None:
            self.on_update(job)
        self.last = job.status
        self.latest = job
        self.failing_since, self.failures = None, 0

    def failed(
        self,
        job_id: str,
        error: BackendError,
        poll_s: float,
        max_poll_s: float,
        timeout_s: float | None,
        max_outage_s: float | None,
    ) -> float:
        """Seconds until the next poll after a poll failed with a retryable ``error`` (the
        retry policy gave up on it): back off 2x a failure, at least what the backend asked.

        :raises WaitTimeoutError: (from ``error``, with the resume hint) once the backend has
            failed for ``max_outage_s`` in a row, or at the timeout.
        """
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
        self.failures += 1
        waited = now - self.started
        left = [
            limit - spent
            for limit, spent in ((timeout_s, waited), (max_outage_s, now - self.failing_since))
            if limit is not None
        ]
        status = self.last.value if self.last is not None else "unknown"
        if left and min(left) <= 0:
            seen = f"; it was {status} when last seen" if self.last is not None else ""
            raise WaitTimeoutError(job_id, status, waited, reason=f"{error}{seen}") from error
        delay = min(poll_s * 2.0 ** min(self.failures - 1, 16), max_poll_s)
        delay = max(delay, error.retry_after or 0.0)
        if left:
            delay = min(delay, *left)
        get_logger().warning(
            "job_poll_failed",
            job_id=job_id,
            error=str(error),
            failures=self.failures,
            retry_in_s=round(delay, 1),
        )
        return delay

    def events(self, events: Iterable[JobEvent]) -> None:
        for event in events:
            key = (event.created_at, event.message)
            if key not in self.seen:
                self.seen.add(key)
                if self.on_event is not None:
                    self.on_event(event)

    def next_delay(
        self, job: TrainingJob, poll_s: float, max_poll_s: float, timeout_s: float | None
    ) -> float:
        """Seconds until the next poll (backing off 1.5x a poll), or raise at the timeout."""
        waited = time.monotonic() - self.started
        if timeout_s is not None and waited >= timeout_s:
            raise WaitTimeoutError(job.id, job.status.value, waited)
        delay = min(poll_s * 1.5**self.polls, max_poll_s)
        self.polls += 1
        if timeout_s is not None:
            delay = min(delay, max(timeout_s - waited, 0.0))
        return delay


def _takes_progress(upload: Any) -> bool:
    """Whether a trainer's ``upload`` takes the optional ``on_progress`` keyword."""
    try:
        return "on_progress" in inspect.signature(upload).parameters
    except (TypeError, ValueError):  # a builtin or a mock without a signature
        return False


def _files(ids: Collection[str]) -> str:
    return f"file {next(iter(ids))}" if len(ids) == 1 else f"files {', '.join(ids)}"


@attrs.define
class _Uploads:
    """The files one ``train`` call uploaded, the progress it reports, and what becomes of the
    files when the job cannot be started."""

    on_progress: Callable[[UploadProgress], None] | None
    files: list[str] = attrs.field(factory=list)
    #: Set just before ``start`` is called: from then on, a failure may hide a created job.
    starting: bool = False
    last: UploadProgress | None = None

    def _report(self, event: UploadProgress) -> None:
        self.last = event
        if self.on_progress is not None:
            self.on_progress(event)

    def begin(self, file: str) -> None:
        """Report that ``file`` starts to upload."""
        if self.on_progress is not None:
            self._report(UploadProgress(file))

    def keywords(self, file: str, upload: Callable[..., Any]) -> dict[str, Any]:
        """The keywords to pass to ``upload`` (``on_progress`` when it takes it)."""
        if self.on_progress is None or not _takes_progress(upload):
            return {}
        return {"on_progress": lambda sent, total: self._report(UploadProgress(file, sent, total))}

    def done(self, file: str, file_id: str) -> str:
        """Note the uploaded file (and report it); returns ``file_id``."""
        self.files.append(file_id)
        if self.on_progress is not None:
            last = self.last if self.last is not None and self.last.file == file else None
            last = last or UploadProgress(file)
            sent = last.total if last.total is not None else last.sent
            self._report(attrs.evolve(last, sent=sent, file_id=file_id))
        return file_id

    def may_have_started(self, error: ModelportError) -> bool:
        """Whether the job may exist despite ``error``: ``start`` timed out, lost its
        connection or got an unusable answer (a refusal or a rate limit means no job)."""
        return self.starting and isinstance(error, TransientError | ResponseError)

    def to_delete(self, error: ModelportError, trainer: object) -> list[str]:
        """The uploaded files to delete after ``error``: all, when the job surely was not
        created and the trainer can delete files (``delete_file``); else none."""
        if self.may_have_started(error) or not implements(trainer, DeletesFiles):
            return []
        return list(self.files)

    def explain(self, error: ModelportError, deleted: Collection[str]) -> None:
        """Add to ``error``'s hint what became of the uploaded files, naming their ids."""
        kept = [f for f in self.files if f not in deleted]
        one = len(kept) == 1
        notes = [f"deleted the uploaded {_files(deleted)}"] if deleted else []
        if kept and self.may_have_started(error):
            notes.append(
                "a job may have started anyway (check: modelport jobs list --remote), so the "
                f"uploaded {_files(kept)} {'was' if one else 'were'} kept"
            )
        elif kept:
            notes.append(
                f"the uploaded {_files(kept)} {'is' if one else 'are'} left on the backend: "
                f"delete {'it' if one else 'them'} there"
            )
        if notes:
            error.hint = "; ".join([error.hint, *notes] if error.hint else notes)


#: ``(backend, model)`` pairs whose shutdown date was logged already (once per process).
_SHUTDOWNS_LOGGED: set[tuple[str, str]] = set()


# --- streams ---------------------------------------------------------------------------------

_END: Any = object()


def _close(source: object) -> None:
    close = getattr(source, "close", None)
    if callable(close):
        close()


class _Source:
    """An open stream of deltas: a backend's ``astream`` (``native``), or its ``stream``
    (read in a worker thread when driven async: a read and the closing never overlap, and
    neither runs on the event loop)."""

    __slots__ = ("it", "lock", "native")

    def __init__(self, it: Any, *, native: bool) -> None:
        self.it, self.native = it, native
        self.lock = threading.Lock()

    def next(self) -> Any:
        with self.lock:
            return next(self.it, _END)

    async def anext(self) -> Any:
        if self.native:
            return await anext(self.it, _END)
        return await asyncio.to_thread(self.next)

    def close(self) -> None:
        with self.lock:  # after a read still under way in another thread (a cancelled task's)
            _close(self.it)

    async def aclose(self) -> None:
        if self.native:
            aclose = getattr(self.it, "aclose", None)
            await aclose() if callable(aclose) else _close(self.it)
            return
        # A read may still be under way in a worker thread (the task was cancelled while it
        # waited): the stream is closed once that read ends, in a thread, never on the loop
        # and never by waiting here for a stalled server.
        threading.Thread(target=self.close, name="modelport-stream-close", daemon=True).start()

    def closing(self) -> AbstractContextManager[_Source]:
        return contextlib.closing(self)

    def aclosing(self) -> AbstractAsyncContextManager[_Source]:
        return contextlib.aclosing(self)


def _or_close(source: _Source, head: Callable[[], Any]) -> tuple[_Source, Any]:
    """``source`` and its first delta; ``source`` closed when that fails."""
    try:
        return source, head()
    except BaseException:
        source.close()
        raise


async def _aor_close(source: _Source) -> tuple[_Source, Any]:
    """The asyncio form of :func:`_or_close`."""
    try:
        return source, await source.anext()
    except BaseException:
        await source.aclose()
        raise


class _OpenStream(Step[tuple[_Source, Any]]):
    """Open a chat backend's stream and read its first delta (``_END`` when it has none): the
    part of a stream that is retried and falls back."""

    __slots__ = ("chat", "request")

    def __init__(self, chat: Bound[ChatBackend, AsyncChatBackend], request: ChatRequest) -> None:
        self.chat, self.request = chat, request

    def run(self, scope: Any) -> tuple[_Source, Any]:
        source = _Source(iter(self.chat.sync.stream(self.request)), native=False)
        return _or_close(source, source.next)

    async def arun(self, scope: Any) -> tuple[_Source, Any]:
        native = self.chat.async_
        if native is None:  # opening a sync stream may block (it sends the request)
            return await asyncio.to_thread(self.run, scope)
        return await _aor_close(_Source(native.astream(self.request), native=True))


class _Next(Step[Any]):
    """The next delta of an open stream (``_END`` after the last)."""

    __slots__ = ("source",)

    def __init__(self, source: _Source) -> None:
        self.source = source

    def run(self, scope: Any) -> Any:
        return self.source.next()

    async def arun(self, scope: Any) -> Any:
        return await self.source.anext()


@attrs.define
class StreamState:
    """What a stream's consumer sees besides the deltas: those received so far, and the
    stored answer once the stream is done."""

    deltas: list[StreamDelta] = attrs.field(factory=list)
    answer: Answer | None = None


# --- the operations --------------------------------------------------------------------------


def _training_notes(trainer: object, model: str | None) -> tuple[str, ...]:
    """What the trainer says beyond the data (e.g. the vendor stops training)."""
    if implements(trainer, HasTrainingWarnings):
        return tuple(trainer.training_warnings(model))
    return ()


class Operations:
    """Every hub operation, once, as a flow over one :class:`~modelport._runtime.Runtime`."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @property
    def settings(self) -> Settings:
        return self.rt.settings

    def assistant(self, name: str | None = None) -> AssistantProfile:
        return self.rt.settings.assistant(name)[1]

    def _guarded(self, call: Call, step: Step[T], request: Any = None) -> Flow[T]:
        result, _ = yield from self.rt.guarded(call, step, request=request)
        return result

    # --- chat --------------------------------------------------------------------------------

    def history(
        self, dialogue: str | None, assistant: str | None
    ) -> Flow[tuple[str | None, list[Message]]]:
        """The assistant the turn uses, and the history it sends (the dialogue's latest
        messages that fit that assistant's window)."""
        if dialogue is None:
            return assistant, []
        window = self.assistant(assistant).history
        loaded = yield from self.dialogue(dialogue, last=window.max_messages)
        assistant = _dialogue_assistant(self.settings, assistant, loaded.assistant)
        own = self.assistant(assistant).history
        if _wider(own, window):
            loaded = yield from self.dialogue(dialogue, last=own.max_messages)
        return assistant, _window(loaded.messages, own)

    def turn(
        self,
        text: str | Message,
        *,
        dialogue: str | None,
        assistant: str | None,
        images: Iterable[ImageSource],
        options: ChatOptions | None,
        model: str | None,
        operation: str,
    ) -> Flow[tuple[_Turn, _Chain]]:
        """A prepared turn, and the chain of chat backends that may serve it."""
        assistant, history = yield from self.history(dialogue, assistant)
        chat = self.rt.chat(self.assistant(assistant).backend)
        self.rt.store()  # a store that cannot be used fails now, before the paid call
        if self.rt.usage.budgeted(assistant):  # and a spent budget too
            yield Blocking(self.rt.usage.check_budget, self.rt, assistant)
        sources = list(images)
        prepared = (yield Blocking(_images, self.settings, chat.sync, sources)) if sources else []
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
        return turn, _Chain(self.rt, turn, self.chat_call(turn, operation, chat.name), chat)

    def chat_call(self, turn: _Turn, operation: str, name: str) -> Call:
        return Call(
            Capability.CHAT,
            name,
            operation,
            model=turn.request.model,
            dialogue_id=turn.dialogue_id,
            tokens=turn.request.estimated_tokens(),
            assistant=turn.assistant,
        )

    def ask(
        self,
        text: str | Message,
        *,
        dialogue: str | None,
        assistant: str | None,
        images: Iterable[ImageSource],
        options: ChatOptions | None,
        model: str | None,
    ) -> Flow[Answer]:
        turn, chain = yield from self.turn(
            text,
            dialogue=dialogue,
            assistant=assistant,
            images=images,
            options=options,
            model=model,
            operation="complete",
        )
        attempt, reply = yield from chain.walk(self._complete)
        return (yield from self.finish(turn, reply, attempt.name))

    def _complete(self, attempt: _Attempt) -> Flow[Reply]:
        chat, request = attempt.chat, attempt.request
        native = chat.async_.acomplete if chat.async_ is not None else None
        return self._guarded(attempt.call, Invoke(chat.sync.complete, native, request), request)

    def finish(self, turn: _Turn, reply: Reply, backend: str | None = None) -> Flow[Answer]:
        """The reply's sentiment (when it can be had), then the turn stored."""
        sentiment = None
        if self.rt.available(Capability.SENTIMENT):
            try:
                sentiment = yield from self.analyze(reply.text)
            except Exception as exc:  # a plugin's own error too: the reply is paid for
                _quietly("reply_sentiment_failed", exc)
        dialogue_id = yield Blocking(_store_turn, self.rt, turn, reply, sentiment)
        return Answer(
            reply, dialogue_id, sentiment=sentiment, assistant=turn.assistant, backend=backend
        )

    def stream(self, turn: _Turn, chain: _Chain, state: StreamState) -> ItemFlow[StreamDelta]:
        """The deltas of a streamed turn; then the turn is stored and ``state.answer`` set.

        Until the first delta, a failing backend is retried, then left for the next fallback;
        after it, a failure is raised (the deltas already given cannot be taken back). A flow
        closed early stores nothing, and closes the backend's stream.
        """
        started = time.perf_counter()
        attempt, ((source, head), attempts) = yield from chain.walk(
            lambda a: self.rt.guarded(a.call, _OpenStream(a.chat, a.request), observe=False)
        )
        yield Enter(source.closing, source.aclosing)
        delta = head
        while delta is not _END:
            if not isinstance(delta, StreamDelta):  # the seam's check (see Runtime.guarded)
                problem = f"yielded {got(delta)}, not a StreamDelta"
                error: Exception = self.rt.wrong_result(attempt.call, problem)
                self.rt.failed_after_start(attempt.call, error, attempts)
                raise error
            state.deltas.append(delta)
            yield delta
            try:
                delta = yield _Next(source)
            except Exception as exc:
                error = self.rt.seam_error(attempt.call, exc)
                self.rt.failed_after_start(attempt.call, error, attempts)
                if error is exc:
                    raise
                raise error from exc
        reply = _assemble(state.deltas, attempt.request.model)
        self.rt.succeeded(attempt.call, attempt.request, reply, started, attempts)
        state.answer = yield from self.finish(turn, reply, attempt.name)

    def models(self, backend: str | None) -> Flow[tuple[ModelInfo, ...]]:
        chat = self.rt.chat(backend)
        native = chat.async_.amodels if chat.async_ is not None else None
        call = Call(Capability.CHAT, chat.name, "models")
        found = tuple((yield from self._guarded(call, Invoke(chat.sync.models, native))))
        self.shutdown_notices(chat.name, chat.sync, found)
        return found

    # --- vision and sentiment ----------------------------------------------------------------

    def describe_image(
        self,
        images: Sequence[ImageSource],
        *,
        prompt: str | None,
        schema: Mapping[str, Any] | None,
        detail: str,
        model: str | None,
    ) -> Flow[Reply]:
        vision = self.rt.vision()
        prepared = yield Blocking(_images, self.settings, vision.sync, images)
        request = _vision_request(prepared, prompt, schema, detail, model)
        call = Call(
            Capability.VISION, vision.name, "describe", model=model, tokens=1000 * len(images)
        )
        native = vision.async_.adescribe if vision.async_ is not None else None
        reply = yield from self._guarded(
            call, Invoke(vision.sync.describe, native, request), request
        )
        yield Blocking(self.rt.usage.settle, self.rt, reply)
        return reply

    def analyze(self, text: str) -> Flow[Sentiment]:
        name, analyzer = self.rt.sentiment()
        call = Call(Capability.SENTIMENT, name, "analyze")
        return self._guarded(call, Blocking(analyzer.analyze, text), text)

    def analyze_many(self, texts: Sequence[str]) -> Flow[list[Sentiment]]:
        name, analyzer = self.rt.sentiment()
        if not implements(analyzer, AnalyzesMany):
            found = []
            for text in texts:
                found.append((yield from self.analyze(text)))
            return found
        call = Call(Capability.SENTIMENT, name, "analyze_many")
        step = Blocking(analyzer.analyze_many, list(texts))
        return list((yield from self._guarded(call, step, texts)))

    # --- dialogues ---------------------------------------------------------------------------

    def dialogues(
        self,
        *,
        assistant: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        offset: int,
    ) -> Flow[Page]:
        name, store = self.rt.store()
        step = Blocking(
            store.list_dialogues,
            assistant=assistant,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        return self._guarded(Call(Capability.STORAGE, name, "list_dialogues"), step)

    def dialogue(self, dialogue_id: str, *, last: int | None = None) -> Flow[Dialogue]:
        name, store = self.rt.store()
        call = Call(Capability.STORAGE, name, "load_dialogue", dialogue_id=dialogue_id)
        return self._guarded(call, Blocking(_loader(store, dialogue_id, last)))

    def delete_dialogue(self, dialogue_id: str) -> Flow[None]:
        name, store = self.rt.store()
        call = Call(Capability.STORAGE, name, "delete_dialogue", dialogue_id=dialogue_id)
        return self._guarded(call, Blocking(store.delete_dialogue, dialogue_id))

    def all_dialogues(self, assistant: str | None, since: datetime | None) -> ItemFlow[Dialogue]:
        """Every stored dialogue (of ``assistant``, since ``since``), one page loaded at a
        time; a damaged or deleted one is skipped and logged."""
        offset: int | None = 0
        while offset is not None:
            page = yield from self.dialogues(
                assistant=assistant, since=since, until=None, limit=100, offset=offset
            )
            for info in page.items:
                try:
                    dialogue = yield from self.dialogue(info.id)
                except (CorruptRecordError, RecordNotFoundError) as exc:  # damaged, or deleted
                    _quietly("dialogue_skipped", exc)
                    continue
                yield dialogue
            offset = page.next_offset

    # --- usage -------------------------------------------------------------------------------

    def usage(
        self, *, since: datetime | None, until: datetime | None
    ) -> Flow[tuple[UsageRecord, ...]]:
        records: tuple[UsageRecord, ...] = yield Blocking(
            self.rt.usage.list_usage, self.rt, since, until
        )
        return records

    def usage_report(
        self, *, since: datetime | None, until: datetime | None, by: str
    ) -> Flow[UsageReport]:
        records = yield from self.usage(since=since, until=until)
        return UsageReport.of(records, by=by, since=since, until=until)

    # --- training ----------------------------------------------------------------------------

    def train(
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
    ) -> Flow[TrainingJob]:
        model = _required((yield Blocking(self.base_model, base_model, backend=backend)))
        data = yield Blocking(self.checked, dataset, model, hyperparameters, backend)
        check = (
            (yield Blocking(self.checked, validation, model, hyperparameters, backend))
            if validation is not None
            else None
        )
        trainer = self.rt.trainer(backend)
        native = trainer.async_
        upload = Call(Capability.TRAINING, trainer.name, "upload", model=model, idempotent=False)
        uploads = _Uploads(on_progress)

        def send(file: str, part: TrainingDataset) -> Flow[str]:
            uploads.begin(file)
            step = Invoke(
                partial(trainer.sync.upload, part, **uploads.keywords(file, trainer.sync.upload)),
                partial(native.aupload, part, **uploads.keywords(file, native.aupload))
                if native is not None
                else None,
            )
            return uploads.done(file, (yield from self._guarded(upload, step, part)))

        file_id = yield from send("training", data)
        try:
            check_id = (yield from send("validation", check)) if check else None
            spec = JobSpec(model, file_id, check_id, suffix, dict(hyperparameters or {}))
            uploads.starting = True
            start = Invoke(trainer.sync.start, native.astart if native is not None else None, spec)
            job: TrainingJob = yield from self._guarded(
                attrs.evolve(upload, operation="start"), start, spec
            )
        except ModelportError as exc:
            deleted: list[str] = []
            delete = Call(Capability.TRAINING, trainer.name, "delete_file")
            for orphan in uploads.to_delete(exc, trainer.sync):
                try:
                    yield from self._guarded(delete, _delete_file(trainer, orphan))
                except Exception as error:  # never hide why the job did not start
                    get_logger().warning("upload_not_deleted", file_id=orphan, error=str(error))
                else:
                    deleted.append(orphan)
            uploads.explain(exc, deleted)
            raise
        yield from self.save_record(_new_record(job, trainer.name, model, data, description))
        return job

    def check_dataset(
        self,
        dataset: DatasetSource,
        *,
        base_model: str | None,
        hyperparameters: Mapping[str, Any] | None,
        backend: str | None = None,
    ) -> Flow[DatasetReport]:
        data = yield Blocking(_dataset, self.settings, dataset)
        report: DatasetReport = yield Blocking(
            self.report, data, base_model, hyperparameters, backend
        )
        return report

    def dynamic_train(
        self,
        *,
        assistant: str | None,
        since: datetime | None,
        labels: Collection[SentimentLabel | str] | None,
        repeat: bool,
        train_kwargs: dict[str, Any],
    ) -> Flow[TrainingJob]:
        backend = train_kwargs.get("backend")
        dataset = yield from self.dialogue_dataset(
            assistant=assistant, since=since, labels=labels, repeat=repeat, backend=backend
        )
        train_kwargs["base_model"] = yield from self.training_base_model(
            train_kwargs.get("base_model"), backend=backend, assistant=assistant
        )
        return (yield from self.train(dataset, **train_kwargs))

    def dialogue_dataset(
        self,
        *,
        assistant: str | None,
        since: datetime | None,
        labels: Collection[SentimentLabel | str] | None,
        repeat: bool,
        backend: str | None = None,
    ) -> Flow[TrainingDataset]:
        """Stored dialogues as training examples. The dialogues are read one page at a time as
        the dataset is built, all of it one blocking step (store calls are blocking anyway).
        Images are kept when the training backend takes them (``training_media_types``)."""
        exclude = set() if repeat else _learnt((yield from self.jobs()))
        trainer = yield Blocking(self._trainer_quietly, backend)  # building it may block
        media = trainer.training_media_types if implements(trainer, TakesImageExamples) else ()
        dialogues = drive_iter(self.all_dialogues(assistant, since), sleep=self.rt.sleep)
        dataset: TrainingDataset = yield Blocking(
            _dataset_of, dialogues, self.assistant, labels, exclude, frozenset(media or ())
        )
        return dataset

    def training_base_model(
        self, asked: str | None, *, backend: str | None, assistant: str | None
    ) -> Flow[str | None]:
        """:meth:`base_model` as a flow (building the trainer may block)."""
        model: str | None = yield Blocking(
            partial(self.base_model, asked, backend=backend, assistant=assistant)
        )
        return model

    def _trainer_quietly(self, backend: str | None) -> Any:
        """The training backend ``backend`` (else the configured one) for what it says of
        itself, or ``None`` when there is none or it cannot be built (no API key, say: the
        data can be checked anyway). A backend named but unknown is an error."""
        if backend is None and not self.rt.available(Capability.TRAINING):
            return None
        try:
            return self.rt.trainer(backend).sync
        except BackendNotFoundError:
            if backend is not None:
                raise
            return None
        except ModelportError as exc:
            get_logger().info("trainer_unavailable_for_check", error=str(exc))
            return None

    def base_model(
        self,
        asked: str | None,
        *,
        backend: str | None = None,
        assistant: str | None = None,
    ) -> str | None:
        """The model to train, first found: ``asked`` (the call's), ``[training] base_model``,
        the training backend's ``default_base_model``, the assistant's model."""
        if asked:
            return asked
        if self.settings.training.base_model:
            return self.settings.training.base_model
        trainer = self._trainer_quietly(backend)
        if implements(trainer, HasDefaultBaseModel) and trainer.default_base_model:
            return str(trainer.default_base_model)
        return self.assistant(assistant).model

    # --- jobs --------------------------------------------------------------------------------

    def save_record(self, record: JobRecord) -> Flow[None]:
        """Keep the record of a job; a store that cannot is logged, never raised: the job
        runs (and bills) whether or not its record is kept."""
        if not self.rt.available(Capability.STORAGE):
            return
        name, store = self.rt.store()
        try:
            yield from self._guarded(
                Call(Capability.STORAGE, name, "save_job"), Blocking(store.save_job, record)
            )
        except Exception as exc:
            _job_not_recorded(record, exc)

    def record(self, job_id: str) -> Flow[JobRecord | None]:
        if not self.rt.available(Capability.STORAGE):
            return None
        name, store = self.rt.store()
        try:
            record: JobRecord = yield from self._guarded(
                Call(Capability.STORAGE, name, "load_job"), Blocking(store.load_job, job_id)
            )
        except RecordNotFoundError:
            return None
        return record

    def _trainer_call(
        self, job_id: str, operation: str
    ) -> Flow[tuple[TrainingJob, JobRecord | None]]:
        """Call ``get_job`` or ``cancel_job`` of the trainer that runs job ``job_id``."""
        record = yield from self.record(job_id)
        trainer = self._trainer_of(record)
        native = trainer.async_
        if operation == "get_job":
            step = Invoke(trainer.sync.get_job, native.aget_job if native else None, job_id)
        else:
            step = Invoke(trainer.sync.cancel_job, native.acancel_job if native else None, job_id)
        call = Call(Capability.TRAINING, trainer.name, operation)
        job: TrainingJob = yield from self._guarded(call, step)
        return job, record

    def _trainer_of(self, record: JobRecord | None) -> Bound[Any, Any]:
        """The trainer that runs the job of ``record`` (the configured one without a record)."""
        return self.rt.trainer(record.backend if record else None)

    def _poll(self, job_id: str) -> Flow[tuple[TrainingJob, JobRecord | None]]:
        """The job from its backend, and its record brought up to date (and saved) when the
        job says more than it: another status, or its result."""
        job, record = yield from self._trainer_call(job_id, "get_job")
        if record is not None and record.is_behind(job):
            record = record.with_status(job)
            yield from self.save_record(record)
        return job, record

    def job(self, job_id: str) -> Flow[TrainingJob]:
        job, _ = yield from self._poll(job_id)
        return job

    def cancel_job(self, job_id: str) -> Flow[TrainingJob]:
        job, record = yield from self._trainer_call(job_id, "cancel_job")
        if record is not None:
            yield from self.save_record(record.with_status(job))
        return job

    def jobs(self) -> Flow[tuple[JobRecord, ...]]:
        name, store = self.rt.store()
        call = Call(Capability.STORAGE, name, "list_jobs")
        return tuple((yield from self._guarded(call, Blocking(store.list_jobs))))

    def remote_jobs(self, *, limit: int) -> Flow[tuple[TrainingJob, ...]]:
        trainer = self.rt.trainer()
        native = trainer.async_
        step = Invoke(
            partial(trainer.sync.list_jobs, limit=limit),
            partial(native.alist_jobs, limit=limit) if native is not None else None,
        )
        call = Call(Capability.TRAINING, trainer.name, "list_jobs")
        return tuple((yield from self._guarded(call, step)))

    def job_events(self, job_id: str) -> Flow[tuple[JobEvent, ...]]:
        record = yield from self.record(job_id)
        trainer = self._trainer_of(record)
        if not implements(trainer.sync, HasJobEvents):
            # no events of its own: its status changes, as the record keeps them
            job, record = yield from self._poll(job_id)
            if record is not None and record.history:
                return record.status_events()
            return (status_event(None, job.status, job.finished_at or job.created_at or utcnow()),)
        native = trainer.async_
        events = native.ajob_events if implements(native, AsyncHasJobEvents) else None
        call = Call(Capability.TRAINING, trainer.name, "job_events")
        return tuple(
            (yield from self._guarded(call, Invoke(trainer.sync.job_events, events, job_id)))
        )

    def serving_notes(self, job: TrainingJob) -> Flow[tuple[str, ...]]:
        """What the trainer of ``job`` says about chatting with its result (its
        ``serving``); nothing when it says nothing or cannot say it now."""
        record = yield from self.record(job.id)
        trainer = self._trainer_of(record).sync
        if not implements(trainer, HasServingNotes):
            return ()
        try:
            lines = yield Blocking(trainer.serving, job)
        except Exception as exc:  # a courtesy: never costs the caller the job itself
            _quietly("serving_notes_unavailable", exc, job_id=job.id)
            return ()
        return tuple(str(line) for line in lines)

    def _events_quietly(self, job_id: str) -> Flow[tuple[JobEvent, ...]]:
        try:
            return (yield from self.job_events(job_id))
        except BackendError as exc:  # events are a courtesy: waiting goes on without them
            get_logger().warning("job_events_unavailable", job_id=job_id, error=str(exc))
            return ()

    def wait_job(
        self,
        job_id: str,
        *,
        poll_s: float,
        max_poll_s: float,
        timeout_s: float | None,
        on_update: Callable[[TrainingJob], None] | None,
        on_event: Callable[[JobEvent], None] | None,
        on_poll: Callable[[TrainingJob, float], None] | None,
        max_outage_s: float | None,
    ) -> Flow[TrainingJob]:
        progress = _Progress(on_update, on_event)
        own_events: bool | None = None  # whether the trainer has events (known at 1st poll)
        while True:
            try:
                job, record = yield from self._poll(job_id)
            except BackendError as exc:
                if not exc.retryable:
                    raise
                delay = progress.failed(job_id, exc, poll_s, max_poll_s, timeout_s, max_outage_s)
                if on_poll is not None and progress.latest is not None:
                    on_poll(progress.latest, delay)
                yield Sleep(delay)
                continue
            if on_event is not None:
                if own_events is None:
                    own_events = isinstance(self._trainer_of(record).sync, HasJobEvents)
                if own_events:
                    progress.events((yield from self._events_quietly(job_id)))
                else:
                    progress.events(progress.made_events(job, record))
            progress.job(job)
            if job.status.is_terminal:
                return job
            delay = progress.next_delay(job, poll_s, max_poll_s, timeout_s)
            if on_poll is not None:
                on_poll(job, delay)
            yield Sleep(delay)

    # --- what does no I/O of its own ---------------------------------------------------------

    def shutdown_notices(self, name: str, chat: object, models: Iterable[ModelInfo]) -> list[str]:
        """A line for each model the configuration has backend ``name`` use (an assistant's
        ``model``, or the backend's own ``configured_models``) that has a shutdown date, saying
        which setting to change. Each is also logged, once per process, as the warning
        ``model_shutdown_scheduled``."""
        used: dict[str, list[str]] = {}
        configured: Mapping[str, str] = (
            chat.configured_models if implements(chat, HasConfiguredModels) else None
        ) or {}
        for model, key in configured.items():
            used.setdefault(model, []).append(key)
        try:
            default_chat: str | None = self.rt.spec(Capability.CHAT).name
        except ModelportError:
            default_chat = None
        for assistant, profile in self.settings.assistants.items():
            if profile.model and (profile.backend or default_chat) == name:
                used.setdefault(profile.model, []).append(f"assistants.{assistant}.model")
        notices = []
        for info in models:
            keys = used.get(info.id)
            if info.shutdown_date is None or not keys:
                continue
            when = info.shutdown_date.isoformat()
            where = " and ".join(
                f"[{section}] {key}" for section, _, key in (k.rpartition(".") for k in keys)
            )
            hint = f"set {where} to a model with no shutdown date (`modelport models` shows them)"
            notices.append(f"model {info.id!r} of backend {name!r} shuts down on {when}: {hint}")
            if (name, info.id) not in _SHUTDOWNS_LOGGED:
                _SHUTDOWNS_LOGGED.add((name, info.id))
                get_logger().warning(
                    "model_shutdown_scheduled",
                    backend=name,
                    model=info.id,
                    shutdown_date=when,
                    settings=keys,
                    hint=hint,
                )
        return notices

    def report(
        self,
        dataset: TrainingDataset,
        base_model: str | None,
        hyperparameters: Mapping[str, Any] | None,
        backend: str | None = None,
    ) -> DatasetReport:
        """Check ``dataset`` against what the training backend (if any) says it needs."""
        trainer: Any = self._trainer_quietly(backend)
        model = self.base_model(base_model, backend=backend)
        limit = trainer.example_token_limit if implements(trainer, HasExampleTokenLimit) else None
        epochs = (hyperparameters or {}).get("n_epochs")
        training = self.settings.training
        report = check_dataset(
            dataset,
            min_examples=training.min_examples
            or int(trainer.min_examples if implements(trainer, HasMinExamples) else MIN_EXAMPLES),
            max_example_tokens=limit if isinstance(limit, int) else None,
            tokenizer=default_tokenizer(training.tokenizer),
            epochs=epochs if isinstance(epochs, int) and epochs > 0 else training.epochs,
            price_per_million=trainer.training_price(model)
            if implements(trainer, HasTrainingPrice) and model
            else None,
        )
        if notes := _training_notes(trainer, model):
            report = attrs.evolve(report, warnings=(*report.warnings, *notes))
        named = backend or (self._trainer_name() if trainer is not None else None)
        report = attrs.evolve(report, base_model=model or None, backend=named)
        if not model:  # the data may be fine, but there is nothing to train yet
            missing = (
                "no base model to train: pass base_model (CLI: --model), set [training] "
                "base_model, or give the default assistant a model"
            )
            report = attrs.evolve(report, problems=(*report.problems, missing))
        return report

    def _trainer_name(self) -> str | None:
        try:
            return self.rt.spec(Capability.TRAINING).name
        except ModelportError:
            return None

    def checked(
        self,
        source: DatasetSource,
        base_model: str | None,
        hyperparameters: Mapping[str, Any] | None,
        backend: str | None = None,
    ) -> TrainingDataset:
        """The dataset, checked (blocking: it reads and counts tokens)."""
        dataset = _dataset(self.settings, source)
        report = self.report(dataset, base_model, hyperparameters, backend)
        if not report.ok:
            raise TrainingDataError(report.problems, hint="fix the data; nothing was uploaded")
        return dataset


def _delete_file(trainer: Bound[Any, Any], file_id: str) -> Step[None]:
    """Delete an uploaded file: ``adelete_file`` when the trainer is awaited and has it."""
    native = trainer.async_
    deletes = native.adelete_file if implements(native, AsyncDeletesFiles) else None
    return Invoke(trainer.sync.delete_file, deletes, file_id)


def _dataset_of(
    dialogues: Iterator[Dialogue],
    assistant: Callable[[str | None], AssistantProfile],
    labels: Collection[SentimentLabel | str] | None,
    exclude: set[str],
    media_types: frozenset[str] = frozenset(),
) -> TrainingDataset:
    """Training examples from ``dialogues``, read as they are needed (blocking)."""
    with contextlib.closing(dialogues):  # type: ignore[type-var]
        return dataset_from_dialogues(
            dialogues,
            instructions=lambda name: assistant(name).instructions,
            labels=labels,
            exclude=exclude,
            media_types=media_types,
        )
