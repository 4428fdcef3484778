"""What a backend implements, one protocol per capability.

A plugin offers backends through the ``modelport_register_backends`` hook; the core builds the
chosen one with its factory and calls it through these protocols. Sync methods are required.
The ``Async*`` twins are optional: when a backend lacks them, the async hub runs the sync
method in a worker thread. Storage and sentiment are sync only (the async hub offloads them).

Backends raise :class:`modelport.errors.BackendError` subclasses (mapped from their vendor's
errors, chained with ``from``) and never retry by themselves: the core's policy does.

Beyond the required protocols, a backend may implement optional ones, each a single attribute
or method that tells the core more about it (:class:`HasMediaTypes`, :class:`HasChatPrice`,
:class:`DeletesFiles`, :class:`Closable`, ...). They are runtime-checkable: the core asks
``implements(backend, HasMinExamples)`` (what ``isinstance`` answers, without its cost) and
uses the documented default when the answer is no.
A backend does not inherit from them; having the attribute with the right type is enough.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, Protocol, TypeGuard, TypeVar, runtime_checkable

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
    "implements",
    "AnalyzesMany",
    "AsyncChatBackend",
    "AsyncClosable",
    "AsyncDeletesFiles",
    "AsyncHasJobEvents",
    "AsyncReportsUploadProgress",
    "AsyncTrainer",
    "AsyncVisionBackend",
    "BackendContext",
    "ChatBackend",
    "ChatCaller",
    "Closable",
    "DeletesFiles",
    "HasAcceptsURLs",
    "HasChatPrice",
    "HasConfiguredModels",
    "HasDefaultBaseModel",
    "HasExampleTokenLimit",
    "HasJobEvents",
    "HasMediaTypes",
    "HasMinExamples",
    "HasServingNotes",
    "HasTrainingPrice",
    "HasTrainingWarnings",
    "ImportsDialogues",
    "ReportsUploadProgress",
    "SentimentAnalyzer",
    "Store",
    "TakesImageExamples",
    "Trainer",
    "UsageStore",
    "VisionBackend",
]

S = TypeVar("S")
P = TypeVar("P")

#: Each optional protocol's members, listed once (see :func:`implements`).
_MEMBERS: dict[object, tuple[tuple[str, bool], ...]] = {}


def _members(protocol: Any) -> tuple[tuple[str, bool], ...]:
    names: set[str] = set()
    for cls in protocol.__mro__:
        if cls.__name__ in ("Protocol", "Generic", "object"):
            continue
        names.update(vars(cls).get("__annotations__", {}))
        names.update(n for n in vars(cls) if not n.startswith("_"))
    return tuple(sorted((n, callable(getattr(protocol, n, None))) for n in names))


def implements(backend: object, protocol: Callable[..., P]) -> TypeGuard[P]:
    """Whether ``backend`` has every member of ``protocol``, one of the optional protocols
    here: what ``isinstance`` answers for a runtime-checkable protocol, without its cost
    (Python 3.11 lists a protocol's members again on every check, some 10 µs; here they are
    listed once). A method member set to ``None`` does not count, as for ``isinstance``."""
    members = _MEMBERS.get(protocol)
    if members is None:
        members = _MEMBERS[protocol] = _members(protocol)
    for name, method in members:
        value: Any = getattr(backend, name, _ABSENT)
        if value is _ABSENT or (method and value is None):
            return False
    return True


_ABSENT = object()


@attrs.frozen(repr=False)
class BackendContext(Generic[S]):
    """What a backend factory receives, typed by the backend's settings class.

    A factory registered with ``settings=MySettings`` is called with a
    ``BackendContext[MySettings]``: annotate it so, and ``context.settings`` is a
    ``MySettings`` with no ``isinstance`` check. A backend registered without a settings class
    gets a ``BackendContext[None]``.

    :ivar name: the backend's name (``[backends.<name>]``).
    :ivar settings: that section structured into the backend's settings class (``None`` when
        the backend declared none).
    :ivar env: the environment secrets are read from.
    """

    name: str
    settings: S
    env: Mapping[str, str] = attrs.field(factory=lambda: os.environ, eq=False)
    #: How :meth:`chat` reaches the hub's chat backends (set by the hub; ``None`` outside one).
    chat_caller: Callable[[str | None], ChatCaller] | None = attrs.field(
        default=None, eq=False, repr=False
    )

    def chat(self, name: str | None = None) -> ChatCaller:
        """The chat backend ``name`` (else the one ``[capabilities] chat`` chooses), for a
        backend that asks a model for its own work (sentiment from a chat model, say). Its
        calls go through the hub's rate limiter, retry policy, usage records and observers,
        like the hub's own. It is resolved when first called, not now.

        :raises modelport.errors.PluginError: when the context was not made by a hub.
        """
        if self.chat_caller is None:
            from .errors import PluginError

            raise PluginError(
                f"backend {self.name!r} asks for a chat backend, but its context was not made "
                "by a hub",
                plugin=self.name,
                hint="build the backend through modelport.Hub (or pass chat_caller=)",
            )
        return self.chat_caller(name)

    def secret(self, variable: str) -> Secret:
        """Read a secret (an API key) from the environment.

        :raises modelport.errors.MissingSecretError: saying which variable to set.
        """
        return read_secret(variable, backend=self.name, env=self.env)

    def __repr__(self) -> str:
        return f"BackendContext(name={self.name!r}, settings={self.settings!r})"


class ChatCaller(Protocol):
    """A chat backend as another backend uses it (:meth:`BackendContext.chat`): each
    ``complete`` goes through the hub's limiter, retry policy, usage records and observers."""

    @property
    def name(self) -> str:
        """The chat backend's name (resolving it if needed)."""
        ...

    def complete(self, request: ChatRequest) -> Reply:
        """Ask the chat backend; errors are the core's, after the retry policy gave up."""
        ...


@runtime_checkable
class AnalyzesMany(Protocol):
    """Optional for sentiment: label several texts in one go (a backend that asks a model,
    say, sends them in one request). ``hub.analyze_many`` uses it; without it, the hub calls
    ``analyze`` once per text."""

    def analyze_many(self, texts: Sequence[str]) -> Sequence[Sentiment]:
        """The sentiment of each text, in order."""
        ...


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

    A job's :class:`~modelport.types.TrainingJob` says where its result lives once it
    succeeded (``result``: a model id or an artifact path; a backend whose result is a model
    it serves may set ``fine_tuned_model`` only) and, while it runs, how far it got when the
    backend knows (``step``, ``total_steps``, ``loss``, ``seconds_left``).

    Optional extras, used when present: :class:`HasJobEvents` (``job_events``; without it
    the hub makes a job's events from its status changes), :class:`ReportsUploadProgress`
    (``upload`` takes ``on_progress``), :class:`DeletesFiles` (``delete_file``, and its async
    twin :class:`AsyncDeletesFiles`), :class:`HasMinExamples`, :class:`HasExampleTokenLimit`,
    :class:`HasTrainingPrice`, :class:`HasTrainingWarnings`, :class:`HasDefaultBaseModel`,
    :class:`TakesImageExamples` and :class:`HasServingNotes`.

    An unknown job id (or file id) raises :class:`~modelport.errors.NotFoundError`.
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
        """Cancel a running (or queued) job; the job comes back with status ``cancelled``.

        Cancelling a job that has already finished (succeeded, failed or was cancelled)
        changes nothing and raises :class:`~modelport.errors.InvalidRequestError` saying
        its status (what the vendors' APIs answer, a 4xx).
        """
        ...


@runtime_checkable
class AsyncTrainer(Protocol):
    """The optional asyncio twin of :class:`Trainer` (``ajob_events`` is the optional
    :class:`AsyncHasJobEvents`)."""

    async def aupload(self, dataset: TrainingDataset) -> str: ...

    async def astart(self, spec: JobSpec) -> TrainingJob: ...

    async def aget_job(self, job_id: str) -> TrainingJob: ...

    async def alist_jobs(self, *, limit: int = 20) -> Sequence[TrainingJob]: ...

    async def acancel_job(self, job_id: str) -> TrainingJob: ...


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


# --- optional protocols ----------------------------------------------------------------------
#
# Each is one attribute or method a backend may have. The core checks ``isinstance`` (a runtime
# protocol checks only that the name is there) and uses the default stated when it is absent.
# The attributes are declared as read-only properties, so a plain class attribute, an instance
# attribute and a ``@property`` all satisfy them.


@runtime_checkable
class HasMediaTypes(Protocol):
    """Chat, vision: the image types the backend accepts.

    The core re-encodes an image of any other type (to PNG or JPEG) before the call. Absent:
    :data:`modelport.images.DEFAULT_MEDIA_TYPES` (PNG, JPEG, WebP, GIF).
    """

    @property
    def media_types(self) -> frozenset[str]:
        """MIME types such as ``"image/png"``; never empty."""
        ...


@runtime_checkable
class HasAcceptsURLs(Protocol):
    """Chat, vision: whether the backend fetches image URLs itself.

    When false, the core downloads an image given by URL (within ``[images] fetch_max_bytes``)
    and passes the bytes. Absent: ``True``.
    """

    @property
    def accepts_urls(self) -> bool: ...


@runtime_checkable
class HasMinExamples(Protocol):
    """Training: the fewest examples the backend trains on.

    The dataset check refuses fewer (``[training] min_examples`` overrides it). Absent:
    :data:`modelport.training.MIN_EXAMPLES` (10).
    """

    @property
    def min_examples(self) -> int: ...


@runtime_checkable
class HasExampleTokenLimit(Protocol):
    """Training: the most tokens one example may have.

    The dataset check warns about longer examples (the backend would truncate them). Absent:
    no limit is checked.
    """

    @property
    def example_token_limit(self) -> int: ...


@runtime_checkable
class HasTrainingPrice(Protocol):
    """Training: what training costs, for the dataset check's cost estimate.

    Absent (or ``None`` for a model): the estimate gives tokens only, no price.
    """

    def training_price(self, base_model: str) -> float | None:
        """US dollars per million training tokens on ``base_model``, or ``None`` if unknown."""
        ...


@runtime_checkable
class HasChatPrice(Protocol):
    """Chat, vision: what calls cost, for usage records and budgets.

    Asked only when the config's ``[prices.<backend>]`` has no entry; asked for the exact
    model name first (a dated snapshot), then its alias, and the answer is cached. A plain
    table lookup: an exception is logged and counts as ``None``. Absent (or ``None``): the
    call's cost is unknown.
    """

    def chat_price(self, model: str) -> tuple[float, float] | None:
        """``(input, output)`` US dollars per million tokens of ``model``, or ``None``."""
        ...


@runtime_checkable
class HasConfiguredModels(Protocol):
    """Chat: the models the backend's own configuration names.

    The hub checks them against the model list for shutdown dates (``modelport doctor``, a
    hub's warnings) and names the setting to change. Absent: only the assistants' models are
    checked.
    """

    @property
    def configured_models(self) -> Mapping[str, str]:
        """``{model: setting}``, the setting as a dotted key (``"backends.x.model"``)."""
        ...


@runtime_checkable
class HasTrainingWarnings(Protocol):
    """Training: what the dataset check should say beyond the data.

    Each line is added to the check's warnings (for example that the vendor stops taking
    training jobs on some date). Absent: no extra warnings.
    """

    def training_warnings(self, base_model: str | None = None) -> list[str]: ...


@runtime_checkable
class HasJobEvents(Protocol):
    """Training: a job's own log of events (started, each step with its loss, finished...).

    ``jobs show`` lists them and ``wait_job`` reports the new ones as they come. Absent (a
    backend with no events endpoint): the hub makes events from the job's status changes
    (``"status: queued → running"``, from the statuses kept in the job record) and, while
    waiting, from the progress fields of the job (``step``, ``loss``, ``seconds_left``).
    """

    def job_events(self, job_id: str) -> Sequence[JobEvent]:
        """The job's events, oldest first (an unknown job raises ``NotFoundError``)."""
        ...


@runtime_checkable
class AsyncHasJobEvents(Protocol):
    """The optional asyncio twin of :class:`HasJobEvents` (absent: the async hub runs
    ``job_events`` in a worker thread)."""

    async def ajob_events(self, job_id: str) -> Sequence[JobEvent]: ...


@runtime_checkable
class HasDefaultBaseModel(Protocol):
    """Training: the model the backend trains when neither the call nor the config names one.

    The base model of a job is, first found: the call's ``base_model`` (CLI ``--model``),
    ``[training] base_model``, this attribute, and last the chat assistant's model (right
    for a backend that trains the models of the vendor that chats). A trainer of other models
    (a local trainer of open models, say) should have it. Absent (or ``None``): the
    assistant's model.
    """

    @property
    def default_base_model(self) -> str | None: ...


@runtime_checkable
class TakesImageExamples(Protocol):
    """Training: the image types the backend trains on (vision fine-tuning).

    Datasets built from dialogues for this backend keep the images of the messages (written
    in the chat JSONL as ``image_url`` content parts with ``data:`` URLs); an image of another
    type is left out with a note. Absent (or empty): training data is text only, images are
    left out and the dataset's warnings say how many, from which dialogues.
    """

    @property
    def training_media_types(self) -> frozenset[str]:
        """MIME types such as ``"image/png"``."""
        ...


@runtime_checkable
class HasServingNotes(Protocol):
    """Training: how to chat with a job's result (serve it, then ask it through modelport).

    ``modelport jobs show`` prints the lines after a job succeeded
    (:meth:`modelport.Hub.serving_notes`). Absent: nothing is said beyond the result.
    """

    def serving(self, job: TrainingJob) -> list[str]:
        """Lines of text (commands, config) for ``job``; empty when there is nothing to say
        (the job did not succeed, say)."""
        ...


@runtime_checkable
class DeletesFiles(Protocol):
    """Training: deleting an uploaded file.

    When a job could not be started (and surely was not), the hub deletes the files it
    uploaded for it, so they are not left orphaned on the backend. Absent: they are kept, and
    the error's hint names their ids.
    """

    def delete_file(self, file_id: str) -> None: ...


@runtime_checkable
class AsyncDeletesFiles(Protocol):
    """The optional asyncio twin of :class:`DeletesFiles` (absent: the async hub runs
    ``delete_file`` in a worker thread)."""

    async def adelete_file(self, file_id: str) -> None: ...


@runtime_checkable
class ReportsUploadProgress(Protocol):
    """Training: an ``upload`` that reports its progress.

    The hub passes ``on_progress``, a callable to call as ``on_progress(sent, total)`` (bytes)
    while the data goes out, and turns that into upload progress for its caller. Every
    :class:`Trainer` has an ``upload``, so ``isinstance`` cannot tell this one apart: the core
    checks the signature for the ``on_progress`` keyword instead. Absent: no progress is
    reported until the upload is done.
    """

    def upload(
        self,
        dataset: TrainingDataset,
        *,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> str: ...


@runtime_checkable
class AsyncReportsUploadProgress(Protocol):
    """The asyncio twin of :class:`ReportsUploadProgress` (``aupload``; checked the same
    way, by its signature)."""

    async def aupload(
        self,
        dataset: TrainingDataset,
        *,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> str: ...


@runtime_checkable
class ImportsDialogues(Protocol):
    """Storage: creating a dialogue whole, keeping its id.

    ``modelport store copy`` then copies each dialogue in one call and under its own id.
    Absent: the copy creates each dialogue (the target chooses its id), appends its turns, and
    keeps the mapping of ids in a journal so a second run carries on.
    """

    def import_dialogue(self, dialogue: Dialogue) -> None:
        """Create ``dialogue`` with its id and messages, atomically."""
        ...


@runtime_checkable
class Closable(Protocol):
    """Any backend: releasing what it holds (connections, files).

    :meth:`modelport.Hub.close` (and leaving its ``with``) calls it on every backend the hub
    built. Absent: nothing is called.
    """

    def close(self) -> None: ...


@runtime_checkable
class AsyncClosable(Protocol):
    """Any backend: the asyncio twin of :class:`Closable`.

    :meth:`modelport.AsyncHub.aclose` awaits it on every backend the hub built, then calls
    ``close()`` as well when the backend is also :class:`Closable` (so each should release
    only what it holds). Absent: only ``close()``, when there is one, is called.
    """

    async def aclose(self) -> None: ...
