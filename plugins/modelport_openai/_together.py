"""Together AI's own fine-tuning API, for the ``together`` preset.

Together serves chat and vision through its OpenAI-compatible API (the ``together`` preset
uses :class:`~modelport_openai.OpenAIBackend` for those), but its fine-tuning is its own API:
``/fine-tunes`` instead of ``/fine_tuning/jobs``, other job fields, other statuses, and an
upload in three steps. :class:`TogetherBackend` keeps the chat and vision of the OpenAI
backend and replaces its training flows, written with the same HTTP backend kit.

The wire shapes follow Together's API reference and its Python SDK (``together``, whose
``Files.upload`` and ``FineTuning`` resources this mirrors):

- upload: ``POST /files`` with the form fields ``purpose=fine-tune``, ``file_name`` and
  ``file_type=jsonl``, not followed: it answers ``302`` with the storage URL in ``Location``
  and the file id in ``X-Together-File-Id``; ``PUT`` the JSONL there (no credentials: the URL
  is signed); then ``POST /files/{id}/preprocess``, which answers the file;
- jobs: ``POST /fine-tunes`` (JSON), ``GET /fine-tunes/{id}``, ``GET /fine-tunes``,
  ``POST /fine-tunes/{id}/cancel``, ``GET /fine-tunes/{id}/events``,
  ``GET /fine-tunes/{id}/checkpoints``; ``GET /fine-tunes/models/limits`` for a model's LoRA
  rank when LoRA is asked for without one; ``DELETE /files/{id}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import attrs

from modelport import BackendContext, JobEvent, JobSpec, JobStatus, TrainingDataset, TrainingJob
from modelport.errors import (
    AuthenticationError,
    BackendError,
    InvalidRequestError,
    NotFoundError,
    ResponseError,
    UnsupportedError,
)
from modelport.flows import Flow, twin
from modelport.http import HTTPClient, Request
from modelport.logs import get_logger, redact, register_secret

from ._backend import OpenAIBackend
from ._errors import error_reader
from ._settings import OpenAISettings

__all__ = [
    "TOGETHER_JOB_STATUS",
    "Checkpoint",
    "TogetherBackend",
    "checkpoints_from_json",
    "together_events",
    "together_job",
    "together_job_body",
]

#: Together's job statuses and the core's. ``cancel_requested`` still counts as running: a
#: job asked to stop while it uploads its model may yet finish, so waiting goes on until
#: ``cancelled`` (or ``completed``). Unknown statuses count as running too.
TOGETHER_JOB_STATUS: Mapping[str, JobStatus] = {
    "pending": JobStatus.QUEUED,
    "queued": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    "compressing": JobStatus.RUNNING,
    "uploading": JobStatus.RUNNING,
    "cancel_requested": JobStatus.RUNNING,
    "cancelled": JobStatus.CANCELLED,
    "error": JobStatus.FAILED,
    "user_error": JobStatus.FAILED,
    "completed": JobStatus.SUCCEEDED,
}

#: Hyperparameters that make the job's ``training_type`` (LoRA or full training).
_LORA_KEYS = ("lora_r", "lora_alpha", "lora_dropout", "lora_trainable_modules")
#: Hyperparameters that go into the job's ``training_method`` (SFT or DPO).
_METHOD_KEYS = (
    "train_on_inputs",
    "dpo_beta",
    "dpo_normalize_logratios_by_length",
    "rpo_alpha",
    "simpo_gamma",
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NO_SUCH_JOB = "no such job; list them with: modelport jobs list --remote"
_STORAGE_HINT = (
    "putting the file at the storage URL Together gave failed (the URL may have expired); "
    "upload again"
)
_MODELS_PAGE = "https://docs.together.ai/docs/fine-tuning-models"
_CREDIT_HINT = (
    "check the API key in ${}; Together also refuses an upload with 401 when it would exceed a "
    "free trial's credits (Settings > Billing at api.together.ai)"
)


@attrs.frozen
class Checkpoint:
    """A checkpoint a Together job saved (:meth:`TogetherBackend.checkpoints`).

    :ivar name: what names it to Together (``from_checkpoint``, downloads): the job id for a
        final checkpoint, ``<job id>:<step>`` for an intermediate one.
    :ivar type: Together's checkpoint type (``Intermediate``, ``Final``, ``Final Merged``, ...).
    :ivar step: the training step it was saved at, when said.
    :ivar created_at: when it was saved, when said.
    """

    name: str
    type: str
    step: int | None = None
    created_at: datetime | None = None


# --- the wire ---------------------------------------------------------------------------------


def _when(value: Any) -> datetime | None:
    """A timestamp as Together sends it (ISO 8601, ``Z`` for UTC), or Unix seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _items(data: Any, backend: str) -> list[Mapping[str, Any]]:
    items = data.get("data") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise ResponseError("the response holds no 'data' list", backend=backend)
    return [item for item in items if isinstance(item, Mapping)]


def _error_of(data: Mapping[str, Any]) -> str | None:
    """Why a failed job failed: an ``error`` field if the job has one, else the last error
    event it carries."""
    error = data.get("error")
    if isinstance(error, Mapping):
        error = error.get("message") or error.get("code")
    if isinstance(error, str) and error:
        return error
    events = data.get("events")
    for event in reversed(events if isinstance(events, list) else []):
        if not isinstance(event, Mapping):
            continue
        level = str(event.get("level") or "").lower()
        kind = str(event.get("type") or "")
        if (level == "error" or kind in ("JOB_ERROR", "JOB_USER_ERROR")) and event.get("message"):
            return str(event["message"])
    return None


def together_job(data: Any, backend: str) -> TrainingJob:
    """A job of ``/fine-tunes`` as modelport's :class:`~modelport.TrainingJob`.

    The output model (``model_output_name``) is the job's ``fine_tuned_model`` and ``result``
    once it completed; ``steps_completed``, ``total_steps`` and ``progress`` give its progress.
    """
    if not isinstance(data, Mapping) or not (data.get("id") or data.get("job_id")):
        raise ResponseError("the response is not a fine-tuning job", backend=backend)
    status = TOGETHER_JOB_STATUS.get(str(data.get("status")), JobStatus.RUNNING)
    output = data.get("model_output_name") or data.get("output_name")
    output = str(output) if output and status is JobStatus.SUCCEEDED else None
    progress = data.get("progress")
    seconds_left = None
    if isinstance(progress, Mapping) and progress.get("estimate_available"):
        left = progress.get("seconds_remaining")
        if isinstance(left, (int, float)) and not isinstance(left, bool) and left >= 0:
            seconds_left = float(left)
    return TrainingJob(
        id=str(data.get("id") or data.get("job_id")),
        backend=backend,
        base_model=str(data.get("model") or ""),
        status=status,
        created_at=_when(data.get("created_at")),
        finished_at=_when(data.get("updated_at")) if status.is_terminal else None,
        fine_tuned_model=output,
        training_file=data.get("training_file") or None,
        error=_error_of(data) if status is JobStatus.FAILED else None,
        result=output,
        step=_int(data.get("steps_completed")),
        total_steps=_int(data.get("total_steps")),
        seconds_left=seconds_left,
    )


def together_events(data: Any, backend: str) -> list[JobEvent]:
    """A job's events, oldest first. Level ``Info``/``Warning``/``Error`` (or lower case, or
    none) becomes ``info``/``warning``/``error``; an event without a message says its type; a
    Weights & Biases link is added to the message."""
    events: list[JobEvent] = []
    now = datetime.now(UTC)
    for item in _items(data, backend):
        message = str(item.get("message") or item.get("type") or "")
        wandb = item.get("wandb_url")
        if isinstance(wandb, str) and wandb and wandb not in message:
            message = f"{message} ({wandb})" if message else wandb
        level = str(item.get("level") or "info").lower()
        events.append(
            JobEvent(
                created_at=_when(item.get("created_at")) or now,
                message=message,
                level=level if level in ("info", "warning", "error") else "info",
            )
        )
    events.sort(key=lambda e: e.created_at)  # stable: the API's order within one instant
    return events


def checkpoints_from_json(data: Any, job_id: str, backend: str) -> list[Checkpoint]:
    """A job's checkpoints, oldest first, named as Together's SDK names them."""
    found = []
    for item in _items(data, backend):
        kind = str(item.get("checkpoint_type") or "")
        step = item.get("step")
        step = int(step) if isinstance(step, (int, str)) and str(step).isdigit() else None
        intermediate = "intermediate" in kind.lower() and step is not None
        found.append(
            Checkpoint(
                name=f"{job_id}:{step}" if intermediate else job_id,
                type=kind,
                step=step,
                created_at=_when(item.get("created_at")),
            )
        )
    found.sort(key=lambda c: c.created_at or datetime.min.replace(tzinfo=UTC))
    return found


def _wants_lora(hyperparameters: Mapping[str, Any]) -> bool:
    """Whether the job is to train LoRA adapters with no rank given (the rank then comes
    from the model's limits, as Together's SDK does it)."""
    if "training_type" in hyperparameters or "lora_r" in hyperparameters:
        return False
    lora = hyperparameters.get("lora")
    if lora is None:
        return any(key in hyperparameters for key in _LORA_KEYS)
    return bool(lora)


def together_job_body(
    spec: JobSpec, *, backend: str = "together", lora_rank: int | None = None
) -> dict[str, Any]:
    """The JSON of ``POST /fine-tunes`` for ``spec``.

    Hyperparameters go into the body as they are (``n_epochs``, ``learning_rate``,
    ``batch_size``, ``n_checkpoints``, ``n_evals``, ``warmup_ratio``, ``lr_scheduler``,
    ``max_grad_norm``, ``weight_decay``, ``from_checkpoint``, ...), but for these:

    - ``lora`` (true/false) and ``lora_r``, ``lora_alpha`` (default ``2 * lora_r``),
      ``lora_dropout``, ``lora_trainable_modules`` make ``training_type``
      (``{"type": "Lora", ...}`` or ``{"type": "Full"}``); none of them leaves it to Together
      (LoRA). ``lora_rank`` is the rank when LoRA is asked for without ``lora_r``.
    - ``training_method`` (``"sft"``/``"dpo"``) and ``train_on_inputs``, ``dpo_beta``,
      ``dpo_normalize_logratios_by_length``, ``rpo_alpha``, ``simpo_gamma`` make
      ``training_method``.
    - ``wandb_api_key`` is sent as ``wandb_key``.

    :raises InvalidRequestError: for ``lora = false`` with LoRA settings, or LoRA without a
        rank.
    """
    params = dict(spec.hyperparameters)
    body: dict[str, Any] = {"model": spec.base_model, "training_file": spec.training_file}
    if params.get("from_checkpoint"):  # a job starts from a model or a checkpoint, not both
        del body["model"]
    if spec.validation_file:
        body["validation_file"] = spec.validation_file
    if spec.suffix:
        body["suffix"] = spec.suffix
    lora = params.pop("lora", None)
    lora_settings = {key: params.pop(key) for key in _LORA_KEYS if key in params}
    if "training_type" in params:
        body["training_type"] = params.pop("training_type")
    elif lora is not None and not lora:
        if lora_settings:
            raise InvalidRequestError(
                f"lora = false, but LoRA settings given: {', '.join(sorted(lora_settings))}",
                backend=backend,
                hint="drop them, or train LoRA adapters (lora = true)",
            )
        body["training_type"] = {"type": "Full"}
    elif lora or lora_settings:
        rank = lora_settings.pop("lora_r", lora_rank)
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            raise InvalidRequestError(
                f"LoRA needs a rank (lora_r), not {rank!r}", backend=backend, hint="set lora_r"
            )
        body["training_type"] = {
            "type": "Lora",
            "lora_r": rank,
            "lora_alpha": lora_settings.pop("lora_alpha", 2 * rank),
            **lora_settings,
        }
    method = params.pop("training_method", None)
    method_settings = {key: params.pop(key) for key in _METHOD_KEYS if key in params}
    if isinstance(method, Mapping):
        body["training_method"] = {**method, **method_settings}
    elif method is not None or method_settings:
        body["training_method"] = {"method": method or "sft", **method_settings}
    if "wandb_api_key" in params:
        key = params.pop("wandb_api_key")
        if isinstance(key, str) and key:
            register_secret(key)
        body["wandb_key"] = key
    for name, value in params.items():
        body.setdefault(name, value)
    return body


# --- the backend ------------------------------------------------------------------------------


class TogetherBackend(OpenAIBackend):
    """Chat and vision over Together's OpenAI-compatible API (as :class:`OpenAIBackend`), and
    fine-tuning over Together's own API."""

    #: The fewest examples Together takes (``MIN_SAMPLES`` of its SDK's file check).
    min_examples = 1
    #: Together's longest example depends on the model (its context length): none is claimed.
    _example_token_limit: ClassVar[int | None] = None

    def __init__(self, context: BackendContext[OpenAISettings]) -> None:
        super().__init__(context)
        settings = context.settings
        headers = dict(settings.headers)
        if self._key is not None:
            headers["Authorization"] = f"Bearer {self._key.reveal()}"
        #: The upload's first request, with the credentials, must not follow the redirect.
        self._upload_headers = headers
        #: For the upload's first two steps: follows no redirect, and sends no credentials of
        #: its own (the signed storage URL must not get the API key).
        self.storage = HTTPClient(
            self.name,
            self.config.base_url,
            timeout_s=settings.timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            max_connections=4,
            key_env=self.config.api_key_env,
            read_error=error_reader(self.config.base_url),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"TogetherBackend(name={self.name!r}, base_url={redact(self.config.base_url)!r})"

    def close(self) -> None:
        super().close()
        self.storage.close()

    async def aclose(self) -> None:
        await super().aclose()
        await self.storage.aclose()

    def training_warnings(self, base_model: str | None = None) -> list[str]:
        """What ``modelport train --check`` should know: that a model name without an
        organization (``gpt-4o-mini``) is surely not one Together fine-tunes."""
        warnings = super().training_warnings(base_model)
        if base_model and "/" not in base_model:
            warnings.append(
                f"{base_model!r} is not a Together model name (they read 'org/model', e.g. "
                f"'meta-llama/Meta-Llama-3.1-8B-Instruct-Reference'); Together fine-tunes the "
                f"models listed at {_MODELS_PAGE}, some with LoRA only"
            )
        return warnings

    # --- files -----------------------------------------------------------------------------

    def _upload(
        self,
        dataset: TrainingDataset,
        *,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Flow[str]:
        name, data, _ = self._upload_file(dataset)
        assert isinstance(data, bytes)  # no on_progress given: the bytes themselves
        if on_progress is not None:
            on_progress(0, len(data))
        form = {"purpose": "fine-tune", "file_name": name, "file_type": "jsonl"}
        query = dict(self.config.settings.query) or None
        try:
            response = yield self.storage.send(
                Request("POST", "/files", data=form, headers=self._upload_headers, params=query)
            )
        except AuthenticationError as exc:
            exc.hint = _CREDIT_HINT.format(self.config.api_key_env)
            raise
        location = response.headers.get("location")
        file_id = response.headers.get("x-together-file-id")
        if response.status_code not in _REDIRECTS or not location or not file_id:
            raise ResponseError(
                f"the upload was not sent to storage (HTTP {response.status_code}, "
                f"{'no' if not location else 'a'} Location, "
                f"{'no' if not file_id else 'a'} X-Together-File-Id)",
                backend=self.name,
                status=response.status_code,
                hint=f"check base_url ({redact(self.config.base_url)}): it must be Together's",
            )
        signature = urlsplit(location).query
        if signature:
            register_secret(signature)  # the signed URL is a credential while it lasts
        try:
            try:
                yield self.storage.send(Request("PUT", location, content=data))
            except BackendError as exc:
                exc.hint = _STORAGE_HINT
                raise
            if on_progress is not None:
                on_progress(len(data), len(data))
            path = f"/files/{quote(file_id, safe='')}/preprocess"
            answer = yield self.http.json(Request("POST", path))
        except BackendError:
            yield from self._forget(file_id)  # the id Together reserved holds nothing usable
            raise
        found = answer.get("id") if isinstance(answer, Mapping) else None
        return str(found or file_id)

    def _forget(self, file_id: str) -> Flow[None]:
        """Delete a file whose upload failed half-way; a failure to is logged, not raised
        (the upload's own error is the one to see)."""
        try:
            yield from self._delete_file(file_id)
        except BackendError as exc:
            get_logger().warning(
                "upload_cleanup_failed", backend=self.name, file_id=file_id, error=str(exc)
            )

    def _delete_file(self, file_id: str) -> Flow[None]:
        """Delete an uploaded file (the hub does, when the job it was for did not start)."""
        yield self.http.json(Request("DELETE", f"/files/{quote(file_id, safe='')}"))

    # --- jobs ------------------------------------------------------------------------------

    def _fine_tunes(
        self, method: str, job_id: str | None = None, tail: str = "", **request: Any
    ) -> Flow[Any]:
        """A ``/fine-tunes`` endpoint's JSON; a 404 on a job's path is an unknown job."""
        path = "/fine-tunes" + (f"/{quote(job_id, safe='')}{tail}" if job_id else "")
        try:
            return (yield self.http.json(Request(method, path, **request)))
        except NotFoundError as exc:
            if job_id is not None:
                exc.hint = _NO_SUCH_JOB
            raise

    def _lora_rank(self, model: str) -> Flow[int]:
        """The largest LoRA rank ``model`` takes, from its limits.

        :raises UnsupportedError: when Together trains no LoRA adapters for ``model``.
        """
        limits = yield self.http.json(
            Request("GET", "/fine-tunes/models/limits", params={"model_name": model})
        )
        lora = limits.get("lora_training") if isinstance(limits, Mapping) else None
        rank = lora.get("max_rank") if isinstance(lora, Mapping) else None
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            raise UnsupportedError(
                f"Together trains no LoRA adapters for {model!r}",
                backend=self.name,
                hint=f"train it fully (lora = false), or pick a model from {_MODELS_PAGE}",
            )
        return rank

    def _start(self, spec: JobSpec) -> Flow[TrainingJob]:
        rank = None
        if _wants_lora(spec.hyperparameters):
            rank = yield from self._lora_rank(spec.base_model)
        body = together_job_body(spec, backend=self.name, lora_rank=rank)
        data = yield from self._fine_tunes("POST", json=body)
        return together_job(data, self.name)

    def _get_job(self, job_id: str) -> Flow[TrainingJob]:
        return together_job((yield from self._fine_tunes("GET", job_id)), self.name)

    def _list_jobs(self, *, limit: int = 20) -> Flow[list[TrainingJob]]:
        """The jobs, newest first (the API lists them all, in no order it documents)."""
        data = yield from self._fine_tunes("GET")
        jobs = [together_job(item, self.name) for item in _items(data, self.name)]
        oldest = datetime.min.replace(tzinfo=UTC)
        jobs.sort(key=lambda job: job.created_at or oldest, reverse=True)
        return jobs[: max(limit, 0)]

    def _cancel_job(self, job_id: str) -> Flow[TrainingJob]:
        return together_job((yield from self._fine_tunes("POST", job_id, "/cancel")), self.name)

    def _job_events(self, job_id: str) -> Flow[list[JobEvent]]:
        return together_events((yield from self._fine_tunes("GET", job_id, "/events")), self.name)

    def _checkpoints(self, job_id: str) -> Flow[list[Checkpoint]]:
        """The checkpoints job ``job_id`` saved, oldest first."""
        data = yield from self._fine_tunes("GET", job_id, "/checkpoints")
        return checkpoints_from_json(data, job_id, self.name)

    upload, aupload = twin(_upload)
    delete_file, adelete_file = twin(_delete_file)
    start, astart = twin(_start)
    get_job, aget_job = twin(_get_job)
    list_jobs, alist_jobs = twin(_list_jobs)
    cancel_job, acancel_job = twin(_cancel_job)
    job_events, ajob_events = twin(_job_events)
    checkpoints, acheckpoints = twin(_checkpoints)
