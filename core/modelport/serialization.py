"""The one cattrs converter, and versioned records.

``converter`` (un)structures every value object in :mod:`modelport.types` and every backend's
settings class. Nobody builds another one: storage plugins receive this one, and the global
``cattrs`` converter is never touched.

Stored records go through :func:`dump_record` / :func:`load_record`, which add and check a
``"schema"`` key (``"<type>/<version>"``) so that files written today stay readable when a type
grows. Unknown keys are an error, never silently dropped.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import cattrs
from cattrs.preconf.json import JsonConverter, make_converter
from cattrs.strategies import configure_tagged_union

from .config import Fallback
from .errors import CorruptRecordError
from .types import (
    Dialogue,
    DialogueInfo,
    ImagePart,
    JobRecord,
    Message,
    Part,
    TextPart,
    TrainingExample,
    TrainingJob,
    Turn,
    UsageRecord,
)

__all__ = [
    "RECORD_SCHEMAS",
    "configure_converter",
    "converter",
    "dump_record",
    "dumps_messages",
    "dumps_record",
    "load_record",
    "loads_messages",
    "loads_record",
    "make_modelport_converter",
    "structure_errors",
]

T = TypeVar("T")

#: The record types a store may keep, with the schema name and current version of each.
RECORD_SCHEMAS: dict[type[Any], tuple[str, int]] = {
    Message: ("message", 1),
    Turn: ("turn", 1),
    UsageRecord: ("usage", 1),
    Dialogue: ("dialogue", 1),
    DialogueInfo: ("dialogue-info", 1),
    JobRecord: ("job", 1),
    TrainingJob: ("training-job", 1),
    TrainingExample: ("training-example", 1),
}

#: Upgrades of old records: ``(type, version) -> function(dict) -> dict`` of the next version.
MIGRATIONS: dict[tuple[type[Any], int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def configure_converter(conv: JsonConverter) -> None:
    """Teach ``conv`` modelport's types: UTC datetimes, base64 bytes, tagged message parts."""
    conv.register_unstructure_hook(bytes, lambda b: base64.b64encode(b).decode("ascii"))

    def _bytes(value: Any, _t: type) -> bytes:
        if not isinstance(value, str):
            raise TypeError("expected a base64 string")
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"invalid base64: {exc}") from None

    conv.register_structure_hook(bytes, _bytes)
    conv.register_unstructure_hook(datetime, datetime.isoformat)

    def _datetime(value: Any, _t: type) -> datetime:
        if isinstance(value, datetime):
            return value
        return datetime.fromisoformat(value)

    conv.register_structure_hook(datetime, _datetime)
    fallback = conv.gen_structure_attrs_fromdict(Fallback)

    def _fallback(value: Any, _t: type) -> Fallback:  # a backend name, or a table
        if isinstance(value, Mapping):
            return fallback(value, Fallback)
        if not isinstance(value, str) or not value:
            raise ValueError(
                f"'backend' must be a backend name, or a table with backend and model: {value!r}"
            )
        return Fallback(value)

    fallbacks = conv.get_structure_hook(tuple[Fallback, ...])

    def _fallbacks(value: Any, t: Any) -> tuple[Fallback, ...]:  # one name: a list of one
        found: tuple[Fallback, ...] = fallbacks([value] if isinstance(value, str) else value, t)
        return found

    conv.register_structure_hook(Fallback, _fallback)
    conv.register_structure_hook_func(lambda t: t == tuple[Fallback, ...], _fallbacks)
    configure_tagged_union(
        Part,
        conv,
        tag_name="type",
        tag_generator={TextPart: "text", ImagePart: "image"}.__getitem__,
    )


def make_modelport_converter() -> JsonConverter:
    """A fresh converter configured like :data:`converter` (for tests; use the shared one)."""
    conv = make_converter(forbid_extra_keys=True, omit_if_default=True)
    configure_converter(conv)
    return conv


converter: JsonConverter = make_modelport_converter()


def _format_exception(exc: BaseException, type_: type | None) -> str:
    if type(exc) is ValueError and str(exc).startswith("'"):
        return str(exc)  # an attrs validator's message: "'field' must be ...: value"
    return cattrs.v.format_exception(exc, type_)


def structure_errors(exc: Exception, path: str = "$") -> list[str]:
    """Readable ``"what @ where"`` lines for a cattrs structuring error."""
    if isinstance(exc, (cattrs.ClassValidationError, cattrs.IterableValidationError)):
        return list(cattrs.transform_error(exc, path=path, format_exception=_format_exception))
    return [f"{exc} @ {path}"]


def dump_record(obj: Any) -> dict[str, Any]:
    """``obj`` as a JSON-ready dict, with its ``"schema"`` key first."""
    name, version = RECORD_SCHEMAS[type(obj)]
    data: dict[str, Any] = converter.unstructure(obj)
    return {"schema": f"{name}/{version}", **data}


def dumps_record(obj: Any) -> str:
    """``obj`` as one line of JSON (no newlines inside), for JSON-lines files."""
    return json.dumps(dump_record(obj), ensure_ascii=False, separators=(",", ":"))


def load_record(
    data: Mapping[str, Any], cls: type[T], *, path: str | None = None, line: int | None = None
) -> T:
    """Structure a stored record, checking (and upgrading) its schema version.

    :raises CorruptRecordError: naming ``path`` and ``line``, when the record is not a ``cls``.
    """
    name, current = RECORD_SCHEMAS[cls]

    def corrupt(message: str) -> CorruptRecordError:
        return CorruptRecordError(
            message,
            path=path,
            line=line,
            hint="restore the file from a backup, or move the damaged record aside",
        )

    if not isinstance(data, Mapping):
        raise corrupt(f"expected a JSON object, found {type(data).__name__}")
    schema = data.get("schema")
    if not isinstance(schema, str) or "/" not in schema:
        raise corrupt(f"record has no valid 'schema' key (expected '{name}/{current}')")
    found_name, _, version_text = schema.partition("/")
    if found_name != name or not version_text.isdigit():
        raise corrupt(f"expected a '{name}' record, found schema {schema!r}")
    version = int(version_text)
    if version > current:
        raise corrupt(
            f"record is schema {schema!r}, newer than this modelport understands "
            f"('{name}/{current}'); upgrade modelport"
        )
    body = {k: v for k, v in data.items() if k != "schema"}
    while version < current:
        body = MIGRATIONS[(cls, version)](body)
        version += 1
    try:
        return converter.structure(body, cls)
    except Exception as exc:
        raise corrupt("; ".join(structure_errors(exc))) from exc


def loads_record(text: str, cls: type[T], *, path: str | None = None, line: int | None = None) -> T:
    """:func:`load_record` from one line (or document) of JSON text."""
    return load_record(_json(text, path, line), cls, path=path, line=line)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _json(text: str, path: str | None, line: int | None) -> Any:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        what = f"{exc.msg} at column {exc.colno}"
    except RecursionError:
        what = "nested too deeply"
    else:
        if _SURROGATE_ESCAPE.search(text) is None:
            return data
        try:  # escaped surrogates: fine in pairs, but a lone one is no text at all
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            what = "a \\u escape is half of a surrogate pair: not valid Unicode"
        else:
            return data
    raise CorruptRecordError(f"not valid JSON ({what})", path=path, line=line)


def dumps_messages(messages: Sequence[Message]) -> str:
    """Messages appended together as one line of JSON: a ``message`` record for one, a
    ``turn`` record for several (a question and its reply), so that one write keeps them all.
    """
    if len(messages) == 1:
        return dumps_record(messages[0])
    return dumps_record(Turn(messages))


def loads_messages(
    text: str | bytes, *, path: str | None = None, line: int | None = None
) -> tuple[Message, ...]:
    """The messages of one line written by :func:`dumps_messages` (a ``message`` or a ``turn``
    record).

    :raises CorruptRecordError: naming ``path`` and ``line`` when the line is not valid UTF-8,
        not JSON, or neither record.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptRecordError(
                f"not valid UTF-8 (byte {exc.start + 1})",
                path=path,
                line=line,
                hint="restore the file from a backup, or move the damaged record aside",
            ) from None
    data = _json(text, path, line)
    schema = data.get("schema") if isinstance(data, Mapping) else None
    if isinstance(schema, str) and schema.startswith("turn/"):
        return load_record(data, Turn, path=path, line=line).messages
    return (load_record(data, Message, path=path, line=line),)
