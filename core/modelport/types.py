"""The data model: frozen attrs value objects shared by the core, the backends and the host.

Collections are tuples and objects never change; derive a changed copy with ``attrs.evolve``.
Everything here is (un)structured by the one converter in :mod:`modelport.serialization`.
"""

from __future__ import annotations

import enum
import mimetypes
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, TypeAlias

import attrs

from .errors import ImageError

__all__ = [
    "Answer",
    "CallFailure",
    "Capability",
    "ChatOptions",
    "ChatRequest",
    "Dialogue",
    "DialogueInfo",
    "Evidence",
    "Exchange",
    "Image",
    "ImagePart",
    "JobEvent",
    "JobRecord",
    "JobSpec",
    "JobStatus",
    "Message",
    "ModelInfo",
    "Page",
    "Part",
    "Reply",
    "Role",
    "Sentiment",
    "SentimentLabel",
    "StatusChange",
    "StreamDelta",
    "TextPart",
    "TrainingDataset",
    "TrainingExample",
    "TrainingJob",
    "Turn",
    "UploadProgress",
    "Usage",
    "UsageRecord",
    "UsageReport",
    "UsageTotal",
    "VisionRequest",
    "split_turns",
    "utcnow",
]

Role: TypeAlias = Literal["system", "user", "assistant"]
ROLES: frozenset[str] = frozenset({"system", "user", "assistant"})


def _messages(value: Iterable[Message]) -> tuple[Message, ...]:
    return tuple(value)


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC (the only kind of time modelport stores)."""
    return datetime.now(UTC)


class Capability(enum.StrEnum):
    """The five things a backend can do."""

    CHAT = "chat"
    VISION = "vision"
    SENTIMENT = "sentiment"
    STORAGE = "storage"
    TRAINING = "training"


# --- images ----------------------------------------------------------------------------------

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


def sniff_media_type(data: bytes) -> str | None:
    """The image media type from the first bytes, or ``None`` when unrecognised."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    return None


@attrs.frozen(repr=False)
class Image:
    """An image: its bytes, or a URL for backends that fetch images themselves.

    Use :meth:`from_path`, :meth:`from_bytes` or :meth:`from_url`. The repr shows the size, not
    the bytes.
    """

    data: bytes | None = None
    url: str | None = None
    media_type: str | None = None
    source: str = "<bytes>"

    def __attrs_post_init__(self) -> None:
        if (self.data is None) == (self.url is None):
            raise ImageError("give exactly one of data or url", source=self.source)

    def __repr__(self) -> str:
        if self.url is not None:
            return f"Image(url={self.url!r})"
        assert self.data is not None
        return f"Image({self.media_type or 'unknown type'}, {len(self.data)} bytes, {self.source})"

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>") -> Image:
        """Wrap image bytes, recognising PNG, JPEG, GIF, WebP and BMP by their first bytes."""
        if not data:
            raise ImageError("the image is empty (0 bytes)", source=source)
        media_type = sniff_media_type(data)
        if media_type is None:
            raise ImageError(
                "not a recognised image (expected PNG, JPEG, GIF, WebP or BMP)",
                source=source,
                hint="check the file is an image and not, say, text or HTML named .jpg",
            )
        return cls(data=data, media_type=media_type, source=source)

    @classmethod
    def from_path(cls, path: str | Path) -> Image:
        """Read an image file."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageError("no such file", source=str(path)) from None
        except OSError as exc:
            raise ImageError(f"cannot read: {exc.strerror}", source=str(path)) from exc
        return cls.from_bytes(data, source=str(path))

    @classmethod
    def from_url(cls, url: str) -> Image:
        """Refer to an image by ``http(s)://`` or ``data:`` URL, for backends that accept URLs."""
        if not url.startswith(("http://", "https://", "data:")):
            raise ImageError("an image URL must start with http://, https:// or data:", source=url)
        media_type = mimetypes.guess_type(url)[0] if not url.startswith("data:") else None
        return cls(url=url, media_type=media_type, source=url)


# --- messages --------------------------------------------------------------------------------


@attrs.frozen
class TextPart:
    """Text in a message."""

    text: str


@attrs.frozen
class ImagePart:
    """An image in a message, with the detail level the backend should look at it with."""

    image: Image
    detail: Literal["auto", "low", "high"] = "auto"


Part: TypeAlias = TextPart | ImagePart


def _to_parts(value: str | Iterable[Part]) -> tuple[Part, ...]:
    if isinstance(value, str):
        return (TextPart(value),)
    return tuple(value)


def _check_role(_inst: object, _attr: attrs.Attribute[str], value: str) -> None:
    if value not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}, not {value!r}")


@attrs.frozen
class Usage:
    """Tokens a call consumed."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class SentimentLabel(enum.StrEnum):
    POSITIVE = "positive"
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    MIXED = "mixed"


@attrs.frozen
class Evidence:
    """One term that moved a sentiment score, and by how much."""

    term: str
    weight: float


def _check_score(_inst: object, _attr: attrs.Attribute[float], value: float) -> None:
    if not -1.0 <= value <= 1.0:
        raise ValueError(f"sentiment score must be in [-1, 1], not {value}")


def _evidence(value: Iterable[Evidence]) -> tuple[Evidence, ...]:
    return tuple(value)


@attrs.frozen
class Sentiment:
    """The mood of a text: a label, a score in [-1, 1], and the evidence for it."""

    label: SentimentLabel = attrs.field(converter=SentimentLabel)
    score: float = attrs.field(validator=_check_score)
    evidence: tuple[Evidence, ...] = attrs.field(default=(), converter=_evidence)
    analyzer: str | None = None


@attrs.frozen
class Message:
    """One message of a dialogue.

    ``Message("user", "hello")`` is shorthand for one text part. ``created_at``, ``model``,
    ``sentiment`` and ``usage`` are recorded by the hub for stored dialogues (the last three on
    replies); backends ignore them.
    """

    role: Role = attrs.field(validator=_check_role)
    parts: tuple[Part, ...] = attrs.field(converter=_to_parts)
    created_at: datetime | None = None
    model: str | None = None
    sentiment: Sentiment | None = None
    usage: Usage | None = None

    @property
    def text(self) -> str:
        """The text parts joined by blank lines."""
        return "\n\n".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ImagePart))


# --- chat ------------------------------------------------------------------------------------

#: The values of :attr:`ChatOptions.reasoning_effort`, least effort first.
REASONING_EFFORTS: tuple[str, ...] = ("none", "minimal", "low", "medium", "high")


def _check_effort(_inst: object, attr: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and value not in REASONING_EFFORTS:
        choices = ", ".join(repr(e) for e in REASONING_EFFORTS)
        raise ValueError(f"'{attr.name}' must be one of {choices}: {value!r}")


@attrs.frozen
class ChatOptions:
    """Generation options. ``None`` leaves a setting to the backend's default.

    :ivar temperature: sampling temperature; lower is more deterministic.
    :ivar top_p: nucleus sampling: only the most likely tokens summing to this probability.
    :ivar max_tokens: the most tokens the reply may have.
    :ivar stop: texts that end the reply when generated.
    :ivar seed: a seed for backends that can repeat a sampling.
    :ivar json_schema: asks for structured output matching this JSON schema; the parsed
        result is ``reply.data``.
    :ivar reasoning_effort: how hard a reasoning model thinks before it answers: ``"none"``,
        ``"minimal"``, ``"low"``, ``"medium"`` or ``"high"``; unset leaves it to the model.
        Reasoning models may refuse sampling options (``temperature``, ``top_p``, ...)
        unless it is ``"none"``; backends leave out what the model refuses.
    :ivar extra: backend-specific options, passed through unchanged.
    """

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    seed: int | None = None
    json_schema: Mapping[str, Any] | None = attrs.field(default=None, hash=False)
    reasoning_effort: str | None = attrs.field(default=None, validator=_check_effort)
    extra: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def merged(self, other: ChatOptions | None) -> ChatOptions:
        """These options with every setting ``other`` gives laid over them."""
        if other is None:
            return self
        changes: dict[str, Any] = {}
        for field in attrs.fields(ChatOptions):
            value = getattr(other, field.name)
            if field.name == "extra":
                changes["extra"] = {**self.extra, **other.extra}
            elif value not in (None, ()):
                changes[field.name] = value
        return attrs.evolve(self, **changes)


@attrs.frozen
class ChatRequest:
    """What a chat backend is asked: the messages (system first, if any), the model, options."""

    messages: tuple[Message, ...] = attrs.field(converter=_messages)
    model: str | None = None
    options: ChatOptions = ChatOptions()

    def estimated_tokens(self) -> int:
        """A rough token count (4 characters a token) used by the client-side limiter."""
        chars = sum(len(m.text) for m in self.messages)
        return chars // 4 + 1 + (self.options.max_tokens or 0)


@attrs.frozen
class Reply:
    """A backend's answer. ``data`` holds the parsed JSON when structured output was asked for."""

    text: str
    model: str
    usage: Usage = Usage()
    finish_reason: str | None = None
    request_id: str | None = None
    data: Any = attrs.field(default=None, hash=False)


@attrs.frozen
class StreamDelta:
    """One piece of a streamed reply. The last delta carries ``finish_reason`` and ``usage``."""

    text: str = ""
    model: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None


def _images(value: Iterable[Image]) -> tuple[Image, ...]:
    return tuple(value)


@attrs.frozen
class VisionRequest:
    """What a vision backend is asked: images, a prompt, and optionally a JSON schema."""

    images: tuple[Image, ...] = attrs.field(converter=_images)
    prompt: str = "Describe this image."
    model: str | None = None
    detail: Literal["auto", "low", "high"] = "auto"
    options: ChatOptions = ChatOptions()


@attrs.frozen
class ModelInfo:
    """A model a backend offers.

    :ivar shutdown_date: the day the vendor stops serving the model, when it says; the hub
        warns when a configured model has one (see :meth:`modelport.Hub.models`).
    """

    id: str
    backend: str
    owned_by: str | None = None
    created_at: datetime | None = None
    shutdown_date: date | None = None


# --- dialogues -------------------------------------------------------------------------------


@attrs.frozen
class Turn:
    """Messages appended together, as one record: a question and its reply.

    Stores keep a turn in one write, so a crash leaves all of it or none of it, and the
    messages of concurrent turns never interleave.
    """

    messages: tuple[Message, ...] = attrs.field(converter=_messages)


def split_turns(messages: Sequence[Message]) -> Iterator[tuple[Message, ...]]:
    """``messages`` grouped as the hub appends them: a question with its reply as one turn,
    any other message alone (stores that copy or import a dialogue write it this way)."""
    n = 0
    while n < len(messages):
        if n + 1 < len(messages) and (messages[n].role, messages[n + 1].role) == (
            "user",
            "assistant",
        ):
            yield messages[n], messages[n + 1]
            n += 2
        else:
            yield (messages[n],)
            n += 1


@attrs.frozen
class DialogueInfo:
    """A dialogue's summary, as listed by a store."""

    id: str
    created_at: datetime
    updated_at: datetime
    assistant: str | None = None
    title: str | None = None
    message_count: int = 0


@attrs.frozen
class Dialogue:
    """A dialogue with all its messages."""

    id: str
    created_at: datetime
    messages: tuple[Message, ...] = attrs.field(default=(), converter=_messages)
    assistant: str | None = None
    title: str | None = None


def _infos(value: Iterable[DialogueInfo]) -> tuple[DialogueInfo, ...]:
    return tuple(value)


@attrs.frozen
class Page:
    """One page of a listing, and whether more follow."""

    items: tuple[DialogueInfo, ...] = attrs.field(converter=_infos)
    offset: int = 0
    total: int | None = None

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.items)
        if self.total is None:
            return end if self.items else None
        return end if end < self.total else None


@attrs.frozen
class Answer:
    """What :meth:`modelport.Hub.ask` returns: the reply, its sentiment, and where it is kept.

    ``backend`` is the chat backend that served the reply (a fallback's, when the assistant's
    own failed; the model is ``reply.model``).
    """

    reply: Reply
    dialogue_id: str
    sentiment: Sentiment | None = None
    assistant: str | None = None
    backend: str | None = None

    @property
    def text(self) -> str:
        return self.reply.text


# --- training --------------------------------------------------------------------------------


class JobStatus(enum.StrEnum):
    """A training job's status, the same for every backend."""

    QUEUED = "queued"
    VALIDATING = "validating"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def _indices(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted(set(value)))


@attrs.frozen
class TrainingExample:
    """One training conversation; where it came from is kept for error messages.

    ``context`` holds the indices of assistant messages that are there as context only and
    are not to be learnt (written as ``"weight": 0`` in JSONL): exchanges already trained on,
    or filtered out by sentiment.
    """

    messages: tuple[Message, ...] = attrs.field(converter=_messages)
    origin: str | None = None
    context: tuple[int, ...] = attrs.field(default=(), converter=_indices)


def _examples(value: Iterable[TrainingExample]) -> tuple[TrainingExample, ...]:
    return tuple(value)


@attrs.frozen
class TrainingDataset:
    """Examples ready to upload, and a description of their source.

    ``warnings`` says what was left out while building it (images, empty questions);
    :func:`modelport.training.check_dataset` reports them.
    """

    examples: tuple[TrainingExample, ...] = attrs.field(converter=_examples)
    source: str = "<memory>"
    warnings: tuple[str, ...] = attrs.field(default=(), converter=_strings)

    def __len__(self) -> int:
        return len(self.examples)


@attrs.frozen
class JobSpec:
    """What a trainer is asked to start."""

    base_model: str
    training_file: str
    validation_file: str | None = None
    suffix: str | None = None
    hyperparameters: Mapping[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class UploadProgress:
    """How far the upload of training data has got (see ``on_progress`` of
    :meth:`modelport.Hub.train`).

    Each upload reports a first event (nothing sent yet), byte counts while the trainer can
    say them, and a last event carrying the backend's ``file_id``.

    :ivar file: which data: ``"training"`` or ``"validation"``.
    :ivar sent: bytes sent so far.
    :ivar total: bytes to send, when the trainer says (``None`` otherwise).
    :ivar file_id: the uploaded file's id on the backend; set on the last event only.
    """

    file: str
    sent: int = 0
    total: int | None = None
    file_id: str | None = None

    @property
    def done(self) -> bool:
        """Whether the file is uploaded (the last event of this upload)."""
        return self.file_id is not None


@attrs.frozen
class TrainingJob:
    """A training job as its backend reports it.

    :ivar fine_tuned_model: the model id the backend serves the result as, once it has one.
    :ivar result: where the result lives: a model id, or the path of an artifact (a local
        trainer's adapter directory); ``None`` until the job succeeded. A backend whose result
        is a model it serves may set only ``fine_tuned_model`` (see :attr:`outcome`).
    :ivar step: the training step reached, while the backend says.
    :ivar total_steps: the steps the job will take, when known.
    :ivar loss: the training loss at ``step``.
    :ivar seconds_left: the backend's estimate of the time left.
    """

    id: str
    backend: str
    base_model: str
    status: JobStatus = attrs.field(converter=JobStatus)
    created_at: datetime | None = None
    finished_at: datetime | None = None
    fine_tuned_model: str | None = None
    training_file: str | None = None
    error: str | None = None
    result: str | None = None
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    seconds_left: float | None = None

    @property
    def outcome(self) -> str | None:
        """Where the result lives: ``result``, else ``fine_tuned_model``."""
        return self.result or self.fine_tuned_model

    def progress(self) -> str | None:
        """The progress fields as one line (``"step 3/10, loss 1.2345, about 42s left"``), or
        ``None`` when the backend reports none."""
        parts = []
        if self.step is not None:
            total = f"/{self.total_steps}" if self.total_steps else ""
            parts.append(f"step {self.step}{total}")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.seconds_left is not None and not self.status.is_terminal:
            parts.append(f"about {_seconds(self.seconds_left)} left")
        return ", ".join(parts) or None


def _seconds(value: float) -> str:
    seconds = max(int(value), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@attrs.frozen
class JobEvent:
    """One event in a training job's log."""

    created_at: datetime
    message: str
    level: str = "info"


@attrs.frozen
class StatusChange:
    status: JobStatus = attrs.field(converter=JobStatus)
    at: datetime


def _history(value: Iterable[StatusChange]) -> tuple[StatusChange, ...]:
    return tuple(value)


@attrs.frozen
class JobRecord:
    """A training job as modelport remembers it (the original ``save_job_id``).

    ``backend`` is the training backend that runs the job: ``jobs show``, ``wait``,
    ``cancel`` and ``events`` go to it, whatever ``[capabilities] training`` says now.
    ``history`` holds every status the hub saw (the last one is :attr:`status`); for a
    backend without an events endpoint, the hub makes the job's events from it.
    ``result`` is where the trained result lives once the job succeeded: a model id, or an
    artifact path (see :attr:`TrainingJob.result`).
    """

    job_id: str
    backend: str
    base_model: str
    source: str
    description: str = ""
    history: tuple[StatusChange, ...] = attrs.field(default=(), converter=_history)
    fine_tuned_model: str | None = None
    #: Keys of the exchanges the job learns from (see :func:`modelport.training.exchange_key`),
    #: so later datasets built from dialogues can leave them out.
    exchanges: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    result: str | None = None

    @property
    def status(self) -> JobStatus | None:
        return self.history[-1].status if self.history else None

    def with_status(self, job: TrainingJob, at: datetime | None = None) -> JobRecord:
        """This record updated from the backend's view of the job (adds a status change)."""
        history = self.history
        if not history or history[-1].status != job.status:
            history = (*history, StatusChange(job.status, at or utcnow()))
        return attrs.evolve(
            self,
            history=history,
            fine_tuned_model=job.fine_tuned_model or self.fine_tuned_model,
            result=job.outcome or self.result,
        )

    def is_behind(self, job: TrainingJob) -> bool:
        """Whether ``job`` (the backend's view) says more than this record: another status,
        or a result the record does not hold yet."""
        return self.status != job.status or (job.outcome is not None and job.outcome != self.result)

    def status_events(self) -> tuple[JobEvent, ...]:
        """The job's events made from its status changes (``"status: queued → running"``),
        for a backend that has no events of its own."""
        events = []
        previous: JobStatus | None = None
        for change in self.history:
            events.append(status_event(previous, change.status, change.at))
            previous = change.status
        return tuple(events)


def status_event(previous: JobStatus | None, status: JobStatus, at: datetime) -> JobEvent:
    """The event of a job's status change: ``"status: queued → running"`` (or
    ``"status: queued"`` for the first status seen)."""
    moved = f"{previous.value} → {status.value}" if previous is not None else status.value
    return JobEvent(at, f"status: {moved}", "error" if status is JobStatus.FAILED else "info")


# --- observation -----------------------------------------------------------------------------


@attrs.frozen
class Exchange:
    """A successful backend call, as observers see it (``modelport_on_exchange``).

    ``request`` and ``result`` are the value objects passed and returned (e.g. a
    :class:`ChatRequest` and a :class:`Reply`); they never contain API keys.
    """

    capability: Capability
    backend: str
    operation: str
    request: Any = attrs.field(hash=False)
    result: Any = attrs.field(hash=False)
    duration_s: float
    attempts: int = 1
    model: str | None = None
    usage: Usage | None = None
    dialogue_id: str | None = None
    assistant: str | None = None


@attrs.frozen
class CallFailure:
    """A failed backend attempt, as observers see it (``modelport_on_error``)."""

    capability: Capability
    backend: str
    operation: str
    error: BaseException = attrs.field(hash=False, eq=False)
    attempt: int
    will_retry: bool
    model: str | None = None
    dialogue_id: str | None = None


@attrs.frozen(kw_only=True)
class UsageRecord:
    """One backend call's usage, as the hub records it in the store (see ``modelport usage``).

    :ivar at: when the call finished (timezone-aware).
    :ivar capability: what was called (``chat``, ``vision``, ...).
    :ivar backend: the backend that served the call.
    :ivar operation: the protocol method (``complete``, ``stream``, ``describe``, ...).
    :ivar model: the model that answered, when known.
    :ivar assistant: the assistant profile the call was made for, if any.
    :ivar dialogue_id: the dialogue the call was part of, if any.
    :ivar prompt_tokens: tokens sent.
    :ivar completion_tokens: tokens received.
    :ivar cost_usd: the estimated cost from the price table; ``None`` when no price is known.
    """

    at: datetime
    capability: Capability = attrs.field(converter=Capability)
    backend: str
    operation: str
    model: str | None = None
    assistant: str | None = None
    dialogue_id: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None


#: How ``modelport usage --by`` groups records: the key of each record.
_USAGE_GROUPS: Mapping[str, Callable[[UsageRecord], str]] = {
    "day": lambda r: r.at.astimezone(UTC).date().isoformat(),
    "assistant": lambda r: r.assistant or "-",
    "model": lambda r: r.model or "-",
    "backend": lambda r: r.backend,
}


@attrs.frozen(kw_only=True)
class UsageTotal:
    """The totals of a group of usage records.

    :ivar key: the group (a day ``YYYY-MM-DD`` in UTC, an assistant, a model or a backend;
        ``"-"`` for records without one; ``"total"`` for the whole report).
    :ivar calls: how many calls.
    :ivar prompt_tokens: tokens sent.
    :ivar completion_tokens: tokens received.
    :ivar cost_usd: the cost of the calls whose price is known.
    :ivar unknown_cost_calls: calls whose price is not known (not in ``cost_usd``).
    """

    key: str
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    unknown_cost_calls: int = 0

    @classmethod
    def of(cls, key: str, records: Iterable[UsageRecord]) -> UsageTotal:
        calls = prompt = completion = unknown = 0
        cost = 0.0
        for r in records:
            calls += 1
            prompt += r.prompt_tokens
            completion += r.completion_tokens
            if r.cost_usd is None:
                unknown += 1
            else:
                cost += r.cost_usd
        return cls(
            key=key,
            calls=calls,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=cost,
            unknown_cost_calls=unknown,
        )


@attrs.frozen(kw_only=True)
class UsageReport:
    """Usage totals grouped one way (``hub.usage_report``, ``modelport usage``).

    :ivar by: how the rows are grouped: ``"day"``, ``"assistant"``, ``"model"`` or
        ``"backend"``.
    :ivar since: the start of the range (inclusive), if any.
    :ivar until: the end of the range (exclusive), if any.
    :ivar rows: one total per group, sorted by key.
    :ivar total: the totals of every record.
    """

    by: str
    since: datetime | None = None
    until: datetime | None = None
    rows: tuple[UsageTotal, ...] = ()
    total: UsageTotal = UsageTotal(key="total")

    @classmethod
    def of(
        cls,
        records: Iterable[UsageRecord],
        *,
        by: str = "day",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> UsageReport:
        """Group ``records`` by ``by``.

        :raises ValueError: for an unknown ``by``.
        """
        try:
            key = _USAGE_GROUPS[by]
        except KeyError:
            raise ValueError(f"by must be one of {', '.join(_USAGE_GROUPS)}, not {by!r}") from None
        records = list(records)
        groups: dict[str, list[UsageRecord]] = {}
        for r in records:
            groups.setdefault(key(r), []).append(r)
        return cls(
            by=by,
            since=since,
            until=until,
            rows=tuple(UsageTotal.of(k, groups[k]) for k in sorted(groups)),
            total=UsageTotal.of("total", records),
        )
