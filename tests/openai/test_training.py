"""Fine-tuning through the OpenAI backend: upload, start, follow, cancel, refusals."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from modelport import JobStatus, Message, TrainingDataset, TrainingExample
from modelport.errors import InvalidRequestError, NotFoundError, TransientError, UnsupportedError
from modelport.training import dataset_to_jsonl
from modelport.types import UploadProgress

from .conftest import MakeAsyncHub, MakeHub, OnLoop, error, ok

DATASET = TrainingDataset(
    [
        TrainingExample([Message("user", "2+2?"), Message("assistant", "4")]),
        TrainingExample([Message("user", "Capital of Peru?"), Message("assistant", "Lima")]),
    ]
    + [  # OpenAI wants at least 10 examples
        TrainingExample([Message("user", f"{n}+{n}?"), Message("assistant", str(2 * n))])
        for n in range(3, 11)
    ],
    source="data/math.jsonl",
)


def job(status: str = "validating_files", **extra: Any) -> dict[str, Any]:
    return {
        "id": "ftjob-1",
        "object": "fine_tuning.job",
        "model": "gpt-4o-mini-2024-07-18",
        "created_at": 1_721_764_800,
        "finished_at": None,
        "fine_tuned_model": None,
        "status": status,
        "training_file": "file-1",
        "validation_file": None,
        "error": None,
        **extra,
    }


FILE = {"id": "file-1", "object": "file", "purpose": "fine-tune", "filename": "math.jsonl"}
DELETED = {"id": "file-1", "object": "file", "deleted": True}


def _multipart_fields(request: httpx.Request) -> dict[str, bytes]:
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    fields = {}
    for part in request.content.split(b"--" + boundary)[1:-1]:
        head, _, body = part.partition(b"\r\n\r\n")
        name = head.split(b'name="')[1].split(b'"')[0].decode()
        fields[name] = body.removesuffix(b"\r\n")
    return fields


def test_train_uploads_the_dataset_and_starts_a_job(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    upload = api.post("/files").mock(return_value=ok(FILE))
    create = api.post("/fine_tuning/jobs").mock(return_value=ok(job()))
    hub = make_hub()
    started = hub.train(
        DATASET,
        base_model="gpt-4o-mini-2024-07-18",
        suffix="math",
        hyperparameters={"n_epochs": 3},
        description="arithmetic",
    )
    assert (started.id, started.status, started.backend) == (
        "ftjob-1",
        JobStatus.VALIDATING,
        "openai",
    )
    fields = _multipart_fields(upload.calls.last.request)
    assert fields["purpose"] == b"fine-tune"
    lines = [json.loads(line) for line in fields["file"].decode().splitlines()]
    assert lines[1] == {
        "messages": [
            {"role": "user", "content": "Capital of Peru?"},
            {"role": "assistant", "content": "Lima"},
        ]
    }
    assert b'filename="math.jsonl"' in upload.calls.last.request.content
    assert json.loads(create.calls.last.request.content) == {
        "model": "gpt-4o-mini-2024-07-18",
        "training_file": "file-1",
        "suffix": "math",
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
    }
    (record,) = hub.jobs()
    assert (record.job_id, record.source, record.description) == (
        "ftjob-1", "data/math.jsonl", "arithmetic"
    )  # fmt: skip


def test_a_validation_file_is_uploaded_and_named(api: respx.MockRouter, make_hub: MakeHub) -> None:
    api.post("/files").mock(side_effect=[ok(FILE), ok({**FILE, "id": "file-2"})])
    create = api.post("/fine_tuning/jobs").mock(return_value=ok(job()))
    make_hub().train(DATASET, base_model="gpt-4o-mini", validation=DATASET)
    assert json.loads(create.calls.last.request.content)["validation_file"] == "file-2"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (403, "Fine-tuning is not available for your organization."),
        (400, "New fine-tuning jobs are no longer accepted for this model."),
        (404, "Not Found"),  # an OpenAI-compatible server without the endpoint
    ],
)
def test_a_refusal_to_fine_tune_is_unsupported_with_the_providers_message_and_never_retried(
    api: respx.MockRouter, make_hub: MakeHub, status: int, message: str
) -> None:
    api.post("/files").mock(return_value=ok(FILE))
    create = api.post("/fine_tuning/jobs").mock(return_value=error(status, message))
    deleted = api.delete("/files/file-1").mock(return_value=ok(DELETED))
    hub = make_hub()
    with pytest.raises(UnsupportedError) as caught:
        hub.train(DATASET, base_model="gpt-4o-mini")
    text = str(caught.value)
    assert message in text
    assert "2027-01-06" in text
    assert "[capabilities] training" in text
    assert text.endswith("; deleted the uploaded file file-1)")  # no orphan on the server
    assert caught.value.status == status
    assert (create.call_count, deleted.call_count) == (1, 1)
    assert hub.jobs() == ()


def test_an_ordinary_bad_request_on_create_stays_an_invalid_request(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    api.post("/files").mock(return_value=ok(FILE))
    api.post("/fine_tuning/jobs").mock(return_value=error(400, "invalid n_epochs: 0"))
    api.delete("/files/file-1").mock(return_value=ok(DELETED))
    with pytest.raises(InvalidRequestError, match="invalid n_epochs"):
        make_hub().train(DATASET, base_model="gpt-4o-mini", hyperparameters={"n_epochs": 0})


@pytest.mark.parametrize("failure", [error(500), error(503), httpx.ReadTimeout("slow")])
def test_a_create_that_may_have_happened_is_never_retried(
    api: respx.MockRouter, make_hub: MakeHub, failure: object
) -> None:
    api.post("/files").mock(return_value=ok(FILE))
    create = api.post("/fine_tuning/jobs").mock(side_effect=[failure, ok(job())])
    deleted = api.delete("/files/file-1").mock(return_value=ok(DELETED))
    with pytest.raises(TransientError) as caught:
        make_hub().train(DATASET, base_model="gpt-4o-mini")
    assert create.call_count == 1  # a second create could start a second paid job
    # the job may exist: its file is kept, and the message says so and names it
    assert deleted.call_count == 0
    assert (
        "a job may have started anyway (check: modelport jobs list --remote), "
        "so the uploaded file file-1 was kept"
    ) in str(caught.value)


def test_an_upload_that_may_have_happened_is_never_retried(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    upload = api.post("/files").mock(side_effect=[error(502), ok(FILE)])
    create = api.post("/fine_tuning/jobs").mock(return_value=ok(job()))
    with pytest.raises(TransientError):
        make_hub().train(DATASET, base_model="gpt-4o-mini")
    assert (upload.call_count, create.call_count) == (1, 0)


#: Big enough to go out in several 64 KiB reads.
BIG = TrainingDataset(
    [
        TrainingExample([Message("user", f"{n} " + "why? " * 400), Message("assistant", "so")])
        for n in range(100)
    ],
    source="big.jsonl",
)


def test_upload_progress_follows_the_bytes_as_they_go_out(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    upload = api.post("/files").mock(return_value=ok(FILE))
    api.post("/fine_tuning/jobs").mock(return_value=ok(job()))
    events: list[UploadProgress] = []
    make_hub().train(BIG, base_model="gpt-4o-mini", on_progress=events.append)
    size = len(dataset_to_jsonl(BIG).encode())
    assert size > 3 * 65_536
    assert events[0] == UploadProgress("training")  # before a byte is sent
    assert events[-1] == UploadProgress("training", size, size, file_id="file-1")
    sent = [e.sent for e in events[1:-1]]
    assert sent[0] == 0
    assert sent[-1] == size
    assert len(sent) >= 5  # 0, then one per 64 KiB read
    assert sent == sorted(sent)
    assert {e.total for e in events[1:]} == {size}
    body = _multipart_fields(upload.calls.last.request)["file"]
    assert body == dataset_to_jsonl(BIG).encode()  # the progress wrapper changes nothing sent


async def test_async_upload_progress_and_orphan_deletion(
    api: respx.MockRouter, make_async_hub: MakeAsyncHub
) -> None:
    api.post("/files").mock(return_value=ok(FILE))
    api.post("/fine_tuning/jobs").mock(return_value=error(400, "invalid n_epochs: 0"))
    deleted = api.delete("/files/file-1").mock(return_value=ok(DELETED))
    events: list[UploadProgress] = []
    with pytest.raises(InvalidRequestError) as caught:
        await make_async_hub().train(BIG, base_model="gpt-4o-mini", on_progress=events.append)
    size = len(dataset_to_jsonl(BIG).encode())
    assert events[-1] == UploadProgress("training", size, size, file_id="file-1")
    assert len(events) >= 6
    assert deleted.call_count == 1
    assert str(caught.value).endswith("(deleted the uploaded file file-1)")


def test_a_file_that_cannot_be_deleted_is_named_in_the_error(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    api.post("/files").mock(side_effect=[ok(FILE), ok({**FILE, "id": "file-2"})])
    api.post("/fine_tuning/jobs").mock(return_value=error(400, "invalid n_epochs: 0"))
    api.delete("/files/file-1").mock(return_value=ok(DELETED))
    api.delete("/files/file-2").mock(return_value=error(404, "No such file"))
    with pytest.raises(InvalidRequestError) as caught:
        make_hub().train(DATASET, base_model="gpt-4o-mini", validation=DATASET)
    assert str(caught.value).endswith(
        "(deleted the uploaded file file-1; the uploaded file file-2 is left on the backend: "
        "delete it there)"
    )


def test_a_rate_limited_create_is_retried(api: respx.MockRouter, make_hub: MakeHub) -> None:
    api.post("/files").mock(return_value=ok(FILE))
    create = api.post("/fine_tuning/jobs").mock(
        side_effect=[error(429, **{"retry-after": "1"}), ok(job())]
    )
    assert make_hub().train(DATASET, base_model="gpt-4o-mini").id == "ftjob-1"
    assert create.call_count == 2


@pytest.mark.parametrize(
    ("remote", "status"),
    [
        ("validating_files", JobStatus.VALIDATING),
        ("queued", JobStatus.QUEUED),
        ("running", JobStatus.RUNNING),
        ("succeeded", JobStatus.SUCCEEDED),
        ("failed", JobStatus.FAILED),
        ("cancelled", JobStatus.CANCELLED),
        ("a_status_added_later", JobStatus.RUNNING),
    ],
)
def test_job_statuses_map_to_the_core(
    api: respx.MockRouter, make_hub: MakeHub, remote: str, status: JobStatus
) -> None:
    api.get("/fine_tuning/jobs/ftjob-1").mock(return_value=ok(job(remote)))
    assert make_hub().job("ftjob-1").status == status


def test_retrieve_a_finished_job(api: respx.MockRouter, make_hub: MakeHub) -> None:
    api.get("/fine_tuning/jobs/ftjob-1").mock(
        return_value=ok(
            job("succeeded", finished_at=1_721_768_400, fine_tuned_model="ft:gpt-4o-mini:acme::1")
        )
    )
    done = make_hub().job("ftjob-1")
    assert done.fine_tuned_model == "ft:gpt-4o-mini:acme::1"
    assert done.finished_at is not None
    assert done.created_at is not None
    assert done.finished_at > done.created_at


def test_a_failed_job_carries_its_error(api: respx.MockRouter, make_hub: MakeHub) -> None:
    failed = job(
        "failed", error={"code": "invalid_file", "message": "line 3: no assistant message"}
    )
    api.get("/fine_tuning/jobs/ftjob-1").mock(return_value=ok(failed))
    assert make_hub().job("ftjob-1").error == "line 3: no assistant message"


def test_an_unknown_job_is_not_found(api: respx.MockRouter, make_hub: MakeHub) -> None:
    api.get("/fine_tuning/jobs/ftjob-404").mock(return_value=error(404, "No such job"))
    with pytest.raises(NotFoundError, match="No such job"):
        make_hub().job("ftjob-404")


def test_a_job_id_cannot_escape_its_path(api: respx.MockRouter, make_hub: MakeHub) -> None:
    route = api.get(url__regex=r"/fine_tuning/jobs/.+").mock(return_value=ok(job()))
    make_hub().job("../files/x")
    assert route.calls.last.request.url.raw_path.endswith(b"/fine_tuning/jobs/..%2Ffiles%2Fx")


def test_list_cancel_and_events(api: respx.MockRouter, make_hub: MakeHub) -> None:
    listed = api.get("/fine_tuning/jobs").mock(
        return_value=ok(
            {"data": [job("running"), job("succeeded", id="ftjob-0")], "has_more": False}
        )
    )
    api.post("/fine_tuning/jobs/ftjob-1/cancel").mock(return_value=ok(job("cancelled")))
    api.get("/fine_tuning/jobs/ftjob-1/events").mock(
        return_value=ok(
            {
                "data": [  # newest first, as the API sends them
                    {"created_at": 1_721_764_900, "level": "info", "message": "Step 2/10"},
                    {"created_at": 1_721_764_850, "level": "warn", "message": "Validating"},
                ]
            }
        )
    )
    hub = make_hub()
    assert [j.id for j in hub.remote_jobs(limit=5)] == ["ftjob-1", "ftjob-0"]
    assert listed.calls.last.request.url.params["limit"] == "5"
    assert hub.cancel_job("ftjob-1").status == JobStatus.CANCELLED
    events = hub.job_events("ftjob-1")
    assert [(e.level, e.message) for e in events] == [("warn", "Validating"), ("info", "Step 2/10")]


def test_wait_job_polls_until_done_and_keeps_the_record(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    api.post("/files").mock(return_value=ok(FILE))
    api.post("/fine_tuning/jobs").mock(return_value=ok(job("validating_files")))
    polled = api.get("/fine_tuning/jobs/ftjob-1").mock(
        side_effect=[
            ok(job("queued")),
            ok(job("running")),
            ok(job("succeeded", fine_tuned_model="ft:m")),
        ]
    )
    hub = make_hub()
    hub.train(DATASET, base_model="gpt-4o-mini")
    seen: list[JobStatus] = []
    done = hub.wait_job("ftjob-1", poll_s=1, on_update=lambda j: seen.append(j.status))
    assert done.status == JobStatus.SUCCEEDED
    assert polled.call_count == 3
    (record,) = hub.jobs()
    assert [c.status for c in record.history] == [
        JobStatus.VALIDATING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED
    ]  # fmt: skip
    assert record.fine_tuned_model == "ft:m"


async def test_async_training_matches_sync(
    api: respx.MockRouter, make_async_hub: MakeAsyncHub
) -> None:
    api.post("/files").mock(return_value=ok(FILE))
    on_loop = OnLoop(ok(job()))
    api.post("/fine_tuning/jobs").mock(side_effect=on_loop)
    api.get("/fine_tuning/jobs/ftjob-1").mock(return_value=ok(job("running")))
    api.post("/fine_tuning/jobs/ftjob-1/cancel").mock(return_value=ok(job("cancelled")))
    api.get("/fine_tuning/jobs").mock(return_value=ok({"data": [job()]}))
    api.get("/fine_tuning/jobs/ftjob-1/events").mock(return_value=ok({"data": []}))
    hub = make_async_hub()
    started = await hub.train(DATASET, base_model="gpt-4o-mini")
    assert started.status == JobStatus.VALIDATING
    assert on_loop.threads == [True]  # the async backend method, not a worker thread
    assert (await hub.job("ftjob-1")).status == JobStatus.RUNNING
    assert [j.id for j in await hub.remote_jobs()] == ["ftjob-1"]
    assert (await hub.cancel_job("ftjob-1")).status == JobStatus.CANCELLED
    assert await hub.job_events("ftjob-1") == ()


async def test_async_refusal_is_unsupported(
    api: respx.MockRouter, make_async_hub: MakeAsyncHub
) -> None:
    api.post("/files").mock(return_value=error(403, "Fine-tuning is not available."))
    with pytest.raises(UnsupportedError, match="Fine-tuning is not available"):
        await make_async_hub().train(DATASET, base_model="gpt-4o-mini")


def test_local_presets_offer_no_training(make_hub: MakeHub) -> None:
    from modelport import Capability

    hub = make_hub("ollama", env={})
    spec = hub.plugins.registry.get("ollama")
    assert spec is not None
    assert Capability.TRAINING not in spec.capabilities


def test_check_estimates_the_cost_from_the_price_table_and_config(make_hub: MakeHub) -> None:
    hub = make_hub()
    report = hub.check_dataset(DATASET, base_model="gpt-4o-mini-2024-07-18")
    assert report.price_per_million == 3.0
    assert report.estimated_cost == pytest.approx(report.tokens * 3 * 3.0 / 1e6)
    assert hub.check_dataset(DATASET, base_model="my-own-model").estimated_cost is None
    priced = make_hub(training_prices={"my-own": 7.5})
    assert priced.check_dataset(DATASET, base_model="my-own-model").price_per_million == 7.5
    too_few = TrainingDataset(DATASET.examples[:3], source="few.jsonl")
    assert hub.check_dataset(too_few, base_model="gpt-4o-mini").problems == (
        "few.jsonl: 3 examples; at least 10 needed",
    )


def test_check_works_without_an_api_key(make_hub: MakeHub) -> None:
    report = make_hub(env={}).check_dataset(DATASET, base_model="gpt-4o-mini")
    assert report.ok
    assert report.price_per_million is None  # the trainer could not be built to ask


async def test_async_check_matches_sync(make_hub: MakeHub, make_async_hub: MakeAsyncHub) -> None:
    sync = make_hub().check_dataset(DATASET, base_model="gpt-4o-mini")
    assert await make_async_hub().check_dataset(DATASET, base_model="gpt-4o-mini") == sync
