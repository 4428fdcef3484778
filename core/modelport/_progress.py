"""The live displays of the CLI's training commands: uploads, and a job being waited for.

Status changes and job events are printed as lines on stderr. On a terminal, one more line
at the bottom is redrawn twice a second: the status, the time elapsed and the countdown to
the next poll; elsewhere (a pipe, a log file) nothing is redrawn. An upload is one line,
redrawn with the bytes sent on a terminal, and a line when it is done.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO

import click

from .types import JobEvent, TrainingJob, UploadProgress

_SPINNER = "|/-\\"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class JobProgress:
    """Callbacks for :meth:`modelport.Hub.wait_job`, drawing on ``stream``.

    Use as a context manager: leaving it stops the redrawing and clears the line.
    """

    def __init__(self, job_id: str, stream: TextIO, *, live: bool | None = None) -> None:
        self.job_id = job_id
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self.started = time.monotonic()
        self._status = "waiting"
        self._detail: str | None = None
        self._next_poll: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drawn = False

    def __enter__(self) -> JobProgress:
        if self.live:
            self._thread = threading.Thread(target=self._redraw, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._clear()

    def elapsed(self) -> str:
        return _duration(time.monotonic() - self.started)

    # --- the callbacks ------------------------------------------------------------------------

    def on_update(self, job: TrainingJob) -> None:
        self._status = job.status.value
        model = f" -> {job.outcome}" if job.outcome else ""
        self._line(f"[{self.elapsed():>7}] {job.id} {job.status.value}{model}")
        if job.error:
            self._line(f"[{self.elapsed():>7}] error: {job.error}")

    def on_event(self, event: JobEvent) -> None:
        stamp = event.created_at.astimezone().strftime("%H:%M:%S")
        level = "" if event.level == "info" else f"{event.level}: "
        self._line(f"          {stamp} {level}{event.message}")

    def on_poll(self, job: TrainingJob, delay_s: float) -> None:
        with self._lock:
            self._status = job.status.value
            self._detail = job.progress()  # step, loss, time left, when the backend says
            self._next_poll = time.monotonic() + delay_s
            self._draw()

    # --- drawing ------------------------------------------------------------------------------

    def _line(self, text: str) -> None:
        with self._lock:
            self._clear()
            click.echo(text, file=self.stream)
            self._draw()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False

    def _draw(self, tick: int = 0) -> None:
        if not self.live or self._stop.is_set():
            return
        until = ""
        if self._next_poll is not None:
            until = f", next check in {_duration(max(self._next_poll - time.monotonic(), 0))}"
        detail = f" ({self._detail})" if self._detail else ""
        self.stream.write(
            f"\r\x1b[2K{_SPINNER[tick % 4]} {self._status}{detail}, {self.elapsed()} elapsed"
            f"{until}"
            " (Ctrl-C stops waiting; the job keeps running)"
        )
        self.stream.flush()
        self._drawn = True

    def _redraw(self) -> None:
        tick = 0
        while not self._stop.wait(0.5):
            tick += 1
            with self._lock:
                self._draw(tick)


def _size(count: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


class UploadDisplay:
    """The ``on_progress`` callback of :meth:`modelport.Hub.train`, drawing on ``stream``;
    it remembers the uploaded files' ids (for a message when the user interrupts).

    :param last: the file uploaded last (``"training"``, or ``"validation"`` when there is
        one): once it is uploaded, the job is being started.
    :param quiet: draw nothing, only remember (for ``--json``).
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        last: str = "training",
        live: bool | None = None,
        quiet: bool = False,
    ) -> None:
        self.stream = stream
        self.last = last
        self.live = stream.isatty() if live is None else live
        self.quiet = quiet
        self.files: list[str] = []
        self.uploading = False
        self.starting = False
        self._percent: int | None = None
        self._drawn = False

    def __enter__(self) -> UploadDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self._clear()

    def __call__(self, event: UploadProgress) -> None:
        self.uploading = not event.done
        if event.done:
            assert event.file_id is not None
            self.files.append(event.file_id)
            self.starting = event.file == self.last
            size = f" ({_size(event.total)})" if event.total else ""
            self._line(f"uploaded the {event.file} data{size}: {event.file_id}")
            if self.starting:
                self._line("starting the job")
        elif event.total is None:
            self._percent = None
            self._line(f"uploading the {event.file} data")
        elif self.live and not self.quiet:
            percent = event.sent * 100 // event.total if event.total else 100
            if percent != self._percent:  # at most 101 redraws, however big the file
                self._percent = percent
                self.stream.write(
                    f"\r\x1b[2K  {_size(event.sent)} of {_size(event.total)} ({percent}%)"
                    " (Ctrl-C stops the upload; no job is started)"
                )
                self.stream.flush()
                self._drawn = True

    def _line(self, text: str) -> None:
        if not self.quiet:
            self._clear()
            click.echo(text, file=self.stream)

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False
