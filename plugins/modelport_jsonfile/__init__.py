"""modelport's JSON-file storage plugin: dialogues and training-job records as files a person
can read and ``jq`` can query, under one root directory.

* ``dialogues/<id>.jsonl``: a ``dialogue/1`` header line, then one ``turn/1`` line per turn (a
  question and its reply, written together; files from before turns were records hold
  ``message/1`` lines and still load). Appending writes one line (O(1), whatever the length).
* ``jobs/<job id>.json``: one ``job/1`` record per training job, replaced atomically.

Writers hold an ``flock`` on the dialogue's file (threads and processes alike), so records
never interleave and a turn is whole or absent. Readers take no lock and write nothing. A
process killed mid-write can leave at most a torn last line: readers ignore it, and the next
append moves it to ``damaged/`` with a warning, keeping every earlier record. Any other damage
is an error naming the file and line when that dialogue or job is loaded; listings log it and
skip the damaged record. Every failure of the disk is a ``StorageError`` naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from modelport import BackendContext, BackendRegistry, EffectiveSetting, hookimpl

if TYPE_CHECKING:
    from ._store import JsonFileStore

__all__ = ["JsonFileSettings", "JsonFileStore", "modelport_register_backends"]


@attrs.frozen(kw_only=True)
class JsonFileSettings:
    """The keys of ``[backends.jsonfile]``.

    :ivar root: the directory holding the files (``~`` is expanded). Default: ``store`` in
        the user data directory (``~/.local/share/modelport/store`` on Linux).
    :ivar fsync: flush every write to disk before returning. Records already survive a killed
        process without it; turn it on to survive a power cut too, at some cost per write.
    :ivar lock_timeout_s: how long to wait for another writer before giving up.
    """

    root: str | None = None
    fsync: bool = False
    lock_timeout_s: float = 30.0

    def effective(self, backend: str, env: Mapping[str, str]) -> dict[str, EffectiveSetting]:
        """The settings in effect (``modelport config show``): the store's real root."""
        from ._store import default_root

        if self.root:
            root = EffectiveSetting(str(Path(self.root).expanduser().absolute()))
        else:
            root = EffectiveSetting(str(default_root()), "default")
        return {
            "root": root,
            "fsync": EffectiveSetting(self.fsync),
            "lock_timeout_s": EffectiveSetting(self.lock_timeout_s),
        }


def _build(context: BackendContext[JsonFileSettings]) -> JsonFileStore:
    from ._store import JsonFileStore

    return JsonFileStore.from_settings(context.settings)


@hookimpl
def modelport_register_backends(registry: BackendRegistry) -> None:
    """Offer ``jsonfile``, the default store."""
    registry.add(
        "jsonfile",
        _build,
        capabilities=["storage"],
        settings=JsonFileSettings,
        default_for=["storage"],
        description="dialogues and job records as JSON-lines files",
    )


def __getattr__(name: str) -> object:
    if name == "JsonFileStore":
        from ._store import JsonFileStore

        return JsonFileStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
