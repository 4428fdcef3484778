"""The JSON-file store (see the package docstring for the layout and guarantees)."""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import filelock
import platformdirs

from modelport import Dialogue, DialogueInfo, JobRecord, Message, Page, converter
from modelport.errors import CorruptRecordError, RecordNotFoundError, StorageError
from modelport.logs import get_logger
from modelport.serialization import dump_record, dumps_record, loads_record

if TYPE_CHECKING:
    from . import JsonFileSettings

__all__ = ["JsonFileStore"]

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_STRIPES = 64  # dialogue locks: one file per stripe, not one per dialogue
_TAIL = 65536  # bytes read from a file's end to find its last line


def default_root() -> Path:
    return platformdirs.user_data_path("modelport") / "store"


class JsonFileStore:
    """Dialogues and job records in JSON-lines files under ``root``.

    Safe to share between threads, and between processes using the same root.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, fsync: bool = False, lock_timeout_s: float = 30.0
    ) -> None:
        self.root = Path(root).expanduser()
        self.fsync = fsync
        self.lock_timeout_s = lock_timeout_s
        self._dialogues = self.root / "dialogues"
        self._jobs = self.root / "jobs"
        self._damaged = self.root / "damaged"
        self._locks_dir = self.root / ".locks"
        self._locks: dict[str, filelock.FileLock] = {}
        self._locks_guard = threading.Lock()
        for directory in (self._dialogues, self._jobs, self._locks_dir):
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"cannot create the store's directory: {exc.strerror}",
                    path=str(directory),
                    hint="set [backends.jsonfile] root to a writable directory",
                ) from exc

    @classmethod
    def from_settings(cls, settings: JsonFileSettings) -> JsonFileStore:
        root = Path(settings.root).expanduser() if settings.root else default_root()
        return cls(root, fsync=settings.fsync, lock_timeout_s=settings.lock_timeout_s)

    def __repr__(self) -> str:
        return f"JsonFileStore({str(self.root)!r})"

    # --- locks and low-level writes -------------------------------------------------------

    def _lock(self, name: str) -> filelock.FileLock:
        lock = self._locks.get(name)
        if lock is None:
            with self._locks_guard:
                lock = self._locks.get(name)
                if lock is None:
                    path = self._locks_dir / f"{name}.lock"
                    lock = self._locks[name] = filelock.FileLock(path, timeout=self.lock_timeout_s)
        return lock

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        try:
            with self._lock(name):
                yield
        except filelock.Timeout:
            raise StorageError(
                f"another writer held the lock for more than {self.lock_timeout_s:g}s",
                path=str(self._locks_dir / f"{name}.lock"),
                hint="retry; if no modelport process is running, the lock is stale only if "
                "the file system does not release locks of dead processes (some NFS setups)",
            ) from None

    def _dialogue_lock(self, dialogue_id: str) -> str:
        return f"dialogues-{zlib.crc32(dialogue_id.encode()) % _STRIPES}"

    def _write_all(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if self.fsync:
            os.fsync(fd)

    def _write_aside(self, path: Path, data: bytes) -> Path:
        """Write ``data`` to a new temporary file next to ``path``; return its path."""
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            self._write_all(fd, data)
        finally:
            os.close(fd)
        return tmp

    def _replace(self, path: Path, data: bytes) -> None:
        """Write ``path`` whole, atomically: a reader sees the old file or the new one."""
        os.replace(self._write_aside(path, data), path)

    # --- dialogues ------------------------------------------------------------------------

    def _path(self, dialogue_id: str) -> Path:
        if not _ID.match(dialogue_id):
            raise self._missing(dialogue_id)
        return self._dialogues / f"{dialogue_id}.jsonl"

    @staticmethod
    def _missing(dialogue_id: str) -> RecordNotFoundError:
        return RecordNotFoundError(
            f"no dialogue {dialogue_id!r}", hint="list them with: modelport dialogues list"
        )

    def create_dialogue(
        self, *, assistant: str | None = None, title: str | None = None
    ) -> DialogueInfo:
        now = datetime.now(UTC)
        while True:
            dialogue = Dialogue(
                id=uuid.uuid4().hex[:16], created_at=now, assistant=assistant, title=title
            )
            path = self._path(dialogue.id)
            tmp = self._write_aside(path, (dumps_record(dialogue) + "\n").encode())
            try:
                os.link(tmp, path)  # appears whole, and never replaces another dialogue
            except FileExistsError:
                continue
            finally:
                tmp.unlink()
            return DialogueInfo(
                id=dialogue.id, created_at=now, updated_at=now, assistant=assistant, title=title
            )

    def append(self, dialogue_id: str, message: Message) -> None:
        path = self._path(dialogue_id)
        line = (dumps_record(message) + "\n").encode()
        with self._locked(self._dialogue_lock(dialogue_id)):
            try:
                fd = os.open(path, os.O_RDWR | os.O_APPEND)
            except FileNotFoundError:
                raise self._missing(dialogue_id) from None
            try:
                self._repair_tail(fd, path)
                self._write_all(fd, line)
            finally:
                os.close(fd)

    def _repair_tail(self, fd: int, path: Path) -> int:
        """Set aside a torn last line, if there is one; the file's size after."""
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            self._set_aside_torn(fd, path, size)
            size = os.fstat(fd).st_size
        return size

    def _set_aside_torn(self, fd: int, path: Path, size: int) -> None:
        """Move an unterminated last line (a write cut short) to ``damaged/``; keep the rest.

        Called with the dialogue's lock held, so the line is not a write in progress.
        """
        end = size
        while end > 0:
            start = max(0, end - _TAIL)
            chunk = os.pread(fd, end - start, start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        else:
            keep = 0
        torn = os.pread(fd, size - keep, keep)
        self._damaged.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        aside = self._damaged / f"{path.stem}.{stamp}.torn"
        self._replace(aside, torn)
        os.ftruncate(fd, keep)
        if self.fsync:
            os.fsync(fd)
        get_logger().warning(
            "torn record set aside",
            path=str(path),
            line=self._count_lines(fd, keep) + 1,
            bytes=len(torn),
            moved_to=str(aside),
        )

    @staticmethod
    def _count_lines(fd: int, size: int) -> int:
        count, offset = 0, 0
        while offset < size:
            chunk = os.pread(fd, min(1 << 20, size - offset), offset)
            if not chunk:
                break
            count += chunk.count(b"\n")
            offset += len(chunk)
        return count

    def _read(self, dialogue_id: str) -> tuple[Path, bytes]:
        """The dialogue file's complete lines, a torn last line set aside first."""
        path = self._path(dialogue_id)
        with self._locked(self._dialogue_lock(dialogue_id)):
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                raise self._missing(dialogue_id) from None
            try:
                size = self._repair_tail(fd, path)
                data = os.pread(fd, size, 0) if size else b""
            finally:
                os.close(fd)
        return path, data

    def load_dialogue(self, dialogue_id: str) -> Dialogue:
        path, data = self._read(dialogue_id)
        lines = data.decode("utf-8", errors="surrogateescape").split("\n")
        where = str(path)
        header: Dialogue | None = None
        messages: list[Message] = []
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            if header is None:
                header = loads_record(text, Dialogue, path=where, line=number)
            else:
                messages.append(loads_record(text, Message, path=where, line=number))
        if header is None:
            raise CorruptRecordError(
                "the dialogue has no header record", path=where, line=1,
                hint="restore the file from a backup, or delete it",
            )  # fmt: skip
        return Dialogue(
            id=dialogue_id,
            created_at=header.created_at,
            messages=messages,
            assistant=header.assistant,
            title=header.title,
        )

    def _info(self, path: Path) -> DialogueInfo:
        """A dialogue's summary: its header, its line count and its last message's time.

        Reads without the lock: a line being appended right now is simply not counted yet.
        """
        where = str(path)
        with path.open("rb") as file:
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        first, _, rest = complete.partition(b"\n")
        header = loads_record(
            first.decode("utf-8", "surrogateescape"), Dialogue, path=where, line=1
        )
        count = sum(1 for line in rest.split(b"\n") if line.strip())
        updated = header.created_at
        last = rest.rstrip(b"\n").rpartition(b"\n")[2]
        if last.strip():
            updated = self._created_at(last, where, complete.count(b"\n")) or updated
        return DialogueInfo(
            id=header.id,
            created_at=header.created_at,
            updated_at=updated,
            assistant=header.assistant,
            title=header.title,
            message_count=count,
        )

    @staticmethod
    def _created_at(line: bytes, path: str, number: int) -> datetime | None:
        try:
            value = json.loads(line).get("created_at")
            return converter.structure(value, datetime) if value else None
        except Exception as exc:
            raise CorruptRecordError(
                f"not a valid message record ({exc})", path=path, line=number
            ) from None

    def list_dialogues(
        self,
        *,
        assistant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        infos = []
        for path in self._dialogues.glob("*.jsonl"):
            try:
                info = self._info(path)
            except FileNotFoundError:  # deleted while listing
                continue
            if (
                (assistant is None or info.assistant == assistant)
                and (since is None or info.updated_at >= since)
                and (until is None or info.updated_at < until)
            ):
                infos.append(info)
        infos.sort(key=lambda i: (i.updated_at, i.id), reverse=True)
        return Page(infos[offset : offset + limit], offset=offset, total=len(infos))

    def delete_dialogue(self, dialogue_id: str) -> None:
        path = self._path(dialogue_id)
        with self._locked(self._dialogue_lock(dialogue_id)):
            try:
                path.unlink()
            except FileNotFoundError:
                raise self._missing(dialogue_id) from None

    # --- job records ----------------------------------------------------------------------

    def _job_path(self, job_id: str) -> Path:
        name = quote(job_id, safe="-_.")
        if name in ("", ".", ".."):
            raise RecordNotFoundError(f"no training job {job_id!r}")
        return self._jobs / f"{name}.json"

    def save_job(self, record: JobRecord) -> None:
        data = json.dumps(dump_record(record), indent=2, ensure_ascii=False).encode()
        with self._locked("jobs"):
            self._replace(self._job_path(record.job_id), data + b"\n")

    def _load_job_file(self, path: Path) -> JobRecord:
        try:
            text = path.read_bytes().decode("utf-8", "surrogateescape")
        except FileNotFoundError:
            raise RecordNotFoundError(
                f"no training job {unquote(path.stem)!r} in this store",
                hint="list them with: modelport jobs list",
            ) from None
        return loads_record(text, JobRecord, path=str(path), line=1)

    def load_job(self, job_id: str) -> JobRecord:
        return self._load_job_file(self._job_path(job_id))

    def list_jobs(self) -> Sequence[JobRecord]:
        records = [self._load_job_file(p) for p in self._jobs.glob("*.json")]
        return sorted(records, key=_job_started)


def _job_started(record: JobRecord) -> Any:
    first = record.history[0].at if record.history else datetime.min.replace(tzinfo=UTC)
    return (first, record.job_id)
