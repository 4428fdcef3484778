"""The local trainer without the training stack: registration, files, job directories, a dead
worker, serving artifacts. These run on the default install (no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

import modelport_local
from modelport import JobSpec, JobStatus, Message, TrainingDataset, TrainingExample
from modelport.datasets import load_jsonl
from modelport.errors import BackendError, ConfigError, InvalidRequestError, NotFoundError
from modelport.testing import make_test_hub
from modelport_local import LocalSettings, LocalTrainer
from modelport_local import _backend as backend_module
from modelport_local._jobs import last_error, write_json
from modelport_local._serve import write_artifacts


def _dataset(count: int = 3) -> TrainingDataset:
    return TrainingDataset(
        [
            TrainingExample(
                [
                    Message("system", "Answer in one word."),
                    Message("user", f"Question {n}?"),
                    Message("assistant", f"Answer{n}."),
                ]
            )
            for n in range(count)
        ]
    )


def _trainer(jobs_dir: Path, **settings: object) -> LocalTrainer:
    return LocalTrainer(LocalSettings(jobs_dir=str(jobs_dir), **settings))  # type: ignore[arg-type]


def test_registering_and_building_the_backend_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import sys, modelport_local\n"
        "from modelport.testing import make_test_hub\n"
        "hub = make_test_hub(plugins=[('local', modelport_local)], overrides={\n"
        "    'capabilities': {'training': 'local'},\n"
        f"    'backends': {{'local': {{'jobs_dir': {str(tmp_path)!r}}}}}}})\n"
        "trainer = hub.backend('training')\n"
        "trainer.training_warnings('no-such-model'); trainer.list_jobs()\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules]\n"
        "print(type(trainer).__name__, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "LocalTrainer []"


def test_upload_writes_the_chat_jsonl_and_delete_removes_it(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    progress: list[tuple[int, int]] = []
    file_id = trainer.upload(
        _dataset(), on_progress=lambda sent, total: progress.append((sent, total))
    )
    path = tmp_path / "files" / f"{file_id}.jsonl"
    assert len(load_jsonl(path)) == 3
    assert progress[0][0] == 0
    assert progress[-1][0] == progress[-1][1] == path.stat().st_size
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    trainer.delete_file(file_id)
    assert not path.exists()
    with pytest.raises(NotFoundError):
        trainer.delete_file(file_id)
    with pytest.raises(NotFoundError):
        trainer.delete_file("../../etc/passwd")


def test_a_missing_training_stack_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend_module, "missing_stack", lambda: ["torch", "trl"])
    trainer = _trainer(tmp_path)
    file_id = trainer.upload(_dataset())
    with pytest.raises(InvalidRequestError, match="torch, trl") as caught:
        trainer.start(JobSpec(str(tmp_path), file_id))
    assert caught.value.hint == "pip install 'modelport[local]'"
    assert not [d for d in tmp_path.iterdir() if d.name != "files"], "no job was created"
    assert any("modelport[local]" in w for w in trainer.training_warnings())


def test_a_missing_base_model_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend_module, "missing_stack", list)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    trainer = _trainer(tmp_path / "jobs")
    file_id = trainer.upload(_dataset())
    with pytest.raises(
        InvalidRequestError, match=r"'Qwen/Qwen2\.5-0\.5B-Instruct' is not"
    ) as caught:
        trainer.start(JobSpec("Qwen/Qwen2.5-0.5B-Instruct", file_id))
    assert "hf download Qwen/Qwen2.5-0.5B-Instruct" in (caught.value.hint or "")
    assert "never downloads" in (caught.value.hint or "")
    (tmp_path / "not-a-model").mkdir()  # a directory without config.json is no model either
    with pytest.raises(InvalidRequestError, match="not-a-model"):
        trainer.start(JobSpec(str(tmp_path / "not-a-model"), file_id))
    warnings = trainer.training_warnings("Qwen/Qwen2.5-0.5B-Instruct")
    assert any("hf download" in w for w in warnings)


def test_a_hub_id_in_the_local_cache_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hf"
    snapshot = cache / "models--acme--tiny" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (cache / "models--acme--tiny" / "refs").mkdir()
    (cache / "models--acme--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert backend_module.resolve_model("acme/tiny") == snapshot
    assert backend_module.resolve_model("acme/other") is None


def test_unknown_hyperparameters_and_files_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend_module, "missing_stack", list)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    trainer = _trainer(tmp_path / "jobs")
    with pytest.raises(NotFoundError, match="file-nope"):
        trainer.start(JobSpec(str(model), "file-nope"))
    file_id = trainer.upload(_dataset())
    with pytest.raises(InvalidRequestError, match="warmup") as caught:
        trainer.start(JobSpec(str(model), file_id, hyperparameters={"warmup": 3}))
    assert "n_epochs" in (caught.value.hint or "")


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    hub = make_test_hub(
        plugins=[("local", modelport_local)],
        overrides={
            "capabilities": {"training": "local"},
            "backends": {"local": {"jobs_dir": str(tmp_path), "device": "tpu"}},
        },
    )
    with pytest.raises(ConfigError, match="device"):
        hub.backend("training")


def _fake_job(root: Path, job_id: str, created: str, status: Mapping[str, object]) -> Path:
    jobdir = root / job_id
    jobdir.mkdir(parents=True)
    write_json(jobdir / "spec.json", {"job_id": job_id, "base_model": "m", "created_at": created})
    write_json(jobdir / "status.json", status)
    return jobdir


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_worker_that_died_is_reported_failed_with_its_last_error(tmp_path: Path) -> None:
    jobdir = _fake_job(
        tmp_path, "local-crashed", "2026-01-01T00:00:00+00:00", {"status": "running"}
    )
    (jobdir / "pid").write_text(str(_dead_pid()))
    (jobdir / "log.txt").write_text(
        "step 1/5: loss 2.0\nTraceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
    )
    trainer = _trainer(tmp_path)
    job = trainer.get_job("local-crashed")
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert "stopped without finishing" in job.error
    assert "RuntimeError: CUDA out of memory" in job.error
    assert job.finished_at is not None
    # written down: the next reader (another process, say) sees the same
    assert json.loads((jobdir / "status.json").read_text())["status"] == "failed"
    events = trainer.job_events("local-crashed")
    assert events[-1].level == "error"
    with pytest.raises(InvalidRequestError, match="already failed"):
        trainer.cancel_job("local-crashed")


def test_a_worker_gone_without_a_word_is_failed_too(tmp_path: Path) -> None:
    jobdir = _fake_job(tmp_path, "local-silent", "2026-01-01T00:00:00+00:00", {"status": "queued"})
    (jobdir / "pid").write_text(str(_dead_pid()))
    job = _trainer(tmp_path).get_job("local-silent")
    assert job.status is JobStatus.FAILED
    assert "logged nothing" in (job.error or "")


def test_a_job_without_a_status_file_is_failed_not_queued_forever(tmp_path: Path) -> None:
    jobdir = _fake_job(tmp_path, "local-half", "2026-01-01T00:00:00+00:00", {})
    (jobdir / "status.json").unlink()  # made before the status was: a full disk, say
    trainer = _trainer(tmp_path)
    assert trainer.get_job("local-half").status is JobStatus.FAILED
    with pytest.raises(InvalidRequestError, match="already failed"):
        trainer.cancel_job("local-half")


def test_a_dead_worker_is_reported_failed_even_when_that_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobdir = _fake_job(tmp_path, "local-ro", "2026-01-01T00:00:00+00:00", {"status": "running"})
    (jobdir / "pid").write_text(str(_dead_pid()))

    def read_only(*_args: object, **_kwargs: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(backend_module, "update_status", read_only)
    job = _trainer(tmp_path).get_job("local-ro")
    assert job.status is JobStatus.FAILED
    assert "stopped without finishing" in (job.error or "")


def test_a_damaged_job_does_not_hide_the_others(tmp_path: Path) -> None:
    _fake_job(tmp_path, "local-good", "2026-01-01T00:00:00+00:00", {"status": "succeeded"})
    bad = _fake_job(tmp_path, "local-bad", "2026-02-01T00:00:00+00:00", {"status": "succeeded"})
    (bad / "spec.json").write_text("{not json")
    assert [j.id for j in _trainer(tmp_path).list_jobs()] == ["local-good"]


def test_a_failed_start_leaves_no_job_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = _trainer(tmp_path)
    file_id = trainer.upload(_dataset())

    def full_disk(path: Path, data: object) -> None:
        if path.name == "status.json":
            raise OSError(28, "No space left on device")
        write_json(path, data)

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    monkeypatch.setattr(backend_module, "write_json", full_disk)
    monkeypatch.setattr(backend_module, "missing_stack", list)
    with pytest.raises(BackendError, match="No space left"):
        trainer.start(JobSpec(base_model=str(model), training_file=file_id))
    assert [d.name for d in trainer.root.iterdir() if d.name.startswith("local-")] == []


def test_the_last_error_line_is_preferred_to_the_last_line(tmp_path: Path) -> None:
    (tmp_path / "log.txt").write_text("ok\nValueError: bad data\nsaving...\n")
    assert last_error(tmp_path) == "ValueError: bad data"
    (tmp_path / "log.txt").write_text("step 3\n")
    assert last_error(tmp_path) == "step 3"


def test_jobs_are_listed_newest_first_and_missing_ids_are_not_found(tmp_path: Path) -> None:
    done = {"status": "succeeded", "adapter": "/x/adapter"}
    _fake_job(tmp_path, "local-old", "2026-01-01T00:00:00+00:00", done)
    _fake_job(tmp_path, "local-new", "2026-02-01T00:00:00+00:00", done)
    trainer = _trainer(tmp_path)
    assert [j.id for j in trainer.list_jobs()] == ["local-new", "local-old"]
    assert [j.id for j in trainer.list_jobs(limit=1)] == ["local-new"]
    assert trainer.get_job("local-old").fine_tuned_model == "/x/adapter"
    for job_id in ("local-none", "files", "../local-old", ""):
        for method in (trainer.get_job, trainer.cancel_job, trainer.job_events):
            with pytest.raises(NotFoundError):
                method(job_id)
    assert _trainer(tmp_path / "nothing-yet").list_jobs() == []


def _write(jobdir: Path, llama_cpp_dir: str | None, merged: bool = False) -> dict[str, str]:
    adapter = jobdir / "adapter"
    adapter.mkdir(parents=True, exist_ok=True)
    artifacts = write_artifacts(
        jobdir,
        name="faq-bot",
        base_model="Qwen/Qwen2.5-0.5B-Instruct",
        base_path=jobdir / "base",
        adapter=adapter,
        merged=jobdir / "merged" if merged else None,
        lora_r=32,
        llama_cpp_dir=llama_cpp_dir,
        log=jobdir / "log.txt",
    )
    return {**artifacts.files, "notes": " ".join(artifacts.notes)}


def test_serving_files_without_llama_cpp_say_gguf_is_not_available(tmp_path: Path) -> None:
    files = _write(tmp_path, None)
    serve = (tmp_path / "serve.md").read_text()
    assert (
        f"vllm serve Qwen/Qwen2.5-0.5B-Instruct --enable-lora --lora-modules "
        f"faq-bot={tmp_path / 'adapter'} --max-lora-rank 32"
    ) in serve
    assert "ollama create faq-bot" in serve
    assert "GGUF conversion is not available" in serve
    assert "llama_cpp_dir is not set" in files["notes"]
    assert (tmp_path / "Modelfile").read_text() == (
        f"FROM {tmp_path / 'base'}\nADAPTER {tmp_path / 'adapter'}\n"
    )
    files = _write(tmp_path / "other", str(tmp_path / "no-checkout"))
    assert "convert_lora_to_gguf.py does not exist" in files["notes"]


def test_gguf_conversion_runs_the_llama_cpp_scripts(tmp_path: Path) -> None:
    checkout = tmp_path / "llama.cpp"
    checkout.mkdir()
    stub = (
        "import sys\n"
        "out = sys.argv[sys.argv.index('--outfile') + 1]\n"
        "print('converting', sys.argv[1:])\n"
        "open(out, 'wb').write(b'GGUF')\n"
    )
    (checkout / "convert_lora_to_gguf.py").write_text(stub)
    (checkout / "convert_hf_to_gguf.py").write_text(stub)
    jobdir = tmp_path / "job"
    files = _write(jobdir, str(checkout), merged=True)
    assert Path(files["adapter_gguf"]).read_bytes() == b"GGUF"
    assert Path(files["merged_gguf"]).read_bytes() == b"GGUF"
    assert files["notes"] == ""
    assert (jobdir / "Modelfile").read_text() == f"FROM {jobdir / 'merged.gguf'}\n"
    assert "--base" in (jobdir / "log.txt").read_text()
    (checkout / "convert_lora_to_gguf.py").write_text("raise SystemExit('unsupported model')")
    files = _write(tmp_path / "job2", str(checkout))
    assert "failed (exit status 1)" in files["notes"]
    assert "adapter_gguf" not in files


def test_a_succeeded_job_says_where_its_adapter_is_and_how_to_chat_with_it(
    tmp_path: Path,
) -> None:
    adapter = tmp_path / "local-done" / "adapter"
    jobdir = _fake_job(
        tmp_path,
        "local-done",
        "2026-01-01T00:00:00+00:00",
        {"status": "succeeded", "adapter": str(adapter), "step": 4, "total_steps": 4, "loss": 0.5},
    )
    spec = json.loads((jobdir / "spec.json").read_text())
    spec.update(adapter_name="faq-bot", config={"lora_r": 32})
    write_json(jobdir / "spec.json", spec)
    (jobdir / "Modelfile").write_text(f"FROM /base\nADAPTER {adapter}\n")
    trainer = _trainer(tmp_path, base_model="/models/tiny")
    job = trainer.get_job("local-done")
    assert (job.result, job.fine_tuned_model) == (str(adapter), str(adapter))
    assert (job.step, job.total_steps, job.loss, job.seconds_left) == (4, 4, 0.5, None)
    assert trainer.default_base_model == "/models/tiny"
    notes = trainer.serving(job)
    assert (
        f"  vLLM:      vllm serve m --enable-lora --lora-modules faq-bot={adapter} "
        "--max-lora-rank 32" in notes
    )
    assert f"  Ollama:    ollama create faq-bot -f {jobdir / 'Modelfile'}" in notes
    assert "  llama.cpp: convert to GGUF first (see serve.md)" in notes
    assert '  model = "faq-bot"' in notes
    assert notes[-1] == f"all the details: {jobdir / 'serve.md'}"
    running = _fake_job(
        tmp_path,
        "local-running",
        "2026-01-01T00:00:00+00:00",
        {"status": "queued", "step": 1, "total_steps": 4, "loss": 1.5, "seconds_left": 9},
    )
    (running / "pid").write_text(str(_dead_pid()))
    failed = trainer.get_job("local-running")  # its worker is gone: failed, with no result
    assert (failed.status, failed.result, failed.seconds_left) == (JobStatus.FAILED, None, None)
    assert trainer.serving(failed) == []


def test_the_hub_trains_the_local_default_and_shows_how_to_chat(tmp_path: Path) -> None:
    hub = make_test_hub(
        plugins=[("local", modelport_local)],
        overrides={
            "assistants": {"default": {"model": "gpt-4o-mini"}},
            "default_assistant": "default",
            "backends": {"local": {"jobs_dir": str(tmp_path), "base_model": "/models/tiny"}},
        },
    )
    with hub:
        # [capabilities] training stays fake-training: the backend is asked for per call
        assert hub.training_base_model(backend="local") == "/models/tiny"
        assert hub.training_base_model() == "gpt-4o-mini"
        report = hub.check_dataset(_dataset(), backend="local")
        assert (report.backend, report.base_model) == ("local", "/models/tiny")
        assert report.estimated_cost == 0.0
