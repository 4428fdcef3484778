"""The hub: the one object a host application holds.

``Hub`` (blocking) and ``AsyncHub`` (asyncio) offer the same methods; the async names are the
same, awaited. Both are thin drivers of the same operations, each written once as a flow
(``modelport._operations``): every backend call goes through the core's rate limiter and retry
policy, and is seen by the observer hooks.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Self, TypeVar, cast

from ._operations import MAX_OUTAGE_S, DatasetSource, Operations, StreamState, _Chain, _Turn
from ._runtime import Runtime
from .backends import Closable, implements
from .config import AssistantProfile, Settings, load_settings
from .flows import Flow, drive, drive_iter
from .images import ImageSource
from .plugins import Plugins, make_plugins
from .training import DatasetReport
from .types import (
    Answer,
    Capability,
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

__all__ = ["Hub", "ReplyStream"]

R = TypeVar("R")


def _plugins_for(settings: Settings) -> Plugins:
    p = settings.plugins
    return make_plugins(autoload=p.autoload, blocked=p.disable, load=p.load)


class _HubBase:
    """Construction and the parts that do no I/O, shared by both hubs; the operations are
    ``self._ops`` (:class:`modelport._operations.Operations`), driven by each hub."""

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
        self._ops = Operations(self._rt)

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
        """See :meth:`modelport._operations.Operations.shutdown_notices`."""
        return self._ops.shutdown_notices(name, chat, models)


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
            if implements(backend, Closable):
                backend.close()

    def _do(self, flow: Flow[R]) -> R:
        return drive(flow, sleep=self._rt.sleep)

    # --- chat --------------------------------------------------------------------------------

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
        return self._do(
            self._ops.ask(
                text,
                dialogue=dialogue,
                assistant=assistant,
                images=images,
                options=options,
                model=model,
            )
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
        turn = self._ops.turn(
            text,
            dialogue=dialogue,
            assistant=assistant,
            images=images,
            options=options,
            model=model,
            operation="stream",
        )
        return ReplyStream(self, *self._do(turn))

    def models(self, *, backend: str | None = None) -> tuple[ModelInfo, ...]:
        """The models the chat backend offers.

        A model the configuration uses (an assistant's ``model``, or the backend's own
        default) that the list gives a ``shutdown_date`` is logged, once per process, as the
        warning ``model_shutdown_scheduled``, naming the setting to change. This is the only
        place the dates are checked: chat calls never list models for it.
        """
        return self._do(self._ops.models(backend))

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
        return self._do(
            self._ops.describe_image(
                images, prompt=prompt, schema=schema, detail=detail, model=model
            )
        )

    def analyze(self, text: str) -> Sentiment:
        """The sentiment of ``text``."""
        return self._do(self._ops.analyze(text))

    def analyze_many(self, texts: Sequence[str]) -> list[Sentiment]:
        """The sentiment of each of ``texts``, in order: in one call when the backend
        labels several at once (``analyze_many``), else one ``analyze`` per text."""
        return self._do(self._ops.analyze_many(texts))

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
        return self._do(
            self._ops.dialogues(
                assistant=assistant, since=since, until=until, limit=limit, offset=offset
            )
        )

    def dialogue(self, dialogue_id: str, *, last: int | None = None) -> Dialogue:
        """One stored dialogue with its messages (with ``last``, only its last ``last``)."""
        return self._do(self._ops.dialogue(dialogue_id, last=last))

    def delete_dialogue(self, dialogue_id: str) -> None:
        self._do(self._ops.delete_dialogue(dialogue_id))

    def _all_dialogues(self, assistant: str | None, since: datetime | None) -> Iterator[Dialogue]:
        return drive_iter(self._ops.all_dialogues(assistant, since), sleep=self._rt.sleep)

    # --- usage -------------------------------------------------------------------------------

    def usage(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[UsageRecord, ...]:
        """The recorded usage of chat and vision calls with ``since <= at < until``, oldest
        first (see ``docs/usage.md``).

        :raises ConfigError: when the store keeps no usage records.
        """
        return self._do(self._ops.usage(since=since, until=until))

    def usage_report(
        self, *, since: datetime | None = None, until: datetime | None = None, by: str = "day"
    ) -> UsageReport:
        """Totals of the recorded usage (calls, tokens, cost), grouped ``by`` day (UTC),
        assistant, model or backend."""
        return self._do(self._ops.usage_report(since=since, until=until, by=by))

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
    ) -> TrainingJob:
        """Validate, upload and start a training job, and record it in the store.

        The job runs on the training backend ``backend`` (else ``[capabilities] training``);
        its record keeps which, and :meth:`job`, :meth:`wait_job`, :meth:`cancel_job` and
        :meth:`job_events` go to it. The base model is ``base_model``, else as
        :meth:`training_base_model` says.

        Uploads and job creation are never retried blindly (a retried create could start a
        second paid job): only a rate-limit refusal is retried.

        When the job cannot be started after the data was uploaded, the uploaded files are
        deleted if the trainer can (``delete_file``) and the job surely was not created; the
        error's hint names the files either way.

        :param on_progress: called with an :class:`~modelport.types.UploadProgress` as each
            file starts to upload, as its bytes go out (when the trainer reports them) and
            when it is uploaded (with its file id).
        """
        return self._do(
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

    def training_base_model(
        self,
        base_model: str | None = None,
        *,
        backend: str | None = None,
        assistant: str | None = None,
    ) -> str | None:
        """The model a job would train, first found: ``base_model`` (the call's; CLI
        ``--model``), ``[training] base_model``, the training backend's own default
        (``default_base_model``, see :class:`modelport.backends.HasDefaultBaseModel`), and
        last the model of ``assistant`` (the default assistant when ``None``), which suits
        a backend training the models of the vendor that chats. ``None`` when none is set.
        """
        return self._do(
            self._ops.training_base_model(base_model, backend=backend, assistant=assistant)
        )

    def check_dataset(
        self,
        dataset: DatasetSource,
        *,
        base_model: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        backend: str | None = None,
    ) -> DatasetReport:
        """Load and validate training data without uploading it: examples, tokens, problems
        (no base model, see :meth:`training_base_model`, is one), and the estimated cost
        when the training backend (``backend``, else the configured one) knows its price.

        :raises TrainingDataError: when the file cannot be read as training data at all.
        """
        return self._do(
            self._ops.check_dataset(
                dataset, base_model=base_model, hyperparameters=hyperparameters, backend=backend
            )
        )

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
        by date and by the sentiment labels of the replies; see :meth:`dialogue_dataset`.
        ``train_kwargs`` are :meth:`train`'s (``backend=`` picks the trainer, and images are
        kept when it takes them); the base model defaults as :meth:`training_base_model`
        says, with ``assistant``'s model last."""
        return self._do(
            self._ops.dynamic_train(
                assistant=assistant,
                since=since,
                labels=labels,
                repeat=repeat,
                train_kwargs=train_kwargs,
            )
        )

    def dialogue_dataset(
        self,
        *,
        assistant: str | None = None,
        since: datetime | None = None,
        labels: Collection[SentimentLabel | str] | None = None,
        repeat: bool = False,
        backend: str | None = None,
    ) -> TrainingDataset:
        """Stored dialogues as training examples (one per dialogue), each with its own
        assistant's instructions as the system message (the dialogue's own system message
        when it has one; the default assistant's when its assistant is no longer configured).

        Images are kept (for vision fine-tuning) when the training backend ``backend`` (else
        the configured one) takes them (:class:`modelport.backends.TakesImageExamples`);
        otherwise they are left out, and the dataset's ``warnings`` say how many, from which
        dialogues.

        Only replies whose sentiment label is in ``labels`` are learnt (``None``: all), and,
        unless ``repeat``, none that an earlier job (not failed or cancelled) learnt already;
        see :func:`modelport.training.dataset_from_dialogues`.
        """
        return self._do(
            self._ops.dialogue_dataset(
                assistant=assistant, since=since, labels=labels, repeat=repeat, backend=backend
            )
        )

    def job(self, job_id: str) -> TrainingJob:
        """A job's current state from its backend; its stored record is brought up to date."""
        return self._do(self._ops.job(job_id))

    def jobs(self) -> tuple[JobRecord, ...]:
        """Every job recorded in the store (works offline)."""
        return self._do(self._ops.jobs())

    def job_record(self, job_id: str) -> JobRecord | None:
        """The store's record of job ``job_id`` (``None`` when it keeps none; offline)."""
        return self._do(self._ops.record(job_id))

    def remote_jobs(self, *, limit: int = 20) -> tuple[TrainingJob, ...]:
        """The jobs the training backend knows of."""
        return self._do(self._ops.remote_jobs(limit=limit))

    def cancel_job(self, job_id: str) -> TrainingJob:
        """Cancel a job on the backend that runs it.

        :raises InvalidRequestError: when the job has finished already.
        """
        return self._do(self._ops.cancel_job(job_id))

    def job_events(self, job_id: str) -> tuple[JobEvent, ...]:
        """The job's events, oldest first: the backend's own, or, for a backend without
        (see :class:`modelport.backends.HasJobEvents`), its status changes as the job record
        keeps them (``"status: queued → running"``)."""
        return self._do(self._ops.job_events(job_id))

    def serving_notes(self, job: TrainingJob) -> tuple[str, ...]:
        """How to chat with the result of ``job`` (a succeeded job), as its training backend
        says (:class:`modelport.backends.HasServingNotes`): lines to print; empty when it
        says nothing."""
        return self._do(self._ops.serving_notes(job))

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
        :param on_event: called with each new event of the job's log, oldest first; for a
            backend without events, with events made from the job's status changes and
            progress (step, loss, time left).
        :param on_poll: called after each poll with the job and the seconds until the next.
        :param max_outage_s: how long the backend may keep failing before waiting stops
            (``None``: until ``timeout_s``).
        :raises WaitTimeoutError: after ``timeout_s``, or after ``max_outage_s`` of failures;
            the job keeps running, and the message says how to resume.
        """
        return self._do(
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


class ReplyStream(Iterator[StreamDelta]):
    """The deltas of a streamed reply. After the last one, ``answer`` holds the stored answer.

    Until the first delta, a failing backend is retried, then left for the assistant's next
    fallback; after it, a failure is raised (the deltas already given cannot be taken back).
    """

    def __init__(self, hub: Hub, turn: _Turn, chain: _Chain) -> None:
        self._state = StreamState()
        deltas = drive_iter(hub._ops.stream(turn, chain, self._state), sleep=hub._rt.sleep)
        self._deltas = cast("Generator[StreamDelta, None, None]", deltas)  # closable

    def __next__(self) -> StreamDelta:
        return next(self._deltas)

    @property
    def answer(self) -> Answer | None:
        """The stored answer, once the last delta was read (``None`` until then)."""
        return self._state.answer

    def close(self) -> None:
        """Stop early; nothing is stored."""
        self._deltas.close()

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(d.text for d in self._state.deltas)
