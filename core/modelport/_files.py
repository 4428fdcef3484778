"""Replacing a file whole: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: Path, data: bytes | str, *, fsync: bool = True) -> None:
    """Write ``data`` (text as UTF-8, line ends as they are) to ``path`` through a new
    temporary file next to it, then put that file in its place with :func:`os.replace`. A file
    being replaced keeps its permissions. Whatever stops the write (an error, Ctrl-C) removes
    the temporary file and leaves ``path`` as it was.

    :param fsync: flush the data (and the rename) to disk before returning.
    :raises OSError: when the file cannot be written; callers name it and say what to do.
    :raises UnicodeEncodeError: when ``data`` is text that is not valid Unicode (nothing is
        written then).
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):  # a new file: the umask's permissions
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable, where the system allows it (not on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
