"""The job directory, shared by the backend (in the CLI's process) and the worker.

Nothing here imports the training stack. Every file that is replaced is written to a temporary
file first and renamed over the old one, so a reader sees the old or the new one whole;
``events.jsonl`` is only appended to, one line per ``write``, and a torn last line (a worker
killed mid-write) is skipped by readers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "ACTIVE",
    "EVENTS",
    "LOG",
    "PID",
    "SPEC",
    "STATUS",
    "WORKER_MODULE",
    "alive",
    "append_event",
    "last_error",
    "now",
    "read_events",
    "read_json",
    "terminate",
    "update_status",
    "valid_id",
    "write_json",
    "write_text_atomic",
]

SPEC = "spec.json"
STATUS = "status.json"
EVENTS = "events.jsonl"
LOG = "log.txt"
PID = "pid"
#: Statuses a job has while its worker should be alive.
ACTIVE = frozenset({"queued", "validating", "running"})
#: The module the worker runs as (``python -m``); a live process with another command line
#: under the recorded pid is not this job's worker (the pid was reused).
WORKER_MODULE = "modelport_local.worker"

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ERROR_LINE = re.compile(r"(Error|Exception|error:|Killed|Traceback|Cancelled)")


def now() -> str:
    """The current time, ISO 8601 in UTC with microseconds."""
    return datetime.now(UTC).isoformat()


def valid_id(value: str) -> bool:
    """Whether ``value`` can name a job or a file (no path separators, no ``..``)."""
    return bool(_ID.match(value)) and ".." not in value


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (``{}`` when the file is missing)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    data = json.loads(text)
    return data if isinstance(data, dict) else {}


def update_status(jobdir: Path, **changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into ``status.json`` (written atomically); return the new status."""
    status = read_json(jobdir / STATUS)
    status.update(changes)
    write_json(jobdir / STATUS, status)
    return status


def append_event(jobdir: Path, message: str, level: str = "info", **data: Any) -> None:
    """Append one event (one line, one ``write``) to ``events.jsonl``."""
    line = json.dumps({"at": now(), "level": level, "message": message, **data})
    fd = os.open(jobdir / EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def read_events(jobdir: Path) -> Iterator[dict[str, Any]]:
    """The events, oldest first; lines that do not parse (a torn last line) are skipped."""
    try:
        text = (jobdir / EVENTS).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("message"), str):
            yield event


def alive(pid: int, jobdir: Path) -> bool:
    """Whether ``pid`` is this job's worker and still running (a zombie is not running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not ours
        return False
    proc = Path("/proc") / str(pid)
    if not proc.is_dir():  # no procfs (macOS): the signal check is all there is
        return True
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[:1]
    if state in (["Z"], ["X"]):
        return False
    args = [part.decode("utf-8", "replace") for part in cmdline]
    return WORKER_MODULE in args and str(jobdir) in args


def terminate(pid: int, sig: signal.Signals = signal.SIGTERM) -> None:
    """Send ``sig`` to the worker's process group (the worker leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def last_error(jobdir: Path, *, tail: int = 65536) -> str | None:
    """The last line of the log that looks like an error (else its last line), or ``None``."""
    try:
        with open(jobdir / LOG, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - tail))
            text = log.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if _ERROR_LINE.search(line) and not line.startswith(("Traceback", "warnings.warn")):
            return line
    return lines[-1] if lines else None
