"""The training protocol, vendor-neutral: the backend per call, events made from status
changes for a trainer without any, where a job's result lives, the base model's precedence,
how to chat with a result, and dialogues kept whole (instructions, images) as training data."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from modelport import (
    HasJobEvents,
    ImagePart,
    JobEvent,
    JobStatus,
    Message,
    TextPart,
    TrainingDataset,
    TrainingExample,
    TrainingJob,
)
from modelport.cli import CliState, cli
from modelport.datasets import dataset_to_jsonl, load_jsonl
from modelport.errors import BackendNotFoundError, InvalidRequestError
from modelport.testing import TINY_PNG, FakeBackends, FakeStatusTrainer, make_test_hub
from modelport.types import Image

from ..support import make_hub

STATUS = "fake-status-training"


def dataset(n: int = 2) -> TrainingDataset:
    return TrainingDataset(
        [
            TrainingExample([Message("user", f"q{i}"), Message("assistant", f"a{i}")])
            for i in range(n)
        ],
        source="memory",
    )


def _hub(kind: str, fakes: FakeBackends, trainer: FakeStatusTrainer, **overrides: Any) -> Any:
    return make_hub(kind, fakes, plugins=[("status", trainer)], overrides=overrides or None)


def _dialogue(fakes: FakeBackends, assistant: str | None, *messages: Message) -> str:
    dialogue = fakes.store.create_dialogue(assistant=assistant).id
    for message in messages:
        fakes.store.append(dialogue, message)
    return dialogue


# --- events are optional -----------------------------------------------------------------------


def test_the_status_trainer_has_no_events() -> None:
    assert not isinstance(FakeStatusTrainer(), HasJobEvents)


def test_a_trainer_without_events_gets_them_from_its_status_changes(
    fakes: FakeBackends, hub_kind: str
) -> None:
    trainer = FakeStatusTrainer()
    hub = _hub(hub_kind, fakes, trainer, capabilities={"training": STATUS})
    job = hub.train(dataset(), base_model="base")
    seen: list[JobEvent] = []
    done = hub.wait_job(job.id, poll_s=0.1, on_event=seen.append)
    assert done.status is JobStatus.SUCCEEDED
    assert [e.message for e in seen] == [
        "status: queued",
        "status: queued → running",
        "step 3/10, loss 0.5000, about 7s left",
        "status: running → succeeded",
    ]
    assert [e.message for e in hub.job_events(job.id)] == [
        "status: queued",
        "status: queued → running",
        "status: running → succeeded",
    ]
    # where the result lives, in the job and in its record
    assert (done.result, done.fine_tuned_model) == (f"/jobs/{job.id}/adapter", None)
    assert done.outcome == done.result
    (record,) = hub.jobs()
    assert (record.backend, record.result) == (STATUS, done.result)


def test_a_failed_status_is_an_error_event(fakes: FakeBackends, hub_kind: str) -> None:
    trainer = FakeStatusTrainer(progression=("queued", "failed"))
    hub = _hub(hub_kind, fakes, trainer, capabilities={"training": STATUS})
    job = hub.train(dataset(), base_model="base")
    hub.wait_job(job.id, poll_s=0.1)
    *_, last = hub.job_events(job.id)
    assert (last.message, last.level) == ("status: queued → failed", "error")


def test_progress_fields_read_as_one_line() -> None:
    job = TrainingJob("j", "b", "m", "running", step=5, total_steps=20, loss=1.25, seconds_left=75)
    assert job.progress() == "step 5/20, loss 1.2500, about 1m15s left"
    assert TrainingJob("j", "b", "m", "queued").progress() is None


def test_old_records_load_and_new_fields_are_kept(fakes: FakeBackends) -> None:
    from modelport import JobRecord
    from modelport.serialization import dump_record, load_record

    old = dump_record(JobRecord("j", "b", "m", "s"))
    assert "result" not in old  # nothing new is written for an old kind of record
    assert load_record(old, JobRecord).result is None
    record = JobRecord("j", "b", "m", "s", result="/x/adapter")
    assert load_record(dump_record(record), JobRecord) == record
    job = TrainingJob("j", "b", "m", "running", step=1, loss=0.5)
    assert load_record(dump_record(job), TrainingJob) == job


# --- the backend per call ----------------------------------------------------------------------


def test_train_takes_the_backend_per_call_and_jobs_follow_it(
    fakes: FakeBackends, hub_kind: str
) -> None:
    trainer = FakeStatusTrainer()
    hub = _hub(hub_kind, fakes, trainer)  # [capabilities] training: fake-training
    job = hub.train(dataset(), base_model="base", backend=STATUS)
    assert job.backend == STATUS
    assert fakes.trainer.uploads == {}
    assert len(trainer.uploads) == 1
    (record,) = hub.jobs()
    assert record.backend == STATUS
    assert hub.job(job.id).status is JobStatus.RUNNING  # asked of the trainer that runs it
    assert hub.cancel_job(job.id).status is JobStatus.CANCELLED
    with pytest.raises(InvalidRequestError, match="already cancelled"):
        hub.cancel_job(job.id)  # a finished job: nothing to cancel
    with pytest.raises(BackendNotFoundError):
        hub.train(dataset(), base_model="base", backend="no-such-trainer")


def test_dynamic_train_and_the_dataset_check_take_the_backend(
    fakes: FakeBackends, hub_kind: str
) -> None:
    trainer = FakeStatusTrainer()
    trainer.min_examples = 5
    hub = _hub(hub_kind, fakes, trainer)
    report = hub.check_dataset(dataset(), base_model="base", backend=STATUS)
    assert (report.backend, report.base_model) == (STATUS, "base")
    assert report.problems == ("memory: 2 examples; at least 5 needed",)
    assert hub.check_dataset(dataset(), base_model="base").backend == "fake-training"
    _dialogue(fakes, None, Message("user", "hi"), Message("assistant", "hello"))
    trainer.min_examples = 1
    job = hub.dynamic_train(backend=STATUS, base_model="base")
    assert job.backend == STATUS


# --- the base model ----------------------------------------------------------------------------


def test_the_base_model_is_the_call_s_then_the_config_s_then_the_backend_s(
    fakes: FakeBackends, hub_kind: str
) -> None:
    trainer = FakeStatusTrainer()
    trainer.default_base_model = "/models/tiny"  # type: ignore[attr-defined]
    assistants = {"default_assistant": "main", "assistants": {"main": {"model": "hosted-model"}}}
    hub = _hub(hub_kind, fakes, trainer, **assistants)
    assert hub.training_base_model("asked", backend=STATUS) == "asked"
    assert hub.training_base_model(backend=STATUS) == "/models/tiny"
    assert hub.training_base_model() == "hosted-model"  # fake-training has no default
    job = hub.train(dataset(), backend=STATUS)
    assert job.base_model == "/models/tiny"
    configured = _hub(hub_kind, fakes, trainer, training={"base_model": "cfg"}, **assistants)
    assert configured.training_base_model(backend=STATUS) == "cfg"
    assert configured.check_dataset(dataset(), backend=STATUS).base_model == "cfg"


# --- closing the loop --------------------------------------------------------------------------


def _serving(job: TrainingJob) -> list[str]:
    return [f"vllm serve {job.base_model} --lora-modules trained={job.result}"]


def test_serving_notes_come_from_the_trainer_that_ran_the_job(
    fakes: FakeBackends, hub_kind: str
) -> None:
    trainer = FakeStatusTrainer()
    trainer.serving = _serving  # type: ignore[attr-defined]
    hub = _hub(hub_kind, fakes, trainer)
    job = hub.wait_job(hub.train(dataset(), base_model="b", backend=STATUS).id, poll_s=0.1)
    assert hub.serving_notes(job) == (f"vllm serve b --lora-modules trained={job.result}",)
    other = hub.train(dataset(), base_model="b")  # fake-training says nothing
    assert hub.serving_notes(other) == ()


def _cli(hub: Any) -> Any:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), obj=CliState(make_hub=lambda _s: hub))

    return invoke


def test_the_cli_trains_on_the_backend_asked_and_says_how_to_chat(
    fakes: FakeBackends, tmp_path: Path
) -> None:
    trainer = FakeStatusTrainer()
    trainer.serving = _serving  # type: ignore[attr-defined]
    run = _cli(make_test_hub(fakes, plugins=[("status", trainer)]))
    data = tmp_path / "train.jsonl"
    data.write_text(dataset_to_jsonl(dataset()))
    check = run("train", str(data), "--check", "--backend", STATUS, "--model", "base")
    assert check.exit_code == 0, check.output
    assert f"training backend: {STATUS}; base model: base" in check.stdout
    started = run("train", str(data), "--backend", STATUS, "--model", "base", "-y", "--wait")
    assert started.exit_code == 0, started.output
    job_id = started.stdout.split()[0]
    assert started.stdout.splitlines()[-1] == (f"{job_id}\tsucceeded\tbase\t/jobs/{job_id}/adapter")
    assert "step 3/10, loss 0.5000, about 7s left" in started.stderr
    listed = run("jobs", "list").stdout
    assert listed.startswith(f"{job_id}\tsucceeded\t{STATUS}\tbase")
    shown = run("jobs", "show", job_id)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert f"backend: {STATUS}" in lines
    assert any(line.endswith(" status: queued → running") for line in lines)
    assert lines[-3:] == [
        f"result: /jobs/{job_id}/adapter",
        "to chat with it:",
        f"  vllm serve base --lora-modules trained=/jobs/{job_id}/adapter",
    ]
    as_json = json.loads(run("jobs", "show", job_id, "--json").stdout)
    assert as_json["serving"] == [f"vllm serve base --lora-modules trained=/jobs/{job_id}/adapter"]
    assert as_json["record"]["result"] == f"/jobs/{job_id}/adapter"
    unknown = run("train", str(data), "--backend", "nope", "--model", "base", "-y")
    assert unknown.exit_code == 1
    assert "nope" in unknown.stderr


# --- dialogues: instructions and images --------------------------------------------------------


def test_each_dialogue_keeps_its_own_instructions(fakes: FakeBackends, hub_kind: str) -> None:
    own = _dialogue(
        fakes,
        "support",
        Message("system", "Answer in French."),
        Message("user", "hi"),
        Message("assistant", "salut"),
    )
    profiled = _dialogue(fakes, "support", Message("user", "yo"), Message("assistant", "hey"))
    hub = make_hub(
        hub_kind, fakes, overrides={"assistants": {"support": {"instructions": "Be kind."}}}
    )
    systems = {e.origin: e.messages[0] for e in hub.dialogue_dataset().examples}
    assert systems[f"dialogue {own}"] == Message("system", "Answer in French.")
    assert systems[f"dialogue {profiled}"] == Message("system", "Be kind.")


def _pictured(fakes: FakeBackends) -> tuple[str, ImagePart]:
    picture = ImagePart(Image.from_bytes(TINY_PNG), detail="low")
    dialogue = _dialogue(
        fakes,
        None,
        Message("user", [TextPart("what is this?"), picture]),
        Message("assistant", "a red dot"),
        Message("user", [picture]),  # only an image: a question all the same
        Message("assistant", "the same dot"),
        Message("user", "thanks"),
        Message("assistant", "you are welcome"),
    )
    return dialogue, picture


def test_images_are_kept_in_the_vision_format_when_the_trainer_takes_them(
    fakes: FakeBackends, hub_kind: str, tmp_path: Path
) -> None:
    fakes.trainer.training_media_types = frozenset({"image/png"})  # type: ignore[attr-defined]
    dialogue, picture = _pictured(fakes)
    hub = make_hub(hub_kind, fakes)
    data = hub.dialogue_dataset()
    (example,) = data.examples
    assert data.warnings == ()
    assert example.context == ()  # both replies are learnt
    assert example.messages[0].parts == (TextPart("what is this?"), picture)
    assert example.messages[2].parts == (picture,)
    line = json.loads(dataset_to_jsonl(data))
    assert line["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {
            "type": "image_url",
            "image_url": {
                "url": "data:image/png;base64," + base64.b64encode(TINY_PNG).decode(),
                "detail": "low",
            },
        },
    ]
    assert line["messages"][1] == {"role": "assistant", "content": "a red dot"}
    path = tmp_path / "vision.jsonl"
    path.write_text(dataset_to_jsonl(data))
    (again,) = load_jsonl(path).examples
    assert [m.images[0].image.data for m in again.messages if m.images] == [TINY_PNG, TINY_PNG]
    assert hub.check_dataset(data, base_model="base").ok
    job = hub.dynamic_train(base_model="base")
    (uploaded,) = fakes.trainer.uploads.values()
    assert uploaded.examples[0].messages[0].images == (picture,)
    assert job.status is JobStatus.QUEUED
    assert dialogue


def test_images_of_a_type_the_trainer_refuses_are_left_out_with_a_note(
    fakes: FakeBackends, hub_kind: str
) -> None:
    fakes.trainer.training_media_types = frozenset({"image/jpeg"})  # type: ignore[attr-defined]
    dialogue, _ = _pictured(fakes)
    hub = make_hub(hub_kind, fakes)
    data = hub.dialogue_dataset()
    (example,) = data.examples
    assert [m.images for m in example.messages] == [(), (), (), ()]
    assert example.context == (1,)  # the reply about an image left out is not learnt
    assert data.warnings[0] == (
        f"2 image(s) in 1 dialogue(s) left out ({dialogue}): the training backend takes only "
        "image/jpeg images, so replies to a message with images left out are kept as context "
        "and not learnt"
    )


def test_a_jsonl_file_with_image_parts_is_read_and_checked(tmp_path: Path) -> None:
    url = "data:image/png;base64," + base64.b64encode(TINY_PNG).decode()
    row = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            },
            {"role": "assistant", "content": "a dot"},
        ]
    }
    path = tmp_path / "v.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (example,) = load_jsonl(path).examples
    assert example.messages[0].text == "what?"
    assert example.messages[0].images[0].image.media_type == "image/png"
    bad = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}
    path.write_text(json.dumps(bad) + "\n")
    from modelport.errors import TrainingDataError

    with pytest.raises(TrainingDataError, match="part 1 is neither a text part"):
        load_jsonl(path)
