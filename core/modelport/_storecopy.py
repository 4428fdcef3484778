"""Copy dialogues, job records and usage from one store to another (``modelport store copy``).

Works on any two :class:`~modelport.backends.Store` backends through the protocol alone, and
is resumable: run it again after an interruption and it carries on, copying nothing twice and
losing nothing.

* A dialogue keeps its id when the target has the optional ``import_dialogue(dialogue)`` method
  (:class:`~modelport.backends.ImportsDialogues`; the ``sql`` store has it): the dialogue is
  created whole, with its id, creation time and messages, in one write. Otherwise it is created
  anew (a new id) and its messages appended turn by turn; a journal (JSON lines, one
  ``{"source": id, "target": id}`` per dialogue, written before the first append) maps the ids,
  so a second run finds it again. A ``{"source": id, "pending": time}`` line is written before
  the dialogue is created: when a run stops between the creation and the journal's line, the
  next run takes up the empty dialogue it left (same assistant and title, created since then,
  in no journal line) instead of creating a second one.
* Either way, what the target already holds is compared with the source: a dialogue that
  holds the first ``k`` messages of its source gets the rest appended; one whose messages are
  not a prefix of the source's is a conflict, reported and left alone.
* Job records are saved when missing or different (the source's record wins); usage records
  (when both stores keep usage) are copied when the target lacks them; into a target with new
  ids, a usage record's ``dialogue_id`` is the target's id for that dialogue.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from .backends import ImportsDialogues, UsageStore, implements
from .errors import RecordNotFoundError, StorageError
from .types import Dialogue, Message, split_turns

__all__ = ["CopyReport", "copy_store"]

_PAGE = 200
#: Listings of the source, at most: until one finds no id the ones before missed.
_PASSES = 5
#: Clock difference allowed between this process and a target store's creation times.
_SLACK = timedelta(minutes=1)


@attrs.define
class CopyReport:
    """What a copy did (counts), and the dialogues it had to leave alone."""

    dialogues_created: int = 0
    dialogues_extended: int = 0
    dialogues_unchanged: int = 0
    messages: int = 0
    jobs: int = 0
    jobs_unchanged: int = 0
    usage: int = 0
    conflicts: list[str] = attrs.field(factory=list)


def _dialogue_ids(source: Any) -> list[str]:
    """Every dialogue id of ``source``, taken first.

    Listings are ordered by last activity, so a dialogue that gets a message while the pages
    are read moves to the first page, maybe after it was read: the listing is read again, up
    to :data:`_PASSES` times in all, until a whole pass finds no id not seen before.
    """
    seen: dict[str, None] = {}
    for _ in range(_PASSES):
        before = len(seen)
        offset: int | None = 0
        while offset is not None:
            page = source.list_dialogues(limit=_PAGE, offset=offset)
            seen.update(dict.fromkeys(info.id for info in page.items))
            offset = page.next_offset
        if len(seen) == before:
            break
    return list(seen)


class _Journal:
    """Source id -> target id, for targets that choose their own ids."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ids: dict[str, str] = {}
        #: Source ids whose target was being created when a run stopped: since when.
        self.pending: dict[str, datetime] = {}
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        except OSError as exc:
            raise StorageError(f"cannot read the copy journal: {exc}", path=str(path)) from exc
        for line in lines:
            try:
                entry = json.loads(line)
                if "pending" in entry:
                    self.pending[entry["source"]] = datetime.fromisoformat(entry["pending"])
                else:
                    self.ids[entry["source"]] = entry["target"]
                    self.pending.pop(entry["source"], None)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a line cut short by an interruption: that dialogue is matched anew

    def _write(self, entry: dict[str, str]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(json.dumps(entry) + "\n")
                file.flush()
                os.fsync(file.fileno())
        except OSError as exc:
            raise StorageError(
                f"cannot write the copy journal: {exc}",
                path=str(self.path),
                hint="make its directory writable, or choose another with --journal",
            ) from exc

    def begin(self, source: str) -> None:
        """Say that ``source``'s target is about to be created (before creating it)."""
        at = self.pending.get(source) or datetime.now(UTC)
        self._write({"source": source, "pending": at.isoformat()})
        self.pending[source] = at

    def add(self, source: str, target: str) -> None:
        self._write({"source": source, "target": target})
        self.ids[source] = target
        self.pending.pop(source, None)


def _orphan(target: Any, dialogue: Dialogue, since: datetime, journal: _Journal) -> str | None:
    """The empty dialogue a run that stopped before its journal line left for ``dialogue``:
    same assistant and title, created since ``since``, no message, in no journal line."""
    taken = set(journal.ids.values())
    offset: int | None = 0
    while offset is not None:
        page = target.list_dialogues(
            assistant=dialogue.assistant, since=since - _SLACK, limit=_PAGE, offset=offset
        )
        for info in page.items:
            if (
                info.id not in taken
                and info.message_count == 0
                and info.assistant == dialogue.assistant
                and info.title == dialogue.title
                and info.created_at >= since - _SLACK
            ):
                return str(info.id)
        offset = page.next_offset
    return None


def _copy_dialogue(
    source: Any, target: Any, dialogue_id: str, journal: _Journal | None, report: CopyReport
) -> None:
    dialogue: Dialogue = source.load_dialogue(dialogue_id)
    importing = implements(target, ImportsDialogues)
    target_id = dialogue_id if importing else (journal.ids.get(dialogue_id) if journal else None)
    have: tuple[Message, ...] | None = None
    if target_id is not None:
        try:
            have = target.load_dialogue(target_id).messages
        except RecordNotFoundError:
            have = None
    if have is None:
        if importing:
            target.import_dialogue(dialogue)
            report.dialogues_created += 1
            report.messages += len(dialogue.messages)
            return
        assert journal is not None
        since = journal.pending.get(dialogue_id)
        target_id = _orphan(target, dialogue, since, journal) if since is not None else None
        if target_id is None:
            journal.begin(dialogue_id)
            info = target.create_dialogue(assistant=dialogue.assistant, title=dialogue.title)
            target_id = info.id
        journal.add(dialogue_id, target_id)
        have = ()
        report.dialogues_created += 1
    elif have[: len(dialogue.messages)] == dialogue.messages:  # all there already
        report.dialogues_unchanged += 1
        return
    elif dialogue.messages[: len(have)] == have:  # copied in part: carry on
        report.dialogues_extended += 1
    else:
        report.conflicts.append(dialogue_id)
        return
    for turn in split_turns(dialogue.messages[len(have) :]):
        target.append(target_id, *turn)
        report.messages += len(turn)


def copy_store(
    source: Any,
    target: Any,
    *,
    journal: Path | None = None,
    on_dialogue: Callable[[int, int], None] | None = None,
) -> CopyReport:
    """Copy every dialogue, job record and usage record of ``source`` into ``target``.

    :param journal: where the ids of dialogues copied to a target that chooses its own ids are
        kept (needed only then).
    :param on_dialogue: called as ``on_dialogue(done, total)`` after each dialogue.
    :raises StorageError: from either store; what was copied before stays copied, and a
        second run carries on from there.
    """
    report = CopyReport()
    needs_journal = not implements(target, ImportsDialogues)
    if needs_journal and journal is None:
        raise ValueError("a target that chooses its own ids needs a journal")
    book = _Journal(journal) if needs_journal and journal is not None else None
    ids = _dialogue_ids(source)
    for done, dialogue_id in enumerate(ids, start=1):
        with contextlib.suppress(RecordNotFoundError):  # deleted from the source meanwhile
            _copy_dialogue(source, target, dialogue_id, book, report)
        if on_dialogue is not None:
            on_dialogue(done, len(ids))
    for record in source.list_jobs():
        try:
            same = target.load_job(record.job_id) == record
        except RecordNotFoundError:
            same = False
        if same:
            report.jobs_unchanged += 1
        else:
            target.save_job(record)
            report.jobs += 1
    # A source that only lists usage (read-only) is copied from too.
    if callable(getattr(source, "list_usage", None)) and implements(target, UsageStore):
        present = Counter(target.list_usage())
        for record in source.list_usage():
            usage = record
            if book is not None and record.dialogue_id in book.ids:
                usage = attrs.evolve(record, dialogue_id=book.ids[record.dialogue_id])
            if present[usage]:
                present[usage] -= 1
                continue
            target.record_usage(usage)
            report.usage += 1
    return report
