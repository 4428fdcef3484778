"""The storage kit: a whole :class:`~modelport.backends.Store` over three primitives.

A database offers a way to read one record, to read a range of records in key order, and to
write several records in one transaction. :class:`RecordStore` builds every rule of the
storage contract (``docs/contracts/storage.md``) on exactly that: ids, timestamps (aware, UTC
when the store chooses them), message counts, last activity, listing newest first with
filters, paging and totals, reading only the tail of a dialogue, missing ids, job records,
usage records (:class:`~modelport.backends.UsageStore`) and ``import_dialogue``
(:class:`~modelport.backends.ImportsDialogues`). A subclass implements:

* ``read(table, key)``: the value stored under ``(table, key)``, or ``None``;
* ``scan(table, start, stop)``: the ``(key, value)`` pairs of ``table`` with
  ``start <= key < stop`` (``stop=None``: no upper bound), in key order;
* ``commit(writes, expect)``: in one transaction, and only if every key of ``expect`` still
  holds its expected value (``None``: absent), apply ``writes`` (``None``: delete) and return
  ``True``; else change nothing and return ``False``.

Keys and values are strings (values are records in modelport's versioned JSON, see
:func:`modelport.serialization.dumps_record`); tables are ``"dialogues"``, ``"messages"``,
``"jobs"`` and ``"usage"``. An append reads the dialogue's record, then commits the new
message rows with the updated record, expecting the record it read; when another writer got
there first, the commit answers ``False`` and the append tries again. So turns stay whole and
in order across threads and processes, as long as ``commit`` is atomic (one transaction) and
the primitives are safe to call from several threads at once.

Errors: an exception of a type in :attr:`RecordStore.errors` (``OSError`` unless the subclass
names its driver's, ``sqlite3.Error`` say) raised by a primitive becomes a
:class:`~modelport.errors.StorageError` naming the store and :attr:`RecordStore.where`.

Costs: ``list_dialogues`` reads every dialogue's record (one scan, not the messages);
``load_dialogue(id, last=N)`` reads the dialogue's record and its last ``N`` messages.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import ClassVar, TypeVar

import attrs

from .errors import CorruptRecordError, ModelportError, RecordNotFoundError, StorageError
from .serialization import dumps_record, loads_record
from .types import Dialogue, DialogueInfo, JobRecord, Message, Page, UsageRecord

__all__ = ["DIALOGUES", "JOBS", "MESSAGES", "USAGE", "Key", "RecordStore"]

#: A record's address: ``(table, key)``.
Key = tuple[str, str]
#: The tables a :class:`RecordStore` uses.
DIALOGUES, MESSAGES, JOBS, USAGE = "dialogues", "messages", "jobs", "usage"

T = TypeVar("T")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _aware(value: datetime) -> datetime:
    """``value`` with a time zone (a naive time is read as UTC)."""
    return value if value.utcoffset() is not None else value.replace(tzinfo=UTC)


def _message_key(dialogue_id: str, seq: int) -> str:
    return f"{dialogue_id}/{seq:012d}"


def _time_key(value: datetime) -> str:
    """A UTC time as text that sorts in time order."""
    return _aware(value).astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


class RecordStore(ABC):
    """A :class:`~modelport.backends.Store` (and ``UsageStore``, ``ImportsDialogues``) over
    ``read``, ``scan`` and ``commit`` (see the module). Safe from several threads and
    processes when the primitives are.

    :ivar name: the backend's name, in every error (set it from ``context.name``).
    :ivar where: the file, table or URL errors name (default: the name).
    """

    name: str = "store"
    where: str | None = None
    #: The exceptions of the primitives that become StorageError (a driver's base error).
    errors: ClassVar[tuple[type[BaseException], ...]] = (OSError,)
    #: What a StorageError from a primitive tells the user to do.
    hint: ClassVar[str] = (
        "check that the database is there, reachable and writable, then retry; a failed write "
        "changed nothing"
    )
    #: How long a write retries while other writers keep changing its record, in seconds.
    retry_for_s: ClassVar[float] = 30.0

    def __init__(self, name: str = "store", *, where: str | None = None) -> None:
        self.name = name
        self.where = where

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, where={self.where or self.name!r})"

    # --- the primitives a subclass implements -----------------------------------------------

    @abstractmethod
    def read(self, table: str, key: str) -> str | None:
        """The value stored under ``(table, key)``, or ``None``."""

    @abstractmethod
    def scan(
        self, table: str, start: str = "", stop: str | None = None
    ) -> Iterable[tuple[str, str]]:
        """The ``(key, value)`` pairs of ``table`` with ``start <= key < stop`` (no upper
        bound when ``stop`` is ``None``), in key order (by code point, as SQL's binary
        collation)."""

    @abstractmethod
    def commit(self, writes: Mapping[Key, str | None], expect: Mapping[Key, str | None]) -> bool:
        """Atomically: when every key of ``expect`` holds its value (``None``: is absent),
        apply ``writes`` (``None``: delete) and return ``True``; else change nothing and
        return ``False``."""

    # --- errors ------------------------------------------------------------------------------

    @contextmanager
    def storage_errors(self, action: str) -> Iterator[None]:
        """Turn an exception of a type in :attr:`errors` into a StorageError saying
        ``action`` (for a subclass's own I/O, when it opens its database, say)."""
        try:
            yield
        except ModelportError:
            raise
        except self.errors as exc:
            raise StorageError(
                f"store {self.name!r} could not {action}: {type(exc).__name__}: {exc}",
                path=self.where or self.name,
                hint=self.hint,
            ) from exc

    def _read(self, table: str, key: str, action: str) -> str | None:
        with self.storage_errors(action):
            return self.read(table, key)

    def _scan(self, table: str, start: str, stop: str | None, action: str) -> list[tuple[str, str]]:
        with self.storage_errors(action):
            return list(self.scan(table, start, stop))

    def _commit(
        self, writes: Mapping[Key, str | None], expect: Mapping[Key, str | None], action: str
    ) -> bool:
        with self.storage_errors(action):
            return bool(self.commit(writes, expect))

    def _load(self, table: str, key: str, text: str, cls: type[T]) -> T:
        return loads_record(text, cls, path=f"{self.where or self.name} ({table} {key!r})")

    def _attempts(self, action: str) -> Iterator[int]:
        """Attempt numbers, until :attr:`retry_for_s` is spent (then a StorageError)."""
        deadline = time.monotonic() + self.retry_for_s
        attempt = 0
        while True:
            yield attempt
            attempt += 1
            if time.monotonic() > deadline:
                raise StorageError(
                    f"store {self.name!r} could not {action}: other writers kept changing "
                    f"the record ({attempt} tries)",
                    path=self.where or self.name,
                    hint="retry; nothing was written",
                )
            time.sleep(random.uniform(0, min(0.05, 0.0002 * 2 ** min(attempt, 10))))

    @staticmethod
    def _missing(dialogue_id: str) -> RecordNotFoundError:
        return RecordNotFoundError(f"no dialogue {dialogue_id!r}")

    def _info(self, dialogue_id: str, action: str) -> tuple[str, DialogueInfo]:
        text = self._read(DIALOGUES, dialogue_id, action)
        if text is None:
            raise self._missing(dialogue_id)
        return text, self._load(DIALOGUES, dialogue_id, text, DialogueInfo)

    # --- dialogues ---------------------------------------------------------------------------

    def create_dialogue(
        self, *, assistant: str | None = None, title: str | None = None
    ) -> DialogueInfo:
        now = datetime.now(UTC)
        info = DialogueInfo(uuid.uuid4().hex, now, now, assistant=assistant, title=title)
        key = (DIALOGUES, info.id)
        if not self._commit({key: dumps_record(info)}, {key: None}, "create a dialogue"):
            raise StorageError(f"a dialogue {info.id!r} exists already", path=self.where)
        return info

    def append(self, dialogue_id: str, *messages: Message) -> None:
        """Append ``messages`` in one commit, after every append committed before."""
        now = datetime.now(UTC)
        stamped = [
            attrs.evolve(m, created_at=now if m.created_at is None else _aware(m.created_at))
            for m in messages
        ]
        rows = [dumps_record(m) for m in stamped]
        for _ in self._attempts("append to a dialogue"):
            old, info = self._info(dialogue_id, "read a dialogue")
            if not stamped:
                return
            count = info.message_count
            last = stamped[-1].created_at or now
            new = attrs.evolve(info, updated_at=last, message_count=count + len(rows))
            writes: dict[Key, str | None] = {
                (MESSAGES, _message_key(dialogue_id, count + n)): row for n, row in enumerate(rows)
            }
            writes[(DIALOGUES, dialogue_id)] = dumps_record(new)
            if self._commit(writes, {(DIALOGUES, dialogue_id): old}, "append to a dialogue"):
                return

    def load_dialogue(self, dialogue_id: str, *, last: int | None = None) -> Dialogue:
        for _ in self._attempts("read a dialogue"):
            text, info = self._info(dialogue_id, "read a dialogue")
            count = info.message_count
            first = 0 if last is None else count - min(max(last, 0), count)
            rows = []
            if first < count:
                start, stop = _message_key(dialogue_id, first), _message_key(dialogue_id, count)
                rows = self._scan(MESSAGES, start, stop, "read a dialogue's messages")
            if len(rows) == count - first:
                messages = [self._load(MESSAGES, k, v, Message) for k, v in rows]
                return Dialogue(
                    info.id, info.created_at, messages, assistant=info.assistant, title=info.title
                )
            if self._read(DIALOGUES, dialogue_id, "read a dialogue") == text:
                raise CorruptRecordError(
                    f"dialogue {dialogue_id!r} has {count} messages, but messages "
                    f"{first} to {count - 1} are not all there",
                    path=self.where or self.name,
                    hint="restore the store from a backup",
                )
            # deleted (or written) meanwhile: look again
        raise AssertionError("unreachable")  # pragma: no cover

    def list_dialogues(
        self,
        *,
        assistant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        rows = self._scan(DIALOGUES, "", None, "list dialogues")
        infos = [self._load(DIALOGUES, k, v, DialogueInfo) for k, v in rows]
        low = None if since is None else _aware(since)
        high = None if until is None else _aware(until)
        found = [
            i
            for i in infos
            if (assistant is None or i.assistant == assistant)
            and (low is None or i.updated_at >= low)
            and (high is None or i.updated_at < high)
        ]
        found.sort(key=lambda i: (i.updated_at, i.created_at, i.id), reverse=True)
        offset, limit = max(offset, 0), max(limit, 0)
        return Page(found[offset : offset + limit], offset=offset, total=len(found))

    def delete_dialogue(self, dialogue_id: str) -> None:
        for _ in self._attempts("delete a dialogue"):
            old, info = self._info(dialogue_id, "read a dialogue")
            writes: dict[Key, str | None] = {
                (MESSAGES, _message_key(dialogue_id, n)): None for n in range(info.message_count)
            }
            writes[(DIALOGUES, dialogue_id)] = None
            if self._commit(writes, {(DIALOGUES, dialogue_id): old}, "delete a dialogue"):
                return

    def import_dialogue(self, dialogue: Dialogue) -> None:
        """Create ``dialogue`` whole, keeping its id, in one commit.

        :raises StorageError: when a dialogue with that id exists (nothing is changed), or
            the id is not 1 to 64 letters, digits, ``-`` or ``_``.
        """
        if not _ID.fullmatch(dialogue.id):
            raise StorageError(
                f"cannot keep the dialogue id {dialogue.id!r}: ids are 1 to 64 letters, "
                "digits, '-' or '_'",
                path=self.where or self.name,
            )
        created = _aware(dialogue.created_at)
        stamped = [
            attrs.evolve(m, created_at=created if m.created_at is None else _aware(m.created_at))
            for m in dialogue.messages
        ]
        updated = stamped[-1].created_at if stamped else None
        info = DialogueInfo(
            dialogue.id,
            created,
            updated or created,
            assistant=dialogue.assistant,
            title=dialogue.title,
            message_count=len(stamped),
        )
        writes: dict[Key, str | None] = {
            (MESSAGES, _message_key(dialogue.id, n)): dumps_record(m) for n, m in enumerate(stamped)
        }
        writes[(DIALOGUES, dialogue.id)] = dumps_record(info)
        if not self._commit(writes, {(DIALOGUES, dialogue.id): None}, "import a dialogue"):
            raise StorageError(
                f"a dialogue {dialogue.id!r} exists already",
                path=self.where or self.name,
                hint="nothing was changed",
            )

    # --- jobs and usage ------------------------------------------------------------------------

    def save_job(self, record: JobRecord) -> None:
        key = (JOBS, record.job_id)
        self._commit({key: dumps_record(record)}, {}, "save a job record")

    def load_job(self, job_id: str) -> JobRecord:
        text = self._read(JOBS, job_id, "read a job record")
        if text is None:
            raise RecordNotFoundError(f"no job record {job_id!r}")
        return self._load(JOBS, job_id, text, JobRecord)

    def list_jobs(self) -> Sequence[JobRecord]:
        return [
            self._load(JOBS, k, v, JobRecord) for k, v in self._scan(JOBS, "", None, "list jobs")
        ]

    def record_usage(self, record: UsageRecord) -> None:
        key = (USAGE, f"{_time_key(record.at)}/{uuid.uuid4().hex}")
        self._commit({key: dumps_record(record)}, {}, "record usage")

    def list_usage(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> Sequence[UsageRecord]:
        start = "" if since is None else _time_key(since)
        stop = None if until is None else _time_key(until)
        rows = self._scan(USAGE, start, stop, "list usage")
        return [self._load(USAGE, k, v, UsageRecord) for k, v in rows]
