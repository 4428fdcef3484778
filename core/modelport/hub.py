"""The hub: the one object a host application holds.

``Hub`` (blocking) and ``AsyncHub`` (asyncio) offer the same methods; the async names are the
same, awaited. Both are thin orchestration over the configured backends: every backend call
goes through the core's rate limiter and retry policy, and is seen by the observer hooks.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import time
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import datetime
from typing import Any, Self, TypeVar

import attrs

from ._circuit import is_outage
from ._runtime import Call, Runtime
from ._text import invalid_unicode
from .config import AssistantProfile, Fallback, HistoryWindow, Settings, load_settings
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
from .images import ImageSource, load_image, prepare_image
from .logs import get_logger, redact_exception
from .plugins import Plugins, make_plugins
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
    utcnow,
)

__all__ = ["Hub", "ReplyStream"]

T = TypeVar("T")

DatasetSource = TrainingDataset | str | os.PathLike[str]


def _plugins_for(settings: Settings) -> Plugins:
    p = settings.plugins
    return make_plugins(autoload=p.autoload, blocked=p.disable, load=p.load)


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
    chat: Any
    request: ChatRequest
    call: Call


class _Chain:
    """The chat backends a turn may be served by, in order: the assistant's own, then its
    ``fallbacks``. Written once for both hubs and their streams: it picks the next backend,
    skips those whose circuit is open, keeps the circuit breakers informed and logs. Its
    two drivers, :meth:`run` and :meth:`arun`, walk it for ``ask`` and for streams alike;
    the caller only says how to make one attempt (under the retry policy).

    Every fallback's backend name is checked when the chain is made, before any paid call;
    a fallback's backend is built only when it is tried.
    """

    def __init__(self, rt: Runtime, turn: _Turn, call: Call, primary: tuple[str, Any]) -> None:
        self._rt, self._turn, self._call = rt, turn, call
        name, chat = primary
        self._chats: dict[str, Any] = {name: chat}
        self._options: list[tuple[str, ChatRequest]] = [(name, turn.request)]
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

    def run(self, attempt_call: Callable[[_Attempt], T]) -> tuple[_Attempt, T]:
        """Call backends in order until one answers: the attempt that served, and its result."""
        attempt = self.first()
        while True:
            try:
                result = attempt_call(attempt)
            except Exception as exc:
                if (following := self.after(attempt, exc)) is None:
                    raise
                attempt = following
            else:
                self.served(attempt)
                return attempt, result

    async def arun(self, attempt_call: Callable[[_Attempt], Awaitable[T]]) -> tuple[_Attempt, T]:
        """The asyncio driver of :meth:`run`."""
        attempt = self.first()
        while True:
            try:
                result = await attempt_call(attempt)
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
                    chat = self._chats[name] = self._rt.backend(Capability.CHAT, name)[1]
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
    media_types = getattr(backend, "media_types", None)
    accepts_urls = bool(getattr(backend, "accepts_urls", True))
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


def _base_model(settings: Settings, base_model: str | None) -> str:
    model = base_model or settings.assistant(None)[1].model
    if not model:
        raise ConfigError(
            "no base model to train",
            hint="pass base_model (CLI: --model), or set default_assistant with a model",
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

    Blocking on purpose: the async hub runs the whole of it in one worker thread, rather than
    paying a thread hop for each store call. The reply's usage record is written last, with
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


def _loader(store: Any, dialogue_id: str, last: int | None) -> Callable[[], Dialogue]:
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

    def begin(self, file: str, upload: Any) -> dict[str, Any]:
        """Report that ``file`` starts to upload; the keywords to pass to ``upload``."""
        if self.on_progress is None:
            return {}
        self._report(UploadProgress(file))
        if not _takes_progress(upload):
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

    def to_delete(self, error: ModelportError, trainer: Any, *methods: str) -> list[str]:
        """The uploaded files to delete after ``error``: all, when the job surely was not
        created and the trainer has one of ``methods`` (``delete_file``, ...); else none."""
        if self.may_have_started(error) or not any(
            callable(getattr(trainer, m, None)) for m in methods
        ):
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


class _HubBase:
    """Construction and the parts that do no I/O, shared by both hubs."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        plugins: Plugins | None = None,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Any] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings = settings if settings is not None else load_settings(env=env)
        self._rt = Runtime(
            settings=settings,
            plugins=plugins if plugins is not None else _plugins_for(settings),
            sleep=sleep,
            asleep=asleep,
            env=os.environ if env is None else env,
            clock=clock,
        )

    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        overrides: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        plugins: Plugins | None = None,
    ) -> Self:
        """A hub from the config file (see :func:`modelport.load_settings`)."""
        return cls(load_settings(path, overrides=overrides, env=env), plugins=plugins, env=env)

    @property
    def settings(self) -> Settings:
        return self._rt.settings

    @property
    def plugins(self) -> Plugins:
        return self._rt.plugins

    def backend_name(self, capability: Capability | str) -> str:
        """The backend serving ``capability``, built now (so a missing API key shows here).

        :raises modelport.ModelportError: when no backend can serve it, saying how to fix that.
        """
        return self._rt.backend(Capability(capability))[0]

    def backend(self, capability: Capability | str, name: str | None = None) -> Any:
        """The backend object serving ``capability`` (or the one named ``name``), built once
        per hub. Calls made on it directly skip the retry policy, the rate limiter and the
        observers; it is meant for tests and for a backend's own extra methods."""
        return self._rt.backend(Capability(capability), name)[1]

    def assistant(self, name: str | None = None) -> AssistantProfile:
        """The named assistant profile (or the default one)."""
        return self._rt.settings.assistant(name)[1]

    def _shutdown_notices(self, name: str, chat: object, models: Iterable[ModelInfo]) -> list[str]:
        """A line for each model the configuration has backend ``name`` use (an assistant's
        ``model``, or the backend's own ``configured_models``) that has a shutdown date, saying
        which setting to change. Each is also logged, once per process, as the warning
        ``model_shutdown_scheduled``."""
        used: dict[str, list[str]] = {}
        configured: Mapping[str, str] = getattr(chat, "configured_models", None) or {}
        for model, key in configured.items():
            used.setdefault(model, []).append(key)
        try:
            default_chat: str | None = self._rt.spec(Capability.CHAT).name
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

    def _report(
        self,
        dataset: TrainingDataset,
        base_model: str | None,
        hyperparameters: Mapping[str, Any] | None,
    ) -> DatasetReport:
        """Check ``dataset`` against what the training backend (if any) says it needs."""
        trainer: Any = None
        if self._rt.available(Capability.TRAINING):
            try:
                trainer = self._rt.backend(Capability.TRAINING)[1]
            except ModelportError as exc:  # e.g. no API key: the data can be checked anyway
                get_logger().info("trainer_unavailable_for_check", error=str(exc))
        model = base_model or self.assistant().model
        limit = getattr(trainer, "example_token_limit", None)
        price = getattr(trainer, "training_price", None)
        epochs = (hyperparameters or {}).get("n_epochs")
        training = self.settings.training
        report = check_dataset(
            dataset,
            min_examples=training.min_examples
            or int(getattr(trainer, "min_examples", MIN_EXAMPLES)),
            max_example_tokens=limit if isinstance(limit, int) else None,
            tokenizer=default_tokenizer(training.tokenizer),
            epochs=epochs if isinstance(epochs, int) and epochs > 0 else training.epochs,
            price_per_million=price(model) if callable(price) and model else None,
        )
        notes = getattr(trainer, "training_warnings", None)  # e.g. the vendor stops training
        if callable(notes):
            report = attrs.evolve(report, warnings=(*report.warnings, *notes(model)))
        if not model:  # the data may be fine, but there is nothing to train yet
            missing = (
                "no base model to train: pass base_model (CLI: --model), "
                "or give the default assistant a model"
            )
            report = attrs.evolve(report, problems=(*report.problems, missing))
        return report

    def _checked(
        self,
        source: DatasetSource,
        base_model: str | None,
        hyperparameters: Mapping[str, Any] | None,
    ) -> TrainingDataset:
        dataset = _dataset(self.settings, source)
        report = self._report(dataset, base_model, hyperparameters)
        if not report.ok:
            raise TrainingDataError(report.problems, hint="fix the data; nothing was uploaded")
        return dataset

    def _chat_call(self, turn: _Turn, operation: str, name: str) -> Call:
        return Call(
            Capability.CHAT,
            name,
            operation,
            model=turn.request.model,
            dialogue_id=turn.dialogue_id,
            tokens=turn.request.estimated_tokens(),
            assistant=turn.assistant,
        )


class Hub(_HubBase):
    """The blocking hub. Use it as a context manager, or call :meth:`close`.

    :param settings: validated settings (default: :func:`modelport.load_settings`).
    :param plugins: the plugins to use (default: built from ``settings.plugins``).
    :param env: where secrets are read from (default ``os.environ``).
    :param sleep: how to wait between retries and for the rate limiter (tests pass a fake).
    :param clock: how the circuit breakers read the time, in seconds (``time.monotonic``;
        tests pass a fake to reach a circuit's reset without waiting).
    """

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every backend that was opened (those with a ``close()`` method), and the
        connections of shared limiters."""
        for backend in self._rt.closables():
            close = getattr(backend, "close", None)
            if callable(close):
                close()

    def _run(self, call: Call, fn: Callable[[], T], request: Any = None) -> T:
        return self._rt.call(call, fn, request=request)[0]

    def _store(self) -> tuple[str, Any]:
        return self._rt.backend(Capability.STORAGE)

    # --- chat --------------------------------------------------------------------------------

    def _history(
        self, dialogue: str | None, assistant: str | None
    ) -> tuple[str | None, list[Message]]:
        """The assistant the turn uses, and the history it sends (the dialogue's latest
        messages that fit that assistant's window)."""
        if dialogue is None:
            return assistant, []
        window = self.assistant(assistant).history
        loaded = self.dialogue(dialogue, last=window.max_messages)
        assistant = _dialogue_assistant(self.settings, assistant, loaded.assistant)
        own = self.assistant(assistant).history
        if _wider(own, window):
            loaded = self.dialogue(dialogue, last=own.max_messages)
        return assistant, _window(loaded.messages, own)

    def _turn(
        self,
        text: str | Message,
        dialogue: str | None,
        assistant: str | None,
        images: Iterable[ImageSource],
        options: ChatOptions | None,
        model: str | None,
    ) -> tuple[_Turn, str, Any]:
        assistant, history = self._history(dialogue, assistant)
        name, chat = self._rt.backend(Capability.CHAT, self.assistant(assistant).backend)
        self._store()  # a store that cannot be used fails now, before the paid call
        self._rt.usage.check_budget(self._rt, assistant)  # and a spent budget too
        turn = _prepare_turn(
            self.settings,
            history,
            text,
            assistant=assistant,
            dialogue_id=dialogue,
            images=_images(self.settings, chat, images),
            options=options,
            model=model,
        )
        return turn, name, chat

    def ask(
        self,
        text: str | Message,
        *,
        dialogue: str | None = None,
        assistant: str | None = None,
        images: Iterable[ImageSource] = (),
        options: ChatOptions | None = None,
        model: str | None = None,
    ) -> Answer:
        """Ask a question and keep the dialogue.

        Loads the dialogue's history from the store (a new dialogue when ``dialogue`` is
        ``None``), applies the assistant profile, asks the chat backend, analyses the reply's
        sentiment (when a sentiment backend is available), and appends both messages.

        When the chat backend fails (its retry policy gave up on a 5xx, a timeout or a rate
        limit, or it rejected its key) or its circuit is open, the assistant's ``fallbacks``
        are tried in order; ``answer.backend`` names the one that served.
        """
        turn, name, chat = self._turn(text, dialogue, assistant, images, options, model)
        chain = _Chain(self._rt, turn, self._chat_call(turn, "complete", name), (name, chat))
        attempt, reply = chain.run(
            lambda a: self._run(a.call, functools.partial(a.chat.complete, a.request), a.request)
        )
        return self._finish(turn, reply, attempt.name)

    def _finish(self, turn: _Turn, reply: Reply, backend: str | None = None) -> Answer:
        sentiment = None
        if self._rt.available(Capability.SENTIMENT):
            try:
                sentiment = self.analyze(reply.text)
            except Exception as exc:  # a plugin's own error too: the reply is paid for
                _quietly("reply_sentiment_failed", exc)
        dialogue_id = _store_turn(self._rt, turn, reply, sentiment)
        return Answer(
            reply, dialogue_id, sentiment=sentiment, assistant=turn.assistant, backend=backend
        )

    def stream(
        self,
        text: str | Message,
        *,
        dialogue: str | None = None,
        assistant: str | None = None,
        images: Iterable[ImageSource] = (),
        options: ChatOptions | None = None,
        model: str | None = None,
    ) -> ReplyStream:
        """Like :meth:`ask`, but yields the reply as it arrives.

        Iterate the returned :class:`ReplyStream` for :class:`StreamDelta` objects; once it is
        exhausted, the dialogue is stored and ``stream.answer`` is set. The stream is retried,
        and falls back to the assistant's ``fallbacks``, only before its first delta.
        """
        turn, name, chat = self._turn(text, dialogue, assistant, images, options, model)
        return ReplyStream(self, turn, name, chat)

    def models(self, *, backend: str | None = None) -> tuple[ModelInfo, ...]:
        """The models the chat backend offers.

        A model the configuration uses (an assistant's ``model``, or the backend's own
        default) that the list gives a ``shutdown_date`` is logged, once per process, as the
        warning ``model_shutdown_scheduled``, naming the setting to change. This is the only
        place the dates are checked: chat calls never list models for it.
        """
        name, chat = self._rt.backend(Capability.CHAT, backend)
        found = tuple(self._run(Call(Capability.CHAT, name, "models"), chat.models))
        self._shutdown_notices(name, chat, found)
        return found

    # --- vision and sentiment ----------------------------------------------------------------

    def describe_image(
        self,
        *images: ImageSource,
        prompt: str | None = None,
        schema: Mapping[str, Any] | None = None,
        detail: str = "auto",
        model: str | None = None,
    ) -> Reply:
        """Describe one or several images; with ``schema``, ``reply.data`` is the parsed JSON."""
        name, vision = self._rt.backend(Capability.VISION)
        request = _vision_request(
            _images(self.settings, vision, images), prompt, schema, detail, model
        )
        call = Call(Capability.VISION, name, "describe", model=model, tokens=1000 * len(images))
        reply: Reply = self._run(call, lambda: vision.describe(request), request)
        self._rt.usage.settle(self._rt, reply)
        return reply

    def analyze(self, text: str) -> Sentiment:
        """The sentiment of ``text``."""
        name, analyzer = self._rt.backend(Capability.SENTIMENT)
        result: Sentiment = self._run(
            Call(Capability.SENTIMENT, name, "analyze"), lambda: analyzer.analyze(text), text
        )
        return result

    # --- dialogues ---------------------------------------------------------------------------

    def dialogues(
        self,
        *,
        assistant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        """Stored dialogues, newest first, one page at a time."""
        name, store = self._store()
        page: Page = self._run(
            Call(Capability.STORAGE, name, "list_dialogues"),
            lambda: store.list_dialogues(
                assistant=assistant, since=since, until=until, limit=limit, offset=offset
            ),
        )
        return page

    def dialogue(self, dialogue_id: str, *, last: int | None = None) -> Dialogue:
        """One stored dialogue with its messages (with ``last``, only its last ``last``)."""
        name, store = self._store()
        dialogue: Dialogue = self._run(
            Call(Capability.STORAGE, name, "load_dialogue", dialogue_id=dialogue_id),
            _loader(store, dialogue_id, last),
        )
        return dialogue

    def delete_dialogue(self, dialogue_id: str) -> None:
        name, store = self._store()
        self._run(
            Call(Capability.STORAGE, name, "delete_dialogue", dialogue_id=dialogue_id),
            lambda: store.delete_dialogue(dialogue_id),
        )

    def _all_dialogues(self, assistant: str | None, since: datetime | None) -> Iterator[Dialogue]:
        offset: int | None = 0
        while offset is not None:
            page = self.dialogues(assistant=assistant, since=since, limit=100, offset=offset)
            for info in page.items:
                try:
                    yield self.dialogue(info.id)
                except (CorruptRecordError, RecordNotFoundError) as exc:  # damaged, or deleted
                    _quietly("dialogue_skipped", exc)
            offset = page.next_offset

    # --- usage -------------------------------------------------------------------------------

    def usage(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[UsageRecord, ...]:
        """The recorded usage of chat and vision calls with ``since <= at < until``, oldest
        first (see ``docs/usage.md``).

        :raises ConfigError: when the store keeps no usage records.
        """
        return self._rt.usage.list_usage(self._rt, since, until)

    def usage_report(
        self, *, since: datetime | None = None, until: datetime | None = None, by: str = "day"
    ) -> UsageReport:
        """Totals of the recorded usage (calls, tokens, cost), grouped ``by`` day (UTC),
        assistant, model or backend."""
        return UsageReport.of(self.usage(since=since, until=until), by=by, since=since, until=until)

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
    ) -> TrainingJob:
        """Validate, upload and start a training job, and record it in the store.

        Uploads and job creation are never retried blindly (a retried create could start a
        second paid job): only a rate-limit refusal is retried.

        When the job cannot be started after the data was uploaded, the uploaded files are
        deleted if the trainer can (``delete_file``) and the job surely was not created; the
        error's hint names the files either way.

        :param on_progress: called with an :class:`~modelport.types.UploadProgress` as each
            file starts to upload, as its bytes go out (when the trainer reports them) and
            when it is uploaded (with its file id).
        """
        model = _base_model(self.settings, base_model)
        data = self._checked(dataset, model, hyperparameters)
        check = (
            self._checked(validation, model, hyperparameters) if validation is not None else None
        )
        name, trainer = self._rt.backend(Capability.TRAINING)
        upload = Call(Capability.TRAINING, name, "upload", model=model, idempotent=False)
        uploads = _Uploads(on_progress)

        def send(file: str, part: TrainingDataset) -> str:
            kwargs = uploads.begin(file, trainer.upload)
            return uploads.done(
                file, self._run(upload, lambda: trainer.upload(part, **kwargs), part)
            )

        file_id = send("training", data)
        try:
            check_id = send("validation", check) if check else None
            spec = JobSpec(model, file_id, check_id, suffix, dict(hyperparameters or {}))
            uploads.starting = True
            job: TrainingJob = self._run(
                attrs.evolve(upload, operation="start"), lambda: trainer.start(spec), spec
            )
        except ModelportError as exc:
            deleted: list[str] = []
            for orphan in uploads.to_delete(exc, trainer, "delete_file"):
                try:
                    self._run(
                        Call(Capability.TRAINING, name, "delete_file"),
                        functools.partial(trainer.delete_file, orphan),
                    )
                except Exception as error:  # never hide why the job did not start
                    get_logger().warning("upload_not_deleted", file_id=orphan, error=str(error))
                else:
                    deleted.append(orphan)
            uploads.explain(exc, deleted)
            raise
        self._save_record(_new_record(job, name, model, data, description))
        return job

    def check_dataset(
        self,
        dataset: DatasetSource,
        *,
        base_model: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
    ) -> DatasetReport:
        """Load and validate training data without uploading it: examples, tokens, problems
        (no base model, from ``base_model`` or the default assistant, is one), and the
        estimated cost when the training backend knows its price.

        :raises TrainingDataError: when the file cannot be read as training data at all.
        """
        return self._report(_dataset(self.settings, dataset), base_model, hyperparameters)

    def dynamic_train(
        self,
        *,
        assistant: str | None = None,
        since: datetime | None = None,
        labels: Collection[SentimentLabel | str] | None = None,
        repeat: bool = False,
        **train_kwargs: Any,
    ) -> TrainingJob:
        """Train on stored dialogues (the original ``dynamic_train``), filtered by assistant,
        by date and by the sentiment labels of the replies; see :meth:`dialogue_dataset`."""
        dataset = self.dialogue_dataset(
            assistant=assistant, since=since, labels=labels, repeat=repeat
        )
        train_kwargs.setdefault("base_model", self.assistant(assistant).model)
        return self.train(dataset, **train_kwargs)

    def dialogue_dataset(
        self,
        *,
        assistant: str | None = None,
        since: datetime | None = None,
        labels: Collection[SentimentLabel | str] | None = None,
        repeat: bool = False,
    ) -> TrainingDataset:
        """Stored dialogues as training examples (one per dialogue), each with its own
        assistant's instructions as the system message (the default assistant's when that one
        is no longer configured).

        Only replies whose sentiment label is in ``labels`` are learnt (``None``: all), and,
        unless ``repeat``, none that an earlier job (not failed or cancelled) learnt already;
        see :func:`modelport.training.dataset_from_dialogues`.
        """
        exclude = set() if repeat else _learnt(self.jobs())
        return dataset_from_dialogues(
            self._all_dialogues(assistant, since),
            instructions=lambda name: self.assistant(name).instructions,
            labels=labels,
            exclude=exclude,
        )

    def _save_record(self, record: JobRecord) -> None:
        """Keep the record of a job; a store that cannot is logged, never raised: the job
        runs (and bills) whether or not its record is kept."""
        if self._rt.available(Capability.STORAGE):
            name, store = self._store()
            try:
                self._run(
                    Call(Capability.STORAGE, name, "save_job"), lambda: store.save_job(record)
                )
            except Exception as exc:
                _job_not_recorded(record, exc)

    def _record(self, job_id: str) -> JobRecord | None:
        if not self._rt.available(Capability.STORAGE):
            return None
        name, store = self._store()
        try:
            record: JobRecord = self._run(
                Call(Capability.STORAGE, name, "load_job"), lambda: store.load_job(job_id)
            )
        except RecordNotFoundError:
            return None
        return record

    def _trainer(self, record: JobRecord | None) -> tuple[str, Any]:
        return self._rt.backend(Capability.TRAINING, record.backend if record else None)

    def job(self, job_id: str) -> TrainingJob:
        """A job's current state from its backend; its stored record is brought up to date."""
        record = self._record(job_id)
        name, trainer = self._trainer(record)
        job: TrainingJob = self._run(
            Call(Capability.TRAINING, name, "get_job"), lambda: trainer.get_job(job_id)
        )
        if record is not None and record.status != job.status:
            self._save_record(record.with_status(job))
        return job

    def jobs(self) -> tuple[JobRecord, ...]:
        """Every job recorded in the store (works offline)."""
        name, store = self._store()
        return tuple(self._run(Call(Capability.STORAGE, name, "list_jobs"), store.list_jobs))

    def remote_jobs(self, *, limit: int = 20) -> tuple[TrainingJob, ...]:
        """The jobs the training backend knows of."""
        name, trainer = self._rt.backend(Capability.TRAINING)
        call = Call(Capability.TRAINING, name, "list_jobs")
        return tuple(self._run(call, lambda: trainer.list_jobs(limit=limit)))

    def cancel_job(self, job_id: str) -> TrainingJob:
        record = self._record(job_id)
        name, trainer = self._trainer(record)
        job: TrainingJob = self._run(
            Call(Capability.TRAINING, name, "cancel_job"), lambda: trainer.cancel_job(job_id)
        )
        if record is not None:
            self._save_record(record.with_status(job))
        return job

    def job_events(self, job_id: str) -> tuple[JobEvent, ...]:
        name, trainer = self._trainer(self._record(job_id))
        call = Call(Capability.TRAINING, name, "job_events")
        return tuple(self._run(call, lambda: trainer.job_events(job_id)))

    def _events_quietly(self, job_id: str) -> tuple[JobEvent, ...]:
        try:
            return self.job_events(job_id)
        except BackendError as exc:  # events are a courtesy: waiting goes on without them
            get_logger().warning("job_events_unavailable", job_id=job_id, error=str(exc))
            return ()

    def wait_job(
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
        """Poll until the job finishes (backing off from ``poll_s`` to ``max_poll_s``).

        The job's stored record follows every status change. A poll that fails with a
        retryable error (5xx, timeout, lost connection, rate limit), once the retry policy has
        given up on it, is logged and tried again later, backing off: a short outage does not
        end the wait.

        :param on_update: called with the job whenever its status changes.
        :param on_event: called with each new event of the job's log, oldest first.
        :param on_poll: called after each poll with the job and the seconds until the next.
        :param max_outage_s: how long the backend may keep failing before waiting stops
            (``None``: until ``timeout_s``).
        :raises WaitTimeoutError: after ``timeout_s``, or after ``max_outage_s`` of failures;
            the job keeps running, and the message says how to resume.
        """
        progress = _Progress(on_update, on_event)
        while True:
            try:
                job = self.job(job_id)
            except BackendError as exc:
                if not exc.retryable:
                    raise
                delay = progress.failed(job_id, exc, poll_s, max_poll_s, timeout_s, max_outage_s)
                if on_poll is not None and progress.latest is not None:
                    on_poll(progress.latest, delay)
                self._rt.sleep(delay)
                continue
            if on_event is not None:
                progress.events(self._events_quietly(job_id))
            progress.job(job)
            if job.status.is_terminal:
                return job
            delay = progress.next_delay(job, poll_s, max_poll_s, timeout_s)
            if on_poll is not None:
                on_poll(job, delay)
            self._rt.sleep(delay)


_END: Any = object()


class ReplyStream(Iterator[StreamDelta]):
    """The deltas of a streamed reply. After the last one, ``answer`` holds the stored answer.

    Until the first delta, a failing backend is retried, then left for the assistant's next
    fallback; after it, a failure is raised (the deltas already given cannot be taken back).
    """

    def __init__(self, hub: Hub, turn: _Turn, backend: str, chat: Any) -> None:
        self._hub, self._turn = hub, turn
        self._call = hub._chat_call(turn, "stream", backend)
        self._chain = _Chain(hub._rt, turn, self._call, (backend, chat))
        self._backend, self._request = backend, turn.request  # the serving ones, once open
        self._deltas: list[StreamDelta] = []
        self._source: Iterator[StreamDelta] | None = None
        self._started = time.perf_counter()
        self._attempts = 0
        self._finished = False  # completed, broken or closed: no more deltas, nothing stored
        self.answer: Answer | None = None

    def _open(self) -> Iterator[StreamDelta]:
        def first(attempt: _Attempt) -> tuple[Iterator[StreamDelta], StreamDelta]:
            source = iter(attempt.chat.stream(attempt.request))
            try:
                return source, next(source, _END)
            except BaseException:
                _close(source)
                raise

        attempt, ((source, head), self._attempts) = self._chain.run(
            lambda a: self._hub._rt.call(a.call, functools.partial(first, a), observe=False)
        )
        self._backend, self._request, self._call = attempt.name, attempt.request, attempt.call
        if head is not _END:
            self._deltas.append(head)
        return source

    def __next__(self) -> StreamDelta:
        if self._finished:
            raise StopIteration
        if self._source is None:
            self._source = self._open()
            if self._deltas:
                return self._deltas[0]
        try:
            delta = next(self._source)
        except StopIteration:
            self._finished = True
            self._complete()
            raise
        except Exception as exc:
            self._finished = True
            self._hub._rt.failed_after_start(self._call, exc, self._attempts)
            raise
        self._deltas.append(delta)
        return delta

    def _complete(self) -> None:
        reply = _assemble(self._deltas, self._request.model)
        self._hub._rt.succeeded(self._call, self._request, reply, self._started, self._attempts)
        self.answer = self._hub._finish(self._turn, reply, self._backend)

    def close(self) -> None:
        """Stop early; nothing is stored."""
        self._finished = True
        if self._source is not None:
            _close(self._source)

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(d.text for d in self._deltas)


def _close(source: object) -> None:
    close = getattr(source, "close", None)
    if callable(close):
        close()
