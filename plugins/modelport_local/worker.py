"""The background trainer: ``python -m modelport_local.worker JOBDIR``.

Started by the ``local`` backend in a session of its own, so it outlives the command that
started it. It reads ``spec.json``, trains, and keeps ``status.json`` and ``events.jsonl`` up
to date; on SIGTERM it stops where it is and writes the status ``cancelled``. Any failure
is written as the status ``failed`` with its error, and its traceback goes to ``log.txt``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from types import FrameType

from ._jobs import SPEC, append_event, now, read_json, update_status

__all__ = ["main"]


class Cancelled(BaseException):
    """SIGTERM arrived: stop (a ``BaseException``, so no library's ``except Exception``
    swallows it)."""


#: Set by SIGTERM. Training checks it after every step and stops there (an exception raised
#: from a signal handler in the middle of a library's loop may be swallowed by it).
CANCELLED = threading.Event()
#: Set once training steps run: from then on, a cancel waits for the step to end.
TRAINING = threading.Event()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    CANCELLED.set()
    if not TRAINING.is_set():  # loading the model: stop right here
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough while we write the status
        raise Cancelled


def _peak_rss_mb() -> float:
    """This process's peak resident memory, in MiB (Linux reports KiB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m modelport_local.worker JOBDIR", file=sys.stderr)
        return 2
    jobdir = Path(args[0]).absolute()
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        spec = read_json(jobdir / SPEC)
        if not spec:
            raise RuntimeError(f"{jobdir / SPEC} is missing: not a job directory")
        update_status(jobdir, status="running", started_at=now())
        append_event(jobdir, "the trainer started", pid=os.getpid())

        def report(message: str) -> None:
            print(message, flush=True)
            append_event(jobdir, message)

        from ._train import apply_environment, train

        apply_environment()
        files = train(jobdir, spec, report, cancelled=CANCELLED.is_set, started=TRAINING.set)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # done: a late cancel changes nothing
        if CANCELLED.is_set():  # training stopped at the step the cancel arrived in
            raise Cancelled
        update_status(
            jobdir,
            status="succeeded",
            finished_at=now(),
            adapter=files["adapter"],
            artifacts=files,
            seconds_left=0,
            peak_rss_mb=_peak_rss_mb(),
        )
        append_event(jobdir, f"succeeded: the adapter is in {files['adapter']}")
        return 0
    except Cancelled:
        print("Cancelled: SIGTERM received; the job stops", flush=True)
        update_status(jobdir, status="cancelled", finished_at=now())
        append_event(jobdir, "cancelled", level="warning")
        return 0
    except BaseException as exc:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        traceback.print_exc()
        sys.stderr.flush()
        error = f"{type(exc).__name__}: {exc}"
        update_status(jobdir, status="failed", finished_at=now(), error=error)
        append_event(jobdir, f"failed: {error}", level="error")
        return 1


if __name__ == "__main__":
    sys.exit(main())
