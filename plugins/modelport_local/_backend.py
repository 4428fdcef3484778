"""The ``local`` trainer: job directories and detached worker processes (see the package
docstring). Nothing here imports the training stack."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

import modelport
from modelport import JobEvent, JobSpec, JobStatus, TrainingDataset, TrainingJob
from modelport.datasets import dataset_to_jsonl
from modelport.errors import BackendError, InvalidRequestError, NotFoundError
from modelport.logs import get_logger

from . import LocalSettings
from ._jobs import (
    ACTIVE,
    LOG,
    PID,
    SPEC,
    STATUS,
    alive,
    append_event,
    last_error,
    now,
    read_events,
    read_json,
    terminate,
    update_status,
    valid_id,
    write_json,
    write_text_atomic,
)
from ._serve import chat_notes

__all__ = ["LocalTrainer", "resolve_model"]

_STACK = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")
_INSTALL = "pip install 'modelport[local]'"
#: Hyperparameters a job may set (``JobSpec.hyperparameters``), and the setting each replaces.
_HYPERPARAMETERS = {
    "n_epochs": "epochs",
    "epochs": "epochs",
    "learning_rate": "learning_rate",
    "batch_size": "batch_size",
    "max_steps": "max_steps",
    "lora_r": "lora_r",
    "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout",
    "max_seq_length": "max_seq_length",
    "seed": "seed",
}
#: A job with no worker pid this long after it was created never started.
_START_GRACE_S = 60.0


def _hub_cache() -> Path:
    env = os.environ
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    cache = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return cache / "huggingface" / "hub"


def resolve_model(name: str) -> Path | None:
    """The local directory of model ``name`` (a directory, or a hub id in the local cache),
    or ``None`` when it is not on this machine. Reads the cache layout; downloads nothing."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path.absolute() if (path / "config.json").is_file() else None
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        return None
    repo = _hub_cache() / ("models--" + name.replace("/", "--"))
    snapshots = repo / "snapshots"
    with contextlib.suppress(OSError):
        ref = (repo / "refs" / "main").read_text().strip()
        if ref and (snapshots / ref / "config.json").is_file():
            return snapshots / ref
    with contextlib.suppress(OSError):
        for snapshot in sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
            if (snapshot / "config.json").is_file():
                return snapshot
    return None


def _how_to_get(name: str) -> str:
    return (
        f"download it once with `hf download {name}` (or `huggingface-cli download {name}`), "
        "or give the path of a directory holding a Hugging Face model; the local trainer "
        "never downloads"
    )


def missing_stack() -> list[str]:
    """The modules of the training stack that are not installed (found without importing)."""
    return [name for name in _STACK if importlib.util.find_spec(name) is None]


def _cuda_present() -> bool:
    """Whether an NVIDIA GPU looks present (without importing torch)."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def _number(value: Any, kind: Callable[[Any], Any]) -> Any:
    """``value`` as ``kind`` (int or float), or ``None`` when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return kind(value)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@attrs.define
class LocalTrainer:
    """The ``local`` backend: LoRA training in detached worker processes."""

    settings: LocalSettings
    name: str = "local"
    #: The workers this object started, so they are reaped (no zombies) while it lives.
    _children: dict[str, subprocess.Popen[bytes]] = attrs.field(factory=dict, init=False)

    @property
    def min_examples(self) -> int:
        return 1

    @property
    def default_base_model(self) -> str | None:
        """``[backends.local] base_model``: what the hub trains when neither the call nor
        ``[training] base_model`` names a model (rather than the chat assistant's model,
        usually a hosted one)."""
        return self.settings.base_model

    def training_price(self, base_model: str) -> float | None:
        """Training here costs no fees (so ``modelport train`` does not ask to confirm)."""
        return 0.0

    @property
    def root(self) -> Path:
        return self.settings.jobs_path()

    # --- files -----------------------------------------------------------------------------

    def _files(self) -> Path:
        return self.root / "files"

    @contextlib.contextmanager
    def _disk(self, action: str, path: Path) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise BackendError(
                f"cannot {action} {path}: {exc.strerror or exc}",
                backend=self.name,
                hint="check [backends.local] jobs_dir (it must be a writable directory)",
            ) from exc

    def upload(
        self,
        dataset: TrainingDataset,
        *,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> str:
        """Write the dataset as chat JSONL to ``files/<id>.jsonl``; return the id."""
        data = dataset_to_jsonl(dataset).encode("utf-8")
        file_id = f"file-{uuid.uuid4().hex[:16]}"
        if on_progress is not None:
            on_progress(0, len(data))
        path = self._files() / f"{file_id}.jsonl"
        with self._disk("write", path):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, data.decode("utf-8"))
        if on_progress is not None:
            on_progress(len(data), len(data))
        return file_id

    def delete_file(self, file_id: str) -> None:
        path = self._file(file_id)
        with self._disk("delete", path):
            path.unlink()

    def _file(self, file_id: str) -> Path:
        path = self._files() / f"{file_id}.jsonl"
        if not valid_id(file_id) or not path.is_file():
            raise NotFoundError(f"no uploaded file {file_id!r}", backend=self.name)
        return path

    # --- starting --------------------------------------------------------------------------

    def _config(self, hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
        config = attrs.asdict(self.settings)
        unknown = sorted(set(hyperparameters) - set(_HYPERPARAMETERS))
        if unknown:
            raise InvalidRequestError(
                f"unknown hyperparameter(s) {', '.join(unknown)}",
                backend=self.name,
                hint="the local trainer takes " + ", ".join(sorted(_HYPERPARAMETERS)),
            )
        for key, value in hyperparameters.items():
            if value is not None:
                config[_HYPERPARAMETERS[key]] = value
        config["target_modules"] = list(config["target_modules"])
        config.pop("jobs_dir", None)
        return config

    def _base(self, asked: str) -> tuple[str, Path, str | None]:
        """The base model to train: ``(name, directory, note)``; the job's own model when it
        is on this machine, else ``[backends.local] base_model``."""
        found = resolve_model(asked)
        if found is not None:
            return asked, found, None
        fallback = self.settings.base_model
        if fallback and fallback != asked:
            found = resolve_model(fallback)
            if found is not None:
                note = (
                    f"{asked!r} is not a model on this machine; training "
                    f"[backends.local] base_model {fallback!r}"
                )
                return fallback, found, note
        name = fallback if fallback and asked != fallback else asked
        raise InvalidRequestError(
            f"base model {asked!r} is not on this machine"
            + (f", nor is [backends.local] base_model {fallback!r}" if fallback else ""),
            backend=self.name,
            hint=_how_to_get(name),
        )

    def start(self, spec: JobSpec) -> TrainingJob:
        """Create the job directory and start its worker in the background."""
        missing = missing_stack()
        if missing:
            raise InvalidRequestError(
                f"the training stack is not installed (missing: {', '.join(missing)})",
                backend=self.name,
                hint=_INSTALL,
            )
        training = self._file(spec.training_file)
        validation = self._file(spec.validation_file) if spec.validation_file else None
        base_name, base_path, note = self._base(spec.base_model)
        config = self._config(spec.hyperparameters)
        created = datetime.now(UTC)
        job_id = f"local-{created:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        jobdir = self.root / job_id
        adapter_name = spec.suffix or f"modelport-{job_id.rsplit('-', 1)[-1]}"
        with self._disk("create the job directory", jobdir), _removed_on_failure(jobdir):
            jobdir.mkdir(parents=True)
            shutil.copyfile(training, jobdir / "train.jsonl")
            if validation is not None:
                shutil.copyfile(validation, jobdir / "validation.jsonl")
            write_json(
                jobdir / SPEC,
                {
                    "job_id": job_id,
                    "backend": self.name,
                    "base_model": base_name,
                    "base_path": str(base_path),
                    "asked_base_model": spec.base_model,
                    "training_file": spec.training_file,
                    "validation_file": spec.validation_file,
                    "suffix": spec.suffix,
                    "adapter_name": adapter_name,
                    "created_at": created.isoformat(),
                    "config": config,
                },
            )
            write_json(jobdir / STATUS, {"status": "queued", "created_at": created.isoformat()})
            append_event(jobdir, f"queued: LoRA training of {base_name}")
            if note:
                append_event(jobdir, note, level="warning")
        self._spawn(job_id, jobdir)
        return self._job(jobdir)

    def _spawn(self, job_id: str, jobdir: Path) -> None:
        env = dict(os.environ)
        paths = [
            str(Path(__file__).resolve().parent.parent),
            str(Path(modelport.__file__).resolve().parent.parent),
        ]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env.update(
            {
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        command = [sys.executable, "-m", "modelport_local.worker", str(jobdir)]
        try:
            with open(jobdir / LOG, "ab") as log:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=jobdir,
                    env=env,
                    start_new_session=True,
                )
        except OSError as exc:
            update_status(jobdir, status="failed", finished_at=now(), error=str(exc))
            append_event(jobdir, f"failed: the trainer could not start: {exc}", level="error")
            raise BackendError(
                f"cannot start the trainer: {exc}", backend=self.name, hint=sys.executable
            ) from exc
        try:
            write_text_atomic(jobdir / PID, f"{process.pid}\n")
        except OSError as exc:  # no pid on record: the job could not be followed, so stop it
            terminate(process.pid, signal.SIGKILL)
            process.wait()
            with contextlib.suppress(OSError):
                update_status(jobdir, status="failed", finished_at=now(), error=str(exc))
            raise BackendError(
                f"cannot record the trainer's pid in {jobdir}: {exc.strerror or exc}",
                backend=self.name,
                hint="check [backends.local] jobs_dir (it must be a writable directory)",
            ) from exc
        self._children[job_id] = process
        # Reap the worker when it ends, so it is never left a zombie under this process.
        threading.Thread(target=process.wait, name=f"reap-{job_id}", daemon=True).start()

    # --- following -------------------------------------------------------------------------

    def _jobdir(self, job_id: str) -> Path:
        jobdir = self.root / job_id
        if not valid_id(job_id) or job_id == "files" or not (jobdir / SPEC).is_file():
            raise NotFoundError(f"no local training job {job_id!r}", backend=self.name)
        return jobdir

    @contextlib.contextmanager
    def _locked(self, jobdir: Path) -> Iterator[None]:
        """One reader at a time decides that a worker is gone (and writes so)."""
        with open(jobdir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _pid(self, jobdir: Path) -> int | None:
        try:
            return int((jobdir / PID).read_text().strip())
        except (OSError, ValueError):
            return None

    def _running(self, job_id: str, jobdir: Path, pid: int) -> bool:
        child = self._children.get(job_id)
        if child is not None and child.pid == pid:
            return child.poll() is None
        return alive(pid, jobdir)

    def _reconcile(self, jobdir: Path) -> dict[str, Any]:
        """``status.json``, with a worker that is gone while the job was active written down
        as failed (with the last error of its log): never "running" forever."""
        status = _status(jobdir)
        if status.get("status") not in ACTIVE:
            return status
        job_id = jobdir.name
        pid = self._pid(jobdir)
        if pid is None:
            created = _time(status.get("created_at")) or _time(
                read_json(jobdir / SPEC).get("created_at")
            )
            if created and (datetime.now(UTC) - created).total_seconds() < _START_GRACE_S:
                return status  # being started right now
        elif self._running(job_id, jobdir, pid):
            return status
        failed = {"status": "failed", "finished_at": now(), "error": self._lost(jobdir, pid)}
        try:
            with self._locked(jobdir):
                status = _status(jobdir)  # it may have finished in the meantime
                if status.get("status") not in ACTIVE:
                    return status
                status = update_status(jobdir, **failed)
                append_event(jobdir, f"failed: {failed['error']}", level="error")
        except OSError:  # a read-only or full jobs_dir: the failure is reported, unsaved
            return {**status, **failed}
        return status

    @staticmethod
    def _lost(jobdir: Path, pid: int | None) -> str:
        line = last_error(jobdir)
        who = f"the trainer (pid {pid})" if pid else "the trainer"
        if line:
            return f"{who} stopped without finishing: {line}"
        return f"{who} stopped without finishing and logged nothing (killed? out of memory?)"

    def _job(self, jobdir: Path) -> TrainingJob:
        spec = read_json(jobdir / SPEC)
        status = self._reconcile(jobdir)
        state = JobStatus(status.get("status") or "queued")
        adapter = status.get("adapter") if state is JobStatus.SUCCEEDED else None
        running = state is JobStatus.RUNNING
        return TrainingJob(
            id=jobdir.name,
            backend=self.name,
            base_model=str(spec.get("base_model", "")),
            status=state,
            created_at=_time(spec.get("created_at")),
            finished_at=_time(status.get("finished_at")),
            fine_tuned_model=adapter,
            training_file=spec.get("training_file"),
            error=status.get("error"),
            result=adapter,
            step=_number(status.get("step"), int),
            total_steps=_number(status.get("total_steps"), int),
            loss=_number(status.get("loss"), float),
            seconds_left=_number(status.get("seconds_left"), float) if running else None,
        )

    def get_job(self, job_id: str) -> TrainingJob:
        return self._job(self._jobdir(job_id))

    def list_jobs(self, *, limit: int = 20) -> Sequence[TrainingJob]:
        """The jobs under ``jobs_dir``, newest first."""
        try:
            dirs = [d for d in self.root.iterdir() if d.name != "files" and (d / SPEC).is_file()]
        except FileNotFoundError:
            return []
        created: dict[Path, str] = {}
        for d in dirs:
            try:
                created[d] = str(read_json(d / SPEC).get("created_at", ""))
            except (OSError, ValueError) as exc:  # one damaged job must not hide the others
                get_logger().warning("local_job_unreadable", job=d.name, error=str(exc))
        found = sorted(created, key=lambda d: (created[d], d.name), reverse=True)
        jobs = []
        for d in found[: max(limit, 0)]:
            try:
                jobs.append(self._job(d))
            except (OSError, ValueError) as exc:
                get_logger().warning("local_job_unreadable", job=d.name, error=str(exc))
        return jobs

    def cancel_job(self, job_id: str) -> TrainingJob:
        """Stop the worker (SIGTERM to its process group, SIGKILL after ``cancel_timeout_s``)
        and mark the job cancelled."""
        jobdir = self._jobdir(job_id)
        status = self._reconcile(jobdir)
        if status.get("status") not in ACTIVE:
            raise InvalidRequestError(
                f"job {job_id} is already {status.get('status') or 'gone'}; there is nothing to "
                "cancel",
                backend=self.name,
            )
        pid = self._pid(jobdir)
        if pid is not None and self._running(job_id, jobdir, pid):
            terminate(pid, signal.SIGTERM)
            if not self._gone(job_id, jobdir, pid, self.settings.cancel_timeout_s):
                terminate(pid, signal.SIGKILL)
                self._gone(job_id, jobdir, pid, 10.0)
        with self._locked(jobdir):
            status = read_json(jobdir / STATUS)
            if status.get("status") in ACTIVE:
                update_status(jobdir, status="cancelled", finished_at=now())
                append_event(jobdir, "cancelled", level="warning")
        return self._job(jobdir)

    def _gone(self, job_id: str, jobdir: Path, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._running(job_id, jobdir, pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def serving(self, job: TrainingJob) -> list[str]:
        """How to chat with a succeeded job's adapter (see ``serve.md`` in its directory)."""
        if job.status is not JobStatus.SUCCEEDED:
            return []
        jobdir = self._jobdir(job.id)
        spec = read_json(jobdir / SPEC)
        adapter = read_json(jobdir / STATUS).get("adapter") or str(jobdir / "adapter")
        config = spec.get("config")
        config = config if isinstance(config, dict) else {}
        return chat_notes(
            jobdir,
            name=str(spec.get("adapter_name") or job.id),
            base_model=str(spec.get("base_model") or job.base_model),
            adapter=str(adapter),
            lora_r=_number(config.get("lora_r"), int) or 16,
        )

    def job_events(self, job_id: str) -> Sequence[JobEvent]:
        jobdir = self._jobdir(job_id)
        self._reconcile(jobdir)
        events = []
        for event in read_events(jobdir):
            at = _time(event.get("at"))
            if at is not None:
                events.append(JobEvent(at, event["message"], str(event.get("level", "info"))))
        events.sort(key=lambda e: e.created_at)
        return events

    # --- what the dataset check says ---------------------------------------------------------

    def training_warnings(self, base_model: str | None = None) -> list[str]:
        notes = []
        missing = missing_stack()
        if missing:
            notes.append(
                f"the local trainer needs the training stack ({', '.join(missing)} missing): "
                f"{_INSTALL}"
            )
        device = self.settings.device
        if device == "cpu" or (device == "auto" and not _cuda_present()):
            notes.append(
                "training runs on the CPU: fine for tiny models and a few hundred examples, "
                "slow for real ones (a 0.5B model takes seconds per step); a CUDA GPU is used "
                "when present"
            )
        if base_model is not None:
            try:
                _, _, note = self._base(base_model)
            except InvalidRequestError as exc:
                notes.append(f"{exc.message}: {exc.hint}")
            else:
                if note:
                    notes.append(note)
        return notes


def _status(jobdir: Path) -> dict[str, Any]:
    """``status.json``; a job without one (or with a status this plugin does not know) counts
    as queued, so that a worker that never wrote one is found gone and reported failed."""
    status = read_json(jobdir / STATUS)
    if status.get("status") not in {s.value for s in JobStatus}:
        status = {**status, "status": "queued"}
    return status


@contextlib.contextmanager
def _removed_on_failure(jobdir: Path) -> Iterator[None]:
    """Remove a half-made job directory when making it fails (a full disk), so no job is left
    that was never started."""
    try:
        yield
    except BaseException:
        shutil.rmtree(jobdir, ignore_errors=True)
        raise
