"""The JSON-file store (see the package docstring for the layout and guarantees)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import attrs
import filelock
import platformdirs

from modelport import Dialogue, DialogueInfo, JobRecord, Message, Page, UsageRecord
from modelport.errors import CorruptRecordError, RecordNotFoundError, StorageError
from modelport.logs import get_logger
from modelport.serialization import (
    dump_record,
    dumps_messages,
    dumps_record,
    loads_messages,
    loads_record,
)
from modelport.types import split_turns

if TYPE_CHECKING:
    from . import JsonFileSettings

__all__ = ["JsonFileStore"]

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TAIL = 65536  # bytes read at a time when reading a file from its end
_HEADER = 1 << 20  # the longest header line read before the file is called damaged
_TAILS = 256  # dialogues whose latest messages are kept parsed, for the next ask
_BEHIND = 1 << 20  # a kept tail this far behind its file is read again from the end
_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: Every stored message has exactly one ``"role":`` key, and the sequence cannot occur inside
#: a JSON string (a quote there is always escaped), so counting it counts messages unparsed.
_ROLE_KEY = b'"role":'


def default_root() -> Path:
    return platformdirs.user_data_path("modelport") / "store"


def _hint(exc: OSError) -> str:
    if exc.errno in _READ_ONLY:
        return "make the store writable, or set [backends.jsonfile] root to a writable directory"
    if exc.errno in _FULL:
        return "free some disk space and try again; nothing was written"
    return "check the store's directory ([backends.jsonfile] root)"


@contextmanager
def _os_errors(action: str, path: Path) -> Iterator[None]:
    """Turn an ``OSError`` into a :class:`StorageError` naming the file and what to do."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, filelock.Timeout):  # pragma: no cover - mapped by _locked
            raise
        raise StorageError(
            f"cannot {action}: {exc.strerror or exc}", path=str(path), hint=_hint(exc)
        ) from exc


def _backwards(fd: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """The lines of ``fd`` between ``start`` and ``end`` (just after a newline), last first,
    each with its offset; a file is read from its end in chunks, never whole."""
    pos, pending = end, b""
    while True:
        if pos > start:
            low = max(start, pos - _TAIL)
            pending = os.pread(fd, pos - low, low) + pending
            pos = low
        high = len(pending) - 1  # the newline that ends the last line not yet given
        while (cut := pending.rfind(b"\n", 0, high)) >= 0:
            yield pos + cut + 1, pending[cut + 1 : high]
            high = cut
        if pos <= start:
            if high >= 0:
                yield pos, pending[:high]
            return
        pending = pending[: high + 1]


def _count_lines(fd: int, size: int) -> int:
    count, offset = 0, 0
    while offset < size:
        chunk = os.pread(fd, min(1 << 20, size - offset), offset)
        if not chunk:
            break
        count += chunk.count(b"\n")
        offset += len(chunk)
    return count


class _Tail:
    """The parsed latest lines of one dialogue file, so that the next ask parses only what was
    appended since. Files grow only by appends; the file's identity, its size and the bytes
    before ``end`` are checked before a tail is reused, so a file replaced, truncated or
    rewritten is read afresh."""

    __slots__ = ("body", "count", "end", "file", "header", "keep", "lines", "mark")

    def __init__(self, file: tuple[int, int], header: Dialogue, body: int) -> None:
        self.file = file
        self.header = header
        self.body = body  # where the messages start, after the header line
        self.lines: deque[tuple[int, tuple[Message, ...]]] = deque()  # (offset, messages)
        self.end = -1  # just after the last line read; -1: nothing read yet
        self.mark = b""  # the bytes just before ``end``, to see a rewritten file
        self.count = 0
        self.keep = 0

    @property
    def start(self) -> int:
        return self.lines[0][0] if self.lines else self.end

    def fits(self, fd: int, file: tuple[int, int], end: int) -> bool:
        if file != self.file or self.end < 0 or self.end > end or end - self.end > _BEHIND:
            return False
        return os.pread(fd, len(self.mark), self.end - len(self.mark)) == self.mark

    def messages(self, last: int) -> list[Message]:
        found = [m for _offset, messages in self.lines for m in messages]
        return found[max(0, len(found) - last) :]


def _parse(line: bytes, fd: int, path: Path, offset: int) -> tuple[Message, ...]:
    try:
        return loads_messages(line, path=str(path))
    except CorruptRecordError:  # name its line: count the lines before it, this once
        return loads_messages(line, path=str(path), line=_count_lines(fd, offset) + 1)


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
        self._usage = self.root / "usage"
        self._usage_guard = threading.Lock()
        self._usage_open: tuple[str, int, int] | None = None  # (month, pid, fd)
        self._damaged = self.root / "damaged"
        self._locks_dir = self.root / ".locks"
        self._locks: dict[str, filelock.FileLock] = {}
        self._locks_guard = threading.Lock()
        self._tails: OrderedDict[str, _Tail] = OrderedDict()
        for directory in (self._dialogues, self._jobs, self._locks_dir):
            # A read-only store can still be read: a directory that cannot be made now is
            # made (or its failure reported) by the first write that needs it.
            with contextlib.suppress(OSError):
                directory.mkdir(parents=True, exist_ok=True)

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
        lock = self._lock(name)
        try:
            with _os_errors("take the store's lock", Path(lock.lock_file)):
                try:
                    lock.acquire()
                except FileNotFoundError:  # the store's directory was deleted: make it again
                    self._locks_dir.mkdir(parents=True, exist_ok=True)
                    lock.acquire()
        except filelock.Timeout:
            raise StorageError(
                f"another writer held the lock for more than {self.lock_timeout_s:g}s",
                path=str(self._locks_dir / f"{name}.lock"),
                hint="retry; if no modelport process is running, the lock is stale only if "
                "the file system does not release locks of dead processes (some NFS setups)",
            ) from None
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def _writing(self, dialogue_id: str, action: str) -> Iterator[tuple[Path, int]]:
        """The dialogue file, open for appending and locked against every other writer
        (threads and processes alike: an ``flock`` on the file itself, so taking it costs no
        extra file). A file deleted while we waited for the lock is a missing dialogue."""
        path = self._path(dialogue_id)
        with _os_errors(action, path):
            try:
                fd = os.open(path, os.O_RDWR | os.O_APPEND)
            except FileNotFoundError:
                raise self._missing(dialogue_id) from None
            try:
                self._flock(fd, path)
                if os.fstat(fd).st_nlink == 0:
                    raise self._missing(dialogue_id)
                yield path, fd
            finally:
                os.close(fd)  # releases the lock

    def _flock(self, fd: int, path: Path) -> None:
        deadline = time.monotonic() + self.lock_timeout_s
        wait = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StorageError(
                        f"another writer held the lock for more than {self.lock_timeout_s:g}s",
                        path=str(path),
                        hint="retry; if no modelport process is running, the lock is stale only "
                        "if the file system does not release locks of dead processes (some NFS)",
                    ) from None
                time.sleep(wait)
                wait = min(wait * 2, 0.01)

    def _write_all(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if self.fsync:
            os.fsync(fd)

    def _write_aside(self, path: Path, data: bytes) -> Path:
        """Write ``data`` to a new temporary file next to ``path``; return its path. A write
        that fails leaves no file behind; a deleted directory is made again."""
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                self._write_all(fd, data)
            finally:
                os.close(fd)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _replace(self, path: Path, data: bytes) -> None:
        """Write ``path`` whole, atomically: a reader sees the old file or the new one."""
        tmp = self._write_aside(path, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # --- dialogues ------------------------------------------------------------------------

    def _path(self, dialogue_id: str) -> Path:
        if not _ID.fullmatch(dialogue_id):
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
        with _os_errors("create a dialogue", self._dialogues):
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

    def import_dialogue(self, dialogue: Dialogue) -> None:
        """Create ``dialogue`` whole, keeping its id, creation time and messages, in one write:
        it appears whole or not at all (``modelport store copy`` keeps ids this way).

        :raises StorageError: when a dialogue with that id exists (nothing is changed), or the
            id is not one this store can keep.
        """
        if not _ID.fullmatch(dialogue.id):
            raise StorageError(
                f"cannot keep the dialogue id {dialogue.id!r}: ids are 1 to 64 letters, "
                "digits, '-' or '_'",
                path=str(self._dialogues),
            )
        path = self._path(dialogue.id)
        header = attrs.evolve(dialogue, messages=())
        lines = [dumps_record(header), *(dumps_messages(t) for t in split_turns(dialogue.messages))]
        with _os_errors("import the dialogue", path):
            tmp = self._write_aside(path, ("\n".join(lines) + "\n").encode())
            try:
                os.link(tmp, path)  # never replaces a dialogue that is there
            except FileExistsError:
                raise StorageError(
                    f"a dialogue {dialogue.id!r} exists already",
                    path=str(path),
                    hint="nothing was changed",
                ) from None
            finally:
                tmp.unlink()

    def append(self, dialogue_id: str, *messages: Message) -> None:
        if not messages:
            return
        line = (dumps_messages(messages) + "\n").encode()
        with self._writing(dialogue_id, "append to the dialogue") as (path, fd):
            size = self._repair_tail(fd, path)
            try:
                self._write_all(fd, line)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)  # nothing half-written stays behind
                raise
            self._kept(dialogue_id, fd, size, line, messages)

    def _kept(
        self, dialogue_id: str, fd: int, size: int, line: bytes, messages: Sequence[Message]
    ) -> None:
        """Add what was just appended to the dialogue's kept tail, when the tail ran up to
        where the line was written: the next ask then parses nothing of its own turn."""
        with self._locks_guard:  # taken out while it changes, as _latest does
            tail = self._tails.pop(dialogue_id, None)
        if tail is None:
            return
        stat = os.fstat(fd)
        if tail.end == size and len(line) >= 64 and tail.file == (stat.st_dev, stat.st_ino):
            tail.lines.append((size, tuple(messages)))
            tail.count += len(messages)
            tail.end = size + len(line)
            tail.mark = line[-64:]
        with self._locks_guard:
            self._tails.setdefault(dialogue_id, tail)

    def _tail_messages(self, fd: int, size: int, path: Path) -> tuple[int, tuple[Message, ...]]:
        """Where the complete lines end, and the messages of an unterminated last line when it
        is a whole, valid record (a write that lost only its newline); ``()`` when torn."""
        if not size or os.pread(fd, 1, size - 1) == b"\n":
            return size, ()
        end = self._last_newline_before(fd, size)
        if end == 0:  # the header itself is unterminated
            return 0, ()
        try:
            return end, loads_messages(os.pread(fd, size - end, end), path=str(path))
        except CorruptRecordError:
            return end, ()

    @staticmethod
    def _last_newline_before(fd: int, size: int) -> int:
        end = size
        while end > 0:
            start = max(0, end - _TAIL)
            newline = os.pread(fd, end - start, start).rfind(b"\n")
            if newline >= 0:
                return start + newline + 1
            end = start
        return 0

    def _repair_tail(self, fd: int, path: Path) -> int:
        """Make the file end in a newline before an append: a valid last record that lost only
        its newline gets it back; a torn one is set aside. The file's size after."""
        size = os.fstat(fd).st_size
        end, whole = self._tail_messages(fd, size, path)
        if end == size:
            return size
        if whole:
            self._write_all(fd, b"\n")
            return size + 1
        self._set_aside_torn(fd, path, end, size)
        return end

    def _set_aside_torn(self, fd: int, path: Path, keep: int, size: int) -> None:
        """Move an unterminated last line (a write cut short) to ``damaged/``; keep the rest.

        Called with the dialogue's lock held, so the line is not a write in progress.
        """
        torn = os.pread(fd, size - keep, keep)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        aside = self._damaged / f"{path.stem}.{stamp}.torn"
        self._replace(aside, torn)
        os.ftruncate(fd, keep)
        if self.fsync:
            os.fsync(fd)
        get_logger().warning(
            "torn record set aside",
            path=str(path),
            line=_count_lines(fd, keep) + 1,
            bytes=len(torn),
            moved_to=str(aside),
        )

    @contextmanager
    def _open_read(self, dialogue_id: str) -> Iterator[tuple[Path, int]]:
        """The dialogue file open for reading only (a read never writes, nor takes a lock)."""
        path = self._path(dialogue_id)
        with _os_errors("read the dialogue", path):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                raise self._missing(dialogue_id) from None
            try:
                yield path, fd
            finally:
                os.close(fd)

    @staticmethod
    def _header(fd: int, path: Path) -> tuple[Dialogue, int]:
        """The dialogue's header record, and the offset where its messages start."""
        chunks: list[bytes] = []
        read = 0
        while True:  # a header is a few hundred bytes; a damaged one is refused at _HEADER
            chunk = os.pread(fd, 4096, read)
            if not chunk or read >= _HEADER:
                raise CorruptRecordError(
                    "the dialogue has no header record", path=str(path), line=1,
                    hint="restore the file from a backup, or delete it",
                )  # fmt: skip
            chunks.append(chunk)
            read += len(chunk)
            if (found := chunk.find(b"\n")) >= 0:
                newline = read - len(chunk) + found
                break
        text = b"".join(chunks)[:newline]
        try:
            header = loads_record(text.decode("utf-8"), Dialogue, path=str(path), line=1)
        except UnicodeDecodeError:
            raise CorruptRecordError("not valid UTF-8", path=str(path), line=1) from None
        return header, newline + 1

    def _unterminated(self, end: int, size: int, path: Path) -> None:
        if end < size:
            get_logger().warning(
                "unterminated last record ignored (a write cut short; the next append sets "
                "it aside)",
                path=str(path),
                bytes=size - end,
            )

    def load_dialogue(self, dialogue_id: str, *, last: int | None = None) -> Dialogue:
        with self._open_read(dialogue_id) as (path, fd):
            stat = os.fstat(fd)
            end, extra = self._tail_messages(fd, stat.st_size, path)
            if not extra:
                self._unterminated(end, stat.st_size, path)
            if last is None:
                header, start = self._header(fd, path)
                messages = self._messages(fd, path, start, end) + list(extra)
            else:
                wanted = max(0, last - len(extra))  # a newline-less last record counts too
                header, messages = self._latest(dialogue_id, fd, path, stat, end, wanted)
                messages = (messages + list(extra))[max(0, len(messages) + len(extra) - last) :]
        return Dialogue(
            id=dialogue_id,
            created_at=header.created_at,
            messages=messages,
            assistant=header.assistant,
            title=header.title,
        )

    @staticmethod
    def _messages(fd: int, path: Path, start: int, end: int) -> list[Message]:
        data = os.pread(fd, end - start, start) if end > start else b""
        where = str(path)
        messages: list[Message] = []
        for number, line in enumerate(data.split(b"\n")[:-1], start=2):
            if line.strip():
                messages += loads_messages(line, path=where, line=number)
        return messages

    def _latest(
        self, dialogue_id: str, fd: int, path: Path, stat: os.stat_result, end: int, last: int
    ) -> tuple[Dialogue, list[Message]]:
        """The header and the last ``last`` complete messages. The file is read from its end
        only as far as needed, and what was parsed is kept: the next call parses only the
        lines appended since."""
        file = (stat.st_dev, stat.st_ino)
        with self._locks_guard:
            tail = self._tails.pop(dialogue_id, None)
        if tail is None or not tail.fits(fd, file, end):
            tail = _Tail(file, *self._header(fd, path))
            tail.end = max(end, tail.body)
        if end > tail.end:  # appended since: parse forward
            data = os.pread(fd, end - tail.end, tail.end)
            offset = tail.end
            for line in data.split(b"\n")[:-1]:
                if line.strip():
                    messages = _parse(line, fd, path, offset)
                    tail.lines.append((offset, messages))
                    tail.count += len(messages)
                offset += len(line) + 1
            tail.end = end
        if tail.count < last and tail.start > tail.body:  # not enough yet: read backwards
            for offset, line in _backwards(fd, tail.body, tail.start):
                if line.strip():
                    messages = _parse(line, fd, path, offset)
                    tail.lines.appendleft((offset, messages))
                    tail.count += len(messages)
                if tail.count >= last:
                    break
        tail.keep = max(tail.keep, last)  # the widest window asked for stays parsed
        while tail.lines and tail.count - len(tail.lines[0][1]) >= tail.keep:
            tail.count -= len(tail.lines.popleft()[1])
        mark = min(64, tail.end - tail.body)
        tail.mark = os.pread(fd, mark, tail.end - mark)
        with self._locks_guard:
            self._tails[dialogue_id] = tail
            while len(self._tails) > _TAILS:
                self._tails.popitem(last=False)
        return tail.header, tail.messages(last)

    def _info(self, path: Path) -> DialogueInfo:
        """A dialogue's summary: its header, its message count and its last message's time."""
        where = str(path)
        with open(path, "rb") as file:
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        first, _, rest = complete.partition(b"\n")
        try:
            text = first.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptRecordError("not valid UTF-8", path=where, line=1) from None
        header = loads_record(text, Dialogue, path=where, line=1)
        updated = header.created_at
        last = rest.rstrip(b"\n").rpartition(b"\n")[2]
        if last.strip():
            messages = loads_messages(last, path=where, line=complete.count(b"\n"))
            updated = next((m.created_at for m in reversed(messages) if m.created_at), updated)
        return DialogueInfo(
            id=header.id,
            created_at=header.created_at,
            updated_at=updated,
            assistant=header.assistant,
            title=header.title,
            message_count=rest.count(_ROLE_KEY),
        )

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
        with _os_errors("list the dialogues", self._dialogues):
            paths = list(self._dialogues.glob("*.jsonl")) if self._dialogues.is_dir() else []
        for path in paths:
            try:
                with _os_errors("read the dialogue", path):
                    info = self._info(path)
            except StorageError as exc:
                if isinstance(exc.__cause__, FileNotFoundError):  # deleted while listing
                    continue
                _skipped(exc)
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
        with self._writing(dialogue_id, "delete the dialogue") as (path, _fd):
            path.unlink()
        with self._locks_guard:
            self._tails.pop(dialogue_id, None)

    # --- job records ----------------------------------------------------------------------

    def _job_path(self, job_id: str) -> Path:
        try:
            name = quote(job_id, safe="-_.")
        except UnicodeEncodeError:  # a lone surrogate: no job has such an id
            name = ""
        if name in ("", ".", ".."):
            raise RecordNotFoundError(f"no training job {job_id!r}")
        return self._jobs / f"{name}.json"

    def save_job(self, record: JobRecord) -> None:
        path = self._job_path(record.job_id)
        data = json.dumps(dump_record(record), indent=2, ensure_ascii=False).encode()
        with self._locked("jobs"), _os_errors("save the job record", path):
            self._replace(path, data + b"\n")

    def _load_job_file(self, path: Path) -> JobRecord:
        with _os_errors("read the job record", path):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise RecordNotFoundError(
                    f"no training job {unquote(path.stem)!r} in this store",
                    hint="list them with: modelport jobs list",
                ) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptRecordError(
                f"not valid UTF-8 (byte {exc.start + 1})", path=str(path), line=1
            ) from None
        return loads_record(text, JobRecord, path=str(path), line=1)

    def load_job(self, job_id: str) -> JobRecord:
        return self._load_job_file(self._job_path(job_id))

    def list_jobs(self) -> Sequence[JobRecord]:
        records = []
        with _os_errors("list the job records", self._jobs):
            paths = list(self._jobs.glob("*.json")) if self._jobs.is_dir() else []
        for path in paths:
            try:
                records.append(self._load_job_file(path))
            except RecordNotFoundError:  # deleted while listing
                continue
            except StorageError as exc:
                _skipped(exc)
        return sorted(records, key=_job_started)

    # --- usage records --------------------------------------------------------------------

    def record_usage(self, record: UsageRecord) -> None:
        """Append ``record`` to ``usage/<YYYY-MM>.jsonl`` (its month, UTC), under the file's
        ``flock``; a torn last line left by a killed writer is ended first, so it stays one
        damaged line that readers skip. The month's file stays open between calls (one
        ``open`` per month and process, not per call); :meth:`close` closes it."""
        month = f"{record.at.astimezone(UTC):%Y-%m}"
        line = (dumps_record(record) + "\n").encode()
        with self._usage_guard:
            path = self._usage / f"{month}.jsonl"
            with _os_errors("record usage", path):
                for _ in range(2):
                    fd = self._usage_fd(month, path)
                    self._flock(fd, path)
                    try:
                        stat = os.fstat(fd)
                        if stat.st_nlink == 0:  # deleted or moved aside: open a new one
                            self._close_usage()
                            continue
                        if stat.st_size and os.pread(fd, 1, stat.st_size - 1) != b"\n":
                            line = b"\n" + line  # a torn line: end it
                        self._write_all(fd, line)
                        return
                    finally:
                        with contextlib.suppress(OSError):
                            fcntl.flock(fd, fcntl.LOCK_UN)

    def _usage_fd(self, month: str, path: Path) -> int:
        cached = self._usage_open
        if cached is not None and cached[0] == month and cached[1] == os.getpid():
            return cached[2]
        self._close_usage()
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, flags, 0o644)
        self._usage_open = (month, os.getpid(), fd)
        return fd

    def _close_usage(self) -> None:
        cached, self._usage_open = self._usage_open, None
        if cached is not None and cached[1] == os.getpid():
            with contextlib.suppress(OSError):
                os.close(cached[2])

    def close(self) -> None:
        """Close the usage file kept open by :meth:`record_usage` (the hub calls this)."""
        with self._usage_guard:
            self._close_usage()

    def list_usage(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> Sequence[UsageRecord]:
        """Usage records with ``since <= at < until``, oldest first; only the months in the
        range are read, and a damaged line is logged and skipped."""
        with _os_errors("list the usage records", self._usage):
            paths = sorted(self._usage.glob("*.jsonl")) if self._usage.is_dir() else []
        low = f"{since.astimezone(UTC):%Y-%m}" if since is not None else ""
        high = f"{until.astimezone(UTC):%Y-%m}" if until is not None else "~"
        records: list[UsageRecord] = []
        for path in paths:
            if not low <= path.stem <= high:
                continue
            with _os_errors("read the usage records", path):
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue
            for number, raw in enumerate(data.split(b"\n"), 1):
                if not raw.strip():
                    continue
                try:
                    text = raw.decode("utf-8", "replace")
                    record = loads_record(text, UsageRecord, path=str(path), line=number)
                except StorageError as exc:
                    _skipped(exc)
                    continue
                if (since is None or record.at >= since) and (until is None or record.at < until):
                    records.append(record)
        records.sort(key=lambda r: r.at)
        return records


def _skipped(exc: StorageError) -> None:
    get_logger().warning("damaged record skipped", path=exc.path, line=exc.line, error=str(exc))


def _job_started(record: JobRecord) -> Any:
    first = record.history[0].at if record.history else datetime.min.replace(tzinfo=UTC)
    return (first, record.job_id)
