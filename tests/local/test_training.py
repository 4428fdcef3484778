"""The whole local loop on a tiny random model, on the CPU: train a few steps in a detached
worker, reload the adapter and generate; cancel a running job; kill a worker; a base model
that cannot load; and once through the hub. Skipped, saying why, without the ``local`` extra."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import JOB_TIMEOUT_S, need_stack

need_stack()

import modelport_local  # noqa: E402
from modelport import (  # noqa: E402
    JobEvent,
    JobSpec,
    JobStatus,
    Message,
    TrainingDataset,
    TrainingExample,
    TrainingJob,
)
from modelport.testing import make_test_hub  # noqa: E402
from modelport_local import LocalSettings, LocalTrainer  # noqa: E402
from modelport_local._jobs import alive  # noqa: E402

#: transformers 5 deprecates names that PEFT still reads (not ours to fix).
pytestmark = pytest.mark.filterwarnings("ignore:.*checkpointing.*:FutureWarning")

#: Small and gentle on a shared machine: one CPU thread, rank 4.
TINY = {"batch_size": 2, "threads": 1, "lora_r": 4, "lora_alpha": 8, "learning_rate": 1e-3}


def _dataset(count: int = 4) -> TrainingDataset:
    return TrainingDataset(
        [
            TrainingExample(
                [
                    Message("system", "Answer in one word."),
                    Message("user", f"What is {n} plus one?"),
                    Message("assistant", f"{n + 1}."),
                ]
            )
            for n in range(count)
        ]
    )


def _trainer(jobs_dir: Path, **settings: object) -> LocalTrainer:
    values = {**TINY, **settings}
    return LocalTrainer(LocalSettings(jobs_dir=str(jobs_dir), **values))  # type: ignore[arg-type]


def _wait(trainer: LocalTrainer, job_id: str, until: object = None) -> TrainingJob:
    """Poll until the job is over (or ``until(job, status)`` holds)."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        job = trainer.get_job(job_id)
        status = json.loads((trainer.root / job_id / "status.json").read_text())
        if job.status.is_terminal or (callable(until) and until(job, status)):
            return job
        if time.monotonic() > deadline:
            log = (trainer.root / job_id / "log.txt").read_text()
            pytest.fail(f"job {job_id} still {job.status} after {JOB_TIMEOUT_S} s; log:\n{log}")
        time.sleep(0.2)


def _training(job: TrainingJob, status: dict[str, object]) -> bool:
    step = status.get("step")
    return isinstance(step, int) and step >= 1


@pytest.fixture
def long_job(jobs_dir: Path, tiny_model_dir: Path) -> tuple[LocalTrainer, TrainingJob]:
    """A job that would run for a long while, seen training (a step done)."""
    trainer = _trainer(jobs_dir, max_steps=100_000)
    job = trainer.start(JobSpec(str(tiny_model_dir), trainer.upload(_dataset())))
    job = _wait(trainer, job.id, until=_training)
    assert job.status is JobStatus.RUNNING, (trainer.root / job.id / "log.txt").read_text()
    return trainer, job


def test_train_save_reload_and_generate(jobs_dir: Path, tiny_model_dir: Path) -> None:
    trainer = _trainer(jobs_dir, max_steps=4, merge=True)
    file_id = trainer.upload(_dataset())
    started = trainer.start(JobSpec(str(tiny_model_dir), file_id, suffix="plus-one"))
    assert started.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    assert started.training_file == file_id

    job = _wait(trainer, started.id)
    jobdir = jobs_dir / job.id
    assert job.status is JobStatus.SUCCEEDED, (jobdir / "log.txt").read_text()
    adapter = jobdir / "adapter"
    assert job.fine_tuned_model == str(adapter)
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (jobdir / "merged" / "config.json").is_file()
    assert job.finished_at is not None
    assert job.created_at is not None
    assert job.finished_at > job.created_at

    status = json.loads((jobdir / "status.json").read_text())
    assert (status["step"], status["total_steps"], status["device"]) == (4, 4, "cpu")
    assert isinstance(status["loss"], float)
    events = [e.message for e in trainer.job_events(job.id)]
    steps = [m for m in events if m.startswith("step ")]
    assert len(steps) == 4
    assert steps[0].startswith("step 1/4: loss ")
    assert "s left" in steps[0]
    assert events[-1].startswith("succeeded")
    assert any("GGUF conversion is not available" in m for m in events)
    assert "--lora-modules plus-one=" in (jobdir / "serve.md").read_text()
    assert (jobdir / "Modelfile").read_text() == f"FROM {jobdir / 'merged'}\n"
    assert [j.id for j in trainer.list_jobs()] == [job.id]

    # The adapter loads on its base model with PEFT, and the model generates.
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model: Any = PeftModel.from_pretrained(base, adapter)
    prompt: Any = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 plus one?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        output = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    new_tokens = output[0, prompt["input_ids"].shape[1] :]
    assert 1 <= len(new_tokens) <= 5
    assert isinstance(tokenizer.decode(new_tokens), str)


def test_cancel_stops_a_running_job(long_job: tuple[LocalTrainer, TrainingJob]) -> None:
    trainer, job = long_job
    pid = int((trainer.root / job.id / "pid").read_text())
    cancelled = trainer.cancel_job(job.id)
    assert cancelled.status is JobStatus.CANCELLED
    assert not alive(pid, trainer.root / job.id)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole process group is gone
    assert trainer.get_job(job.id).status is JobStatus.CANCELLED
    assert "Cancelled: SIGTERM received" in (trainer.root / job.id / "log.txt").read_text()
    assert trainer.job_events(job.id)[-1].message == "cancelled"
    assert not (trainer.root / job.id / "adapter").exists()


def test_a_killed_worker_is_failed_not_running_forever(
    long_job: tuple[LocalTrainer, TrainingJob], jobs_dir: Path
) -> None:
    trainer, job = long_job
    pid = int((trainer.root / job.id / "pid").read_text())
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(pid, trainer.root / job.id) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Another process (a later CLI run) knows nothing of the worker but the job directory.
    later = _trainer(jobs_dir)
    failed = later.get_job(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert f"the trainer (pid {pid}) stopped without finishing" in failed.error
    last_line = (trainer.root / job.id / "log.txt").read_text().strip().splitlines()[-1]
    assert last_line.strip() in failed.error
    assert later.job_events(job.id)[-1].level == "error"


def test_a_base_model_that_cannot_load_fails_the_job_clearly(
    jobs_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')  # and no weights
    trainer = _trainer(jobs_dir, max_steps=2)
    job = trainer.start(JobSpec(str(broken), trainer.upload(_dataset())))
    job = _wait(trainer, job.id)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert "cannot load the base model" in job.error
    assert "hf download" in job.error
    assert "Traceback" in (jobs_dir / job.id / "log.txt").read_text()


def test_through_the_hub_with_a_tokenizer_without_chat_template(
    jobs_dir: Path, tiny_model_no_template: Path
) -> None:
    hub = make_test_hub(
        plugins=[("local", modelport_local)],
        overrides={
            "capabilities": {"training": "local"},
            # The hub passes the default assistant's model; the trainer takes its own.
            "backends": {
                "local": {
                    "jobs_dir": str(jobs_dir),
                    "base_model": str(tiny_model_no_template),
                    "max_steps": 3,
                    **TINY,
                }
            },
        },
    )
    with hub:
        report = hub.check_dataset(_dataset(2), base_model="gpt-4o-mini")
        assert report.ok
        assert any("on the CPU" in w for w in report.warnings)
        job = hub.train(_dataset(2), base_model="gpt-4o-mini", description="tiny")
        assert job.backend == "local"
        assert job.base_model == str(tiny_model_no_template)
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while not hub.job(job.id).status.is_terminal and time.monotonic() < deadline:
            time.sleep(0.2)
        events: list[JobEvent] = []
        done = hub.wait_job(job.id, on_event=events.append)
        assert done.status is JobStatus.SUCCEEDED, (jobs_dir / job.id / "log.txt").read_text()
        assert any(e.message.startswith("step 3/3: loss") for e in events)
        assert any("is not a model on this machine" in e.message for e in events)
        (record,) = hub.jobs()
        assert (record.job_id, record.backend, record.description) == (job.id, "local", "tiny")
        assert record.status is JobStatus.SUCCEEDED
        assert record.fine_tuned_model == str(jobs_dir / job.id / "adapter")
