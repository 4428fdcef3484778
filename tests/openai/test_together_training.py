"""Fine-tuning through the ``together`` backend, over Together's own API (``/fine-tunes``,
the three-step file upload), faked with respx at the transport: the requests are asserted as
Together's API reference and SDK shape them, not only the replies."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

import modelport_openai
from modelport import AsyncHub, Hub, JobSpec, JobStatus, Message, TrainingDataset, TrainingExample
from modelport.backends import HasExampleTokenLimit, HasMinExamples, ReportsUploadProgress
from modelport.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    TransientError,
    UnsupportedError,
)
from modelport.testing import FakeBackends, RecordingSleep, make_test_async_hub, make_test_hub
from modelport.testing.conformance import TrainingConformance
from modelport.training import dataset_to_jsonl
from modelport.types import UploadProgress
from modelport_openai._together import Checkpoint, TogetherBackend, together_job_body

BASE = "https://api.together.xyz/v1"
KEY = "tgp_v1_" + "Xw4" * 14
STORAGE = "https://together-uploads.test/bucket/file-1.jsonl"
SIGNED = f"{STORAGE}?X-Amz-Signature=" + "5f" * 16
MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
OUTPUT = "acme/Meta-Llama-3.1-8B-Instruct-Reference-math-1a2b3c"

DATASET = TrainingDataset(
    [
        TrainingExample([Message("user", "2+2?"), Message("assistant", "4")]),
        TrainingExample([Message("user", "Capital of Peru?"), Message("assistant", "Lima")]),
    ],
    source="data/math.jsonl",
)


def url(path: str) -> str:
    return BASE + path


def ok(body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers)


def error(status: int, message: str = "nope", **headers: str) -> httpx.Response:
    body = {"error": {"message": message, "type": "invalid_request_error"}}
    return httpx.Response(status, json=body, headers=headers)


def job(status: str = "pending", **extra: Any) -> dict[str, Any]:
    """A job as ``/fine-tunes`` answers it (the reference's example, trimmed)."""
    return {
        "id": "ft-1",
        "status": status,
        "created_at": "2026-05-17T17:35:45.123Z",
        "updated_at": "2026-05-17T18:46:23.456Z",
        "model": MODEL,
        "model_output_name": OUTPUT,
        "training_file": "file-1",
        "n_epochs": 3,
        "events": [],
        **extra,
    }


FILE = {
    "id": "file-1",
    "object": "file",
    "created_at": 1_715_021_438,
    "filename": "math.jsonl",
    "bytes": 120,
    "purpose": "fine-tune",
    "Processed": True,
    "FileType": "jsonl",
    "LineCount": 2,
}


def redirect(file_id: str = "file-1") -> httpx.Response:
    """``POST /files``'s answer: go and put the bytes at a signed URL."""
    return httpx.Response(302, headers={"Location": SIGNED, "X-Together-File-Id": file_id})


class Uploads:
    """The three routes of an upload."""

    def __init__(self, api: respx.MockRouter, file_id: str = "file-1") -> None:
        self.files = api.post(url("/files")).mock(return_value=redirect(file_id))
        self.put = api.put(STORAGE).mock(return_value=httpx.Response(200))
        self.preprocess = api.post(url(f"/files/{file_id}/preprocess")).mock(
            return_value=ok({**FILE, "id": file_id})
        )


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """Together's API and its storage; a request to any unmocked route fails the test."""
    with respx.mock(assert_all_called=False) as router:
        yield router


def _overrides(retry: Mapping[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    capabilities = {**FakeBackends.capabilities(), "chat": "together", "training": "together"}
    return {
        "capabilities": capabilities,
        "backends": {"together": settings},
        "retry": {"attempts": 3, "jitter_s": 0, **(retry or {})},
    }


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def hub(sleeps: RecordingSleep) -> Iterator[Hub]:
    made = make_test_hub(
        overrides=_overrides(),
        plugins=[("openai", modelport_openai)],
        sleep=sleeps,
        env={"TOGETHER_API_KEY": KEY},
    )
    yield made
    made.close()


@pytest.fixture
async def async_hub(sleeps: RecordingSleep) -> AsyncIterator[AsyncHub]:
    made = make_test_async_hub(
        overrides=_overrides(),
        plugins=[("openai", modelport_openai)],
        sleep=sleeps,
        env={"TOGETHER_API_KEY": KEY},
    )
    yield made
    await made.aclose()


@pytest.fixture
def backend(hub: Hub) -> TogetherBackend:
    found = hub.backend("training")
    assert isinstance(found, TogetherBackend)
    return found


def sent(route: respx.Route, index: int = -1) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls[index].request.content)
    return body


# --- the preset -------------------------------------------------------------------------------


def test_the_together_preset_offers_training() -> None:
    from modelport import make_plugins

    spec = make_plugins(autoload=False, plugins=[("openai", modelport_openai)]).registry.get(
        "together"
    )
    assert spec is not None
    assert {c.value for c in spec.capabilities} == {"chat", "vision", "training"}
    assert "fine-tuning" in spec.description


def test_the_trainer_says_what_the_dataset_check_needs(backend: TogetherBackend) -> None:
    assert isinstance(backend, HasMinExamples)
    assert backend.min_examples == 1
    # the longest example depends on the model: no limit is claimed (the attribute is absent)
    trainer: Any = backend
    assert not isinstance(trainer, HasExampleTokenLimit)
    assert backend.training_price(MODEL) is None  # Together publishes no per-model table
    assert backend.training_warnings(MODEL) == []
    (warning,) = backend.training_warnings("gpt-4o-mini")
    assert "not a Together model name" in warning
    assert "fine-tuning-models" in warning


def test_the_openai_trainer_keeps_its_token_limit() -> None:
    hub = make_test_hub(
        overrides={
            "capabilities": {**FakeBackends.capabilities(), "training": "openai"},
            "backends": {"openai": {}},
        },
        plugins=[("openai", modelport_openai)],
        env={"OPENAI_API_KEY": "sk-" + "a" * 40},
    )
    with hub:
        trainer = hub.backend("training")
        assert isinstance(trainer, HasExampleTokenLimit)
        assert trainer.example_token_limit == 65_536


# --- upload -----------------------------------------------------------------------------------


def test_upload_asks_for_a_signed_url_puts_the_bytes_and_preprocesses(
    api: respx.MockRouter, backend: TogetherBackend
) -> None:
    uploads = Uploads(api)
    assert backend.upload(DATASET) == "file-1"

    first = uploads.files.calls.last.request
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(urllib.parse.parse_qsl(first.content.decode())) == {
        "purpose": "fine-tune",
        "file_name": "math.jsonl",
        "file_type": "jsonl",
    }

    put = uploads.put.calls.last.request
    assert put.content == dataset_to_jsonl(DATASET).encode()
    assert "authorization" not in put.headers  # the signed URL is the credential
    assert put.url.params["X-Amz-Signature"] == "5f" * 16

    done = uploads.preprocess.calls.last.request
    assert done.headers["authorization"] == f"Bearer {KEY}"
    assert done.content == b""


def test_upload_reports_progress_at_both_ends(api: respx.MockRouter, hub: Hub) -> None:
    Uploads(api)
    api.post(url("/fine-tunes")).mock(return_value=ok(job()))
    events: list[UploadProgress] = []
    hub.train(DATASET, base_model=MODEL, on_progress=events.append)
    size = len(dataset_to_jsonl(DATASET).encode())
    assert events[0] == UploadProgress("training")
    assert UploadProgress("training", 0, size) in events
    assert events[-1] == UploadProgress("training", size, size, file_id="file-1")


def test_an_upload_that_is_not_redirected_is_a_response_error(
    api: respx.MockRouter, backend: TogetherBackend
) -> None:
    api.post(url("/files")).mock(return_value=ok({"id": "file-1"}))
    with pytest.raises(Exception, match="not sent to storage") as caught:
        backend.upload(DATASET)
    assert "X-Together-File-Id" in str(caught.value)


def test_a_refused_upload_says_why(api: respx.MockRouter, backend: TogetherBackend) -> None:
    api.post(url("/files")).mock(return_value=error(401, "Invalid API key"))
    with pytest.raises(AuthenticationError, match="Invalid API key") as caught:
        backend.upload(DATASET)
    assert "TOGETHER_API_KEY" in (caught.value.hint or "")
    assert "free trial" in (caught.value.hint or "")


@pytest.mark.parametrize("cleanup", [200, 500])
def test_a_failed_put_is_the_storage_error_and_the_reserved_file_is_deleted(
    api: respx.MockRouter, backend: TogetherBackend, cleanup: int
) -> None:
    api.post(url("/files")).mock(return_value=redirect())
    api.put(STORAGE).mock(
        return_value=httpx.Response(
            403, content=b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message>"
        )
    )
    deleted = api.delete(url("/files/file-1")).mock(
        return_value=ok({"id": "file-1", "deleted": True})
        if cleanup == 200
        else error(500, "try later")
    )
    with pytest.raises(Exception, match="HTTP 403") as caught:  # the upload's error, either way
        backend.upload(DATASET)
    assert "5f" * 16 not in str(caught.value)
    assert "storage URL" in (getattr(caught.value, "hint", None) or "")
    assert deleted.call_count == 1


def test_delete_file(api: respx.MockRouter, backend: TogetherBackend) -> None:
    route = api.delete(url("/files/file-1")).mock(
        return_value=ok({"id": "file-1", "deleted": True})
    )
    backend.delete_file("file-1")
    assert route.call_count == 1
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


# --- create -----------------------------------------------------------------------------------


def test_train_uploads_and_creates_a_job_with_the_hyperparameters_mapped(
    api: respx.MockRouter, hub: Hub
) -> None:
    uploads = Uploads(api)
    create = api.post(url("/fine-tunes")).mock(return_value=ok(job()))
    started = hub.train(
        DATASET,
        base_model=MODEL,
        suffix="math",
        hyperparameters={
            "n_epochs": 3,
            "learning_rate": 2e-5,
            "batch_size": 8,
            "n_checkpoints": 2,
            "warmup_ratio": 0.1,
            "lora": True,
            "lora_r": 16,
            "lora_dropout": 0.05,
            "train_on_inputs": "auto",
            "wandb_api_key": "wb-secret-key-123456",
        },
    )
    assert (started.id, started.status, started.backend) == ("ft-1", JobStatus.QUEUED, "together")
    assert uploads.put.call_count == 1
    assert create.calls.last.request.headers["authorization"] == f"Bearer {KEY}"
    assert sent(create) == {
        "model": MODEL,
        "training_file": "file-1",
        "suffix": "math",
        "n_epochs": 3,
        "learning_rate": 2e-5,
        "batch_size": 8,
        "n_checkpoints": 2,
        "warmup_ratio": 0.1,
        "training_type": {"type": "Lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05},
        "training_method": {"method": "sft", "train_on_inputs": "auto"},
        "wandb_key": "wb-secret-key-123456",
    }
    (record,) = hub.jobs()
    assert (record.job_id, record.backend, record.base_model) == ("ft-1", "together", MODEL)


def test_a_plain_job_leaves_the_defaults_to_together(api: respx.MockRouter, hub: Hub) -> None:
    Uploads(api)
    api.post(url("/files")).mock(side_effect=[redirect("file-1"), redirect("file-2")])
    api.post(url("/files/file-2/preprocess")).mock(return_value=ok({**FILE, "id": "file-2"}))
    create = api.post(url("/fine-tunes")).mock(return_value=ok(job()))
    hub.train(DATASET, base_model=MODEL, validation=DATASET)
    assert sent(create) == {"model": MODEL, "training_file": "file-1", "validation_file": "file-2"}


def test_lora_without_a_rank_takes_the_models_largest(api: respx.MockRouter, hub: Hub) -> None:
    Uploads(api)
    limits = api.get(url("/fine-tunes/models/limits")).mock(
        return_value=ok(
            {
                "max_num_epochs": 20,
                "max_learning_rate": 1.0,
                "min_learning_rate": 1e-8,
                "full_training": None,
                "lora_training": {
                    "max_rank": 64,
                    "max_batch_size": 96,
                    "min_batch_size": 8,
                    "target_modules": ["q_proj", "v_proj"],
                },
            }
        )
    )
    create = api.post(url("/fine-tunes")).mock(return_value=ok(job()))
    hub.train(DATASET, base_model=MODEL, hyperparameters={"lora": True})
    assert limits.calls.last.request.url.params["model_name"] == MODEL
    assert sent(create)["training_type"] == {"type": "Lora", "lora_r": 64, "lora_alpha": 128}


def test_lora_for_a_model_without_it_is_refused_before_a_job_starts(
    api: respx.MockRouter, hub: Hub
) -> None:
    Uploads(api)
    api.get(url("/fine-tunes/models/limits")).mock(
        return_value=ok({"full_training": {"max_batch_size": 8, "min_batch_size": 8}})
    )
    create = api.post(url("/fine-tunes")).mock(return_value=ok(job()))
    deleted = api.delete(url("/files/file-1")).mock(return_value=ok({"deleted": True}))
    with pytest.raises(UnsupportedError, match="no LoRA adapters"):
        hub.train(DATASET, base_model=MODEL, hyperparameters={"lora": True})
    assert create.call_count == 0
    assert deleted.call_count == 1  # the orphaned upload is cleaned up


def test_full_training_and_dpo() -> None:
    spec = JobSpec(
        MODEL,
        "file-1",
        hyperparameters={"lora": False, "training_method": "dpo", "dpo_beta": 0.1},
    )
    assert together_job_body(spec) == {
        "model": MODEL,
        "training_file": "file-1",
        "training_type": {"type": "Full"},
        "training_method": {"method": "dpo", "dpo_beta": 0.1},
    }
    passed = JobSpec(MODEL, "file-1", hyperparameters={"training_type": {"type": "Full"}})
    assert together_job_body(passed)["training_type"] == {"type": "Full"}


def test_contradictory_lora_settings_are_refused() -> None:
    spec = JobSpec(MODEL, "file-1", hyperparameters={"lora": False, "lora_r": 8})
    with pytest.raises(InvalidRequestError, match="lora = false"):
        together_job_body(spec)


def test_a_rate_limited_create_is_retried_after_the_wait_asked(
    api: respx.MockRouter, hub: Hub, sleeps: RecordingSleep
) -> None:
    uploads = Uploads(api)
    create = api.post(url("/fine-tunes")).mock(
        side_effect=[error(429, "slow down", **{"retry-after": "7"}), ok(job())]
    )
    assert hub.train(DATASET, base_model=MODEL).id == "ft-1"
    assert create.call_count == 2
    assert uploads.files.call_count == 1  # the upload is not repeated
    assert 7 in sleeps.waits


def test_a_server_error_on_create_is_not_retried(api: respx.MockRouter, hub: Hub) -> None:
    Uploads(api)
    create = api.post(url("/fine-tunes")).mock(return_value=error(500, "internal error"))
    api.delete(url("/files/file-1")).mock(return_value=ok({"deleted": True}))
    with pytest.raises(TransientError, match="internal error"):
        hub.train(DATASET, base_model=MODEL)
    assert create.call_count == 1  # the job may have started: never created twice


# --- retrieve, list, cancel, events, checkpoints ---------------------------------------------


@pytest.mark.parametrize(
    ("remote", "status"),
    [
        ("pending", JobStatus.QUEUED),
        ("queued", JobStatus.QUEUED),
        ("running", JobStatus.RUNNING),
        ("compressing", JobStatus.RUNNING),
        ("uploading", JobStatus.RUNNING),
        ("cancel_requested", JobStatus.RUNNING),
        ("cancelled", JobStatus.CANCELLED),
        ("error", JobStatus.FAILED),
        ("user_error", JobStatus.FAILED),
        ("completed", JobStatus.SUCCEEDED),
        ("a_status_added_later", JobStatus.RUNNING),
    ],
)
def test_statuses_map_to_the_core(
    api: respx.MockRouter, hub: Hub, remote: str, status: JobStatus
) -> None:
    api.get(url("/fine-tunes/ft-1")).mock(return_value=ok(job(remote)))
    assert hub.job("ft-1").status is status


def test_a_completed_job_names_its_model(api: respx.MockRouter, hub: Hub) -> None:
    api.get(url("/fine-tunes/ft-1")).mock(
        return_value=ok(job("completed", steps_completed=30, total_steps=30))
    )
    done = hub.job("ft-1")
    assert done.fine_tuned_model == done.result == OUTPUT
    assert done.created_at == datetime(2026, 5, 17, 17, 35, 45, 123_000, tzinfo=UTC)
    assert done.finished_at == datetime(2026, 5, 17, 18, 46, 23, 456_000, tzinfo=UTC)
    assert (done.step, done.total_steps) == (30, 30)
    assert done.training_file == "file-1"


def test_a_running_job_reports_progress_and_no_model_yet(
    api: respx.MockRouter, backend: TogetherBackend
) -> None:
    api.get(url("/fine-tunes/ft-1")).mock(
        return_value=ok(
            job(
                "running",
                steps_completed=12,
                total_steps=30,
                progress={"estimate_available": True, "seconds_remaining": 95},
            )
        )
    )
    running = backend.get_job("ft-1")
    assert (running.fine_tuned_model, running.result, running.finished_at) == (None, None, None)
    assert (running.step, running.total_steps, running.seconds_left) == (12, 30, 95.0)
    assert (running.progress() or "").startswith("step 12/30, about ")


def test_a_failed_job_carries_its_last_error_event(api: respx.MockRouter, hub: Hub) -> None:
    events = [
        {"object": "fine-tune-event", "created_at": "2026-05-17T17:36:00Z", "level": "Info",
         "message": "Job started", "type": "JOB_START"},
        {"object": "fine-tune-event", "created_at": "2026-05-17T17:37:00Z", "level": "Error",
         "message": "Line 3 of the training file has no assistant message",
         "type": "JOB_USER_ERROR"},
    ]  # fmt: skip
    api.get(url("/fine-tunes/ft-1")).mock(return_value=ok(job("user_error", events=events)))
    failed = hub.job("ft-1")
    assert failed.error == "Line 3 of the training file has no assistant message"
    assert failed.fine_tuned_model is None


def test_jobs_are_listed_newest_first_within_the_limit(api: respx.MockRouter, hub: Hub) -> None:
    route = api.get(url("/fine-tunes")).mock(
        return_value=ok(
            {
                "object": "list",
                "data": [
                    job(id="ft-old", created_at="2026-01-01T00:00:00Z"),
                    job(id="ft-new", created_at="2026-03-01T00:00:00Z"),
                    job(id="ft-mid", created_at="2026-02-01T00:00:00Z"),
                ],
            }
        )
    )
    assert [j.id for j in hub.remote_jobs(limit=2)] == ["ft-new", "ft-mid"]
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


def test_cancel(api: respx.MockRouter, hub: Hub) -> None:
    route = api.post(url("/fine-tunes/ft-1/cancel")).mock(return_value=ok(job("cancel_requested")))
    assert hub.cancel_job("ft-1").status is JobStatus.RUNNING  # stopping: it may yet finish
    assert route.calls.last.request.content == b""


def test_events_are_oldest_first_with_their_levels(api: respx.MockRouter, hub: Hub) -> None:
    api.get(url("/fine-tunes/ft-1/events")).mock(
        return_value=ok({"object": "list", "data": [
            {"object": "fine-tune-event", "created_at": "2026-05-17T17:40:00Z",
             "level": "Warning", "message": "Checkpoint saved at step 10, loss 1.25",
             "type": "CHECKPOINT_SAVE"},
            {"object": "fine-tune-event", "created_at": "2026-05-17T17:35:45Z", "level": "",
             "message": "", "type": "JOB_PENDING"},
            {"object": "fine-tune-event", "created_at": "2026-05-17T17:36:00Z", "level": "Info",
             "message": "Weights & Biases run", "type": "WANDB_INIT",
             "wandb_url": "https://wandb.ai/acme/together/runs/1"},
        ]})
    )  # fmt: skip
    events = hub.job_events("ft-1")
    assert [(e.level, e.message) for e in events] == [
        ("info", "JOB_PENDING"),
        ("info", "Weights & Biases run (https://wandb.ai/acme/together/runs/1)"),
        ("warning", "Checkpoint saved at step 10, loss 1.25"),
    ]
    assert all(e.created_at.tzinfo is not None for e in events)


def test_checkpoints(api: respx.MockRouter, backend: TogetherBackend) -> None:
    api.get(url("/fine-tunes/ft-1/checkpoints")).mock(
        return_value=ok({"data": [
            {"step": 30, "checkpoint_type": "Final", "created_at": "2026-05-17T18:40:00Z"},
            {"step": 10, "checkpoint_type": "Intermediate", "created_at": "2026-05-17T17:50:00Z"},
        ]})
    )  # fmt: skip
    assert backend.checkpoints("ft-1") == [
        Checkpoint("ft-1:10", "Intermediate", 10, datetime(2026, 5, 17, 17, 50, tzinfo=UTC)),
        Checkpoint("ft-1", "Final", 30, datetime(2026, 5, 17, 18, 40, tzinfo=UTC)),
    ]


# --- errors -----------------------------------------------------------------------------------


def test_a_bad_key_is_an_authentication_error(api: respx.MockRouter, hub: Hub) -> None:
    route = api.get(url("/fine-tunes/ft-1")).mock(return_value=error(401, "Invalid API key"))
    with pytest.raises(AuthenticationError, match="Invalid API key") as caught:
        hub.job("ft-1")
    assert "TOGETHER_API_KEY" in (caught.value.hint or "")
    assert caught.value.backend == "together"
    assert route.call_count == 1
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("path", ["/fine-tunes/ft-404", "/fine-tunes/ft-404/events"])
def test_an_unknown_job_is_not_found(api: respx.MockRouter, hub: Hub, path: str) -> None:
    api.get(url(path)).mock(return_value=error(404, "Fine-tune job ft-404 not found"))
    call = hub.job if path.endswith("404") else hub.job_events
    with pytest.raises(NotFoundError, match="ft-404 not found") as caught:
        call("ft-404")
    assert "no such job" in (caught.value.hint or "")


def test_a_rate_limited_lookup_is_retried(
    api: respx.MockRouter, hub: Hub, sleeps: RecordingSleep
) -> None:
    route = api.get(url("/fine-tunes/ft-1")).mock(
        side_effect=[error(429, "rate limited", **{"retry-after": "2"}), ok(job("running"))]
    )
    assert hub.job("ft-1").status is JobStatus.RUNNING
    assert route.call_count == 2
    assert 2 in sleeps.waits


# --- async --------------------------------------------------------------------------------------


class OnLoop:
    """Answers ``response``, noting whether each request came from the event loop's thread."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.threads: list[bool] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.threads.append(threading.current_thread() is threading.main_thread())
        return self.response


async def test_the_async_hub_trains_follows_and_cancels_natively(
    api: respx.MockRouter, async_hub: AsyncHub
) -> None:
    uploads = Uploads(api)
    create = OnLoop(ok(job()))
    api.post(url("/fine-tunes")).mock(side_effect=create)
    get = OnLoop(ok(job("running")))
    api.get(url("/fine-tunes/ft-1")).mock(side_effect=get)
    api.get(url("/fine-tunes/ft-1/events")).mock(
        return_value=ok({"data": [{"created_at": "2026-05-17T17:36:00Z", "message": "started"}]})
    )
    cancel = api.post(url("/fine-tunes/ft-1/cancel")).mock(return_value=ok(job("cancelled")))
    events: list[UploadProgress] = []
    started = await async_hub.train(
        DATASET, base_model=MODEL, hyperparameters={"n_epochs": 2}, on_progress=events.append
    )
    assert started.id == "ft-1"
    assert (await async_hub.job("ft-1")).status is JobStatus.RUNNING
    assert [e.message for e in await async_hub.job_events("ft-1")] == ["started"]
    assert (await async_hub.cancel_job("ft-1")).status is JobStatus.CANCELLED
    assert create.threads == get.threads == [True]  # aupload/astart/aget_job, not a thread
    assert uploads.put.calls.last.request.content == dataset_to_jsonl(DATASET).encode()
    assert "authorization" not in uploads.put.calls.last.request.headers
    assert cancel.call_count == 1
    assert events[-1].file_id == "file-1"


async def test_async_errors_map_the_same(api: respx.MockRouter, async_hub: AsyncHub) -> None:
    api.get(url("/fine-tunes/ft-404")).mock(return_value=error(404, "not found"))
    with pytest.raises(NotFoundError) as caught:
        await async_hub.job("ft-404")
    assert "no such job" in (caught.value.hint or "")


def test_upload_takes_progress_by_keyword(backend: TogetherBackend) -> None:
    assert isinstance(backend, ReportsUploadProgress)
    import inspect

    assert "on_progress" in inspect.signature(backend.upload).parameters
    assert "on_progress" in inspect.signature(backend.aupload).parameters


# --- conformance --------------------------------------------------------------------------------


class TogetherService:
    """Together's files and fine-tunes, faked statefully."""

    def __init__(self, api: respx.MockRouter) -> None:
        self.failing: int | None = None
        self.files: list[str] = []
        self.stored: set[str] = set()
        self.jobs: dict[str, dict[str, Any]] = {}
        api.post(url("/files")).mock(side_effect=self.sign)
        api.put(url__startswith=STORAGE.rsplit("/", 1)[0]).mock(side_effect=self.put)
        api.post(url__regex=rf"{BASE}/files/(?P<file_id>[^/]+)/preprocess$").mock(
            side_effect=self.preprocess
        )
        api.post(url("/fine-tunes")).mock(side_effect=self.create)
        api.get(url("/fine-tunes")).mock(side_effect=self.list)
        api.get(url__regex=rf"{BASE}/fine-tunes/(?P<job_id>[^/]+)$").mock(side_effect=self.get)
        api.post(url__regex=rf"{BASE}/fine-tunes/(?P<job_id>[^/]+)/cancel$").mock(
            side_effect=self.cancel
        )
        api.get(url__regex=rf"{BASE}/fine-tunes/(?P<job_id>[^/]+)/events$").mock(
            side_effect=self.events
        )

    def sign(self, request: httpx.Request) -> httpx.Response:
        self.files.append(f"file-{len(self.files) + 1}")
        location = f"{STORAGE.rsplit('/', 1)[0]}/{self.files[-1]}.jsonl?sig=1"
        return httpx.Response(
            302, headers={"Location": location, "X-Together-File-Id": self.files[-1]}
        )

    def put(self, request: httpx.Request) -> httpx.Response:
        self.stored.add(request.url.path.rsplit("/", 1)[1].removesuffix(".jsonl"))
        return httpx.Response(200)

    def preprocess(self, request: httpx.Request, file_id: str) -> httpx.Response:
        if file_id not in self.stored:
            return error(400, "file not uploaded")
        return ok({**FILE, "id": file_id})

    def create(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["training_file"] not in self.stored:
            return error(400, "invalid training_file")
        job_id = f"ft-{len(self.jobs) + 1}"
        self.jobs[job_id] = job(
            "pending",
            id=job_id,
            model=body["model"],
            training_file=body["training_file"],
            created_at=f"2026-05-17T17:{len(self.jobs):02d}:00Z",
        )
        return ok(self.jobs[job_id])

    def list(self, request: httpx.Request) -> httpx.Response:
        return ok({"object": "list", "data": list(self.jobs.values())})  # oldest first

    def _job(self, job_id: str) -> httpx.Response | None:
        if self.failing is not None:
            return error(self.failing, "it failed")
        if job_id not in self.jobs:
            return error(404, f"Fine-tune job {job_id} not found")
        return None

    def get(self, request: httpx.Request, job_id: str) -> httpx.Response:
        failed = self._job(job_id)
        if failed is None and self.jobs[job_id]["status"] == "cancel_requested":
            self.jobs[job_id]["status"] = "cancelled"  # as the service does, once it stopped
        return failed or ok(self.jobs[job_id])

    def cancel(self, request: httpx.Request, job_id: str) -> httpx.Response:
        if (failed := self._job(job_id)) is not None:
            return failed
        self.jobs[job_id]["status"] = "cancel_requested"
        return ok(self.jobs[job_id])

    def events(self, request: httpx.Request, job_id: str) -> httpx.Response:
        if (failed := self._job(job_id)) is not None:
            return failed
        return ok({"object": "list", "data": [
            {"created_at": "2026-05-17T18:00:05Z", "level": "Info", "message": "Job started"},
            {"created_at": "2026-05-17T18:00:00Z", "level": "Info", "message": "Job pending"},
        ]})  # fmt: skip


STATUS = {"auth": 401, "rate_limit": 429, "server": 500, "bad_request": 400}


class TestTogetherTraining(TrainingConformance):
    backend = "together"
    plugins = (("openai", modelport_openai),)
    base_model = MODEL

    def env(self) -> Mapping[str, str]:
        return {"TOGETHER_API_KEY": KEY}

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        return {}

    @pytest.fixture(autouse=True)
    def _router(self, api: respx.MockRouter) -> None:
        self.api = api

    def arrange_service(self) -> None:
        self.service = TogetherService(self.api)

    def arrange_failure(self, kind: str) -> None:
        self.service.failing = STATUS[kind]

    def call_that_fails(self, backend_object: Any) -> object:
        return backend_object.get_job("ft-1")
