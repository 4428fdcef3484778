"""The live display of a training job while the CLI waits for it.

Status changes and job events are printed as lines on stderr. On a terminal, one more line
at the bottom is redrawn twice a second: the status, the time elapsed and the countdown to
the next poll; elsewhere (a pipe, a log file) nothing is redrawn.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO

import click

from .types import JobEvent, TrainingJob

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
        model = f" -> {job.fine_tuned_model}" if job.fine_tuned_model else ""
        self._line(f"[{self.elapsed():>7}] {job.id} {job.status.value}{model}")
        if job.error:
            self._line(f"[{self.elapsed():>7}] error: {job.error}")

    def on_event(self, event: JobEvent) -> None:
        stamp = event.created_at.astimezone().strftime("%H:%M:%S")
        level = "" if event.level == "info" else f"{event.level}: "
        self._line(f"          {stamp} {level}{event.message}")

    def on_poll(self, job: TrainingJob, delay_s: float) -> None:
        with self._lock:
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
        self.stream.write(
            f"\r\x1b[2K{_SPINNER[tick % 4]} {self._status}, {self.elapsed()} elapsed{until}"
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
