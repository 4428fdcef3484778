"""``modelport assistants import``: Assistants-API assistant definitions as modelport profiles.

The class modelport grew out of read its assistants from an ``assistants.json``: assistant
objects as the vendor's Assistants API returns them (``id``, ``name``, ``description``, ``model``,
``instructions``, ``temperature``, ``top_p``, ``response_format``, ``tools``, ...). This module
reads such a file in any of the shapes people keep it in (a list of objects, the API's
``{"object": "list", "data": [...]}``, one object, or an object of objects keyed by id), turns
each assistant into an ``[assistants.<name>]`` table, writes those tables as TOML, and adds
them to a config file atomically, refusing to replace a profile unless told to.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from ._files import write_atomic
from ._json import json_kind, reject_constant
from ._text import invalid_unicode
from .config import AssistantProfile
from .errors import InvalidInputError

__all__ = ["Imported", "add_to_config", "read_assistants", "to_toml"]

#: The API's own bookkeeping in an assistant object: left out without a note.
_BOOKKEEPING = frozenset({"object", "created_at"})
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_HEADER = re.compile(r"^\s*\[\[?\s*(?P<key>[^\]#]+?)\s*\]\]?\s*(#.*)?$")
_SHAPE_HINT = "expected assistant objects: a list of them, an object with a 'data' list, or one"


@attrs.frozen
class Imported:
    """One assistant from the file, as a profile.

    :ivar name: the profile's name (``[assistants.<name>]``).
    :ivar origin: which entry it came from, for messages (``entry 2 ('Math Tutor')``).
    :ivar table: the profile's keys, ready for TOML.
    :ivar dropped: keys of the entry that a profile cannot hold (``tools``, ...).
    :ivar assistant_id: the assistant's id in the API it came from, if it had one.
    """

    name: str
    origin: str
    table: dict[str, Any]
    dropped: tuple[str, ...] = ()
    assistant_id: str | None = None


def _fail(path: str, where: str | None, what: str, hint: str | None = None) -> InvalidInputError:
    prefix = f"{path}: {where}: " if where else f"{path}: "
    return InvalidInputError(prefix + what, hint=hint)


def _entries(path: str, data: Any) -> Iterator[tuple[str, Any, str | None]]:
    """``(where, entry, key)`` for each assistant in the file's data."""
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if isinstance(data, list):
        for index, entry in enumerate(data, 1):
            yield f"entry {index}", entry, None
    elif isinstance(data, dict) and (
        data.get("object") == "assistant" or {"model", "instructions"} & data.keys()
    ):
        yield "the assistant", data, None
    elif isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        for key, entry in data.items():
            yield f"entry {key!r}", entry, key
    else:
        raise _fail(path, None, f"{_SHAPE_HINT}, not {json_kind(data)}")


def _slug(text: str) -> str:
    return re.sub(r"[^\w]+", "-", text.strip().lower()).strip("-_")


def _field(path: str, where: str, entry: Mapping[str, Any], key: str, kinds: Any) -> Any:
    value = entry.get(key)
    if value is None:
        return None
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        wanted = " or ".join(dict.fromkeys(json_kind(k()) for k in kinds))
        raise _fail(path, where, f"{key!r} must be {wanted}, not {json_kind(value)}")
    return value


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _has_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, Mapping):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


def _one(path: str, where: str, entry: Any, key: str | None) -> Imported:
    if not isinstance(entry, dict):
        raise _fail(path, where, f"an assistant is a JSON object, not {json_kind(entry)}")
    for text in _strings(entry):
        if invalid_unicode(text, escaped_bytes=False):
            raise _fail(path, where, "holds a lone surrogate (a \\ud800-style escape), not text")
    name = _field(path, where, entry, "name", (str,))
    assistant_id = _field(path, where, entry, "id", (str,))
    description = _field(path, where, entry, "description", (str,))
    title = _field(path, where, entry, "title", (str,))
    table: dict[str, Any] = {}
    for target, value in (
        ("model", _field(path, where, entry, "model", (str,))),
        ("instructions", _field(path, where, entry, "instructions", (str,))),
        ("description", description or title),
    ):
        if value:
            table[target] = value
    options: dict[str, Any] = {}
    for option in ("temperature", "top_p"):
        value = _field(path, where, entry, option, (int, float))
        if value is not None:
            try:
                options[option] = float(value)
            except OverflowError:
                raise _fail(path, where, f"{option!r} is out of range") from None
    effort = _field(path, where, entry, "reasoning_effort", (str,))
    if effort:
        options["reasoning_effort"] = effort
    response_format = entry.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema")
        schema = schema.get("schema") if isinstance(schema, dict) else None
        if not isinstance(schema, dict):
            raise _fail(
                path, where, "'response_format' of type json_schema has no 'json_schema.schema'"
            )
        if _has_null(schema):
            raise _fail(
                path,
                where,
                "its JSON schema holds null, which a TOML config file cannot",
                hint='drop the null values (e.g. "default": null) from the schema',
            )
        options["json_schema"] = schema
    elif response_format not in (None, "auto") and not (
        isinstance(response_format, dict) and response_format.get("type") == "text"
    ):
        raise _fail(
            path,
            where,
            f"'response_format' {json.dumps(response_format)[:60]} is not supported",
            hint="modelport profiles take a JSON schema (type json_schema), or nothing",
        )
    if options:
        table["options"] = options
    handled = {"name", "id", "description", "title", "model", "instructions", "temperature"}
    handled |= {"top_p", "reasoning_effort", "response_format", *_BOOKKEEPING}
    dropped = tuple(k for k in entry if k not in handled and entry[k] not in (None, [], {}))
    profile_name = _slug(name or "") or _slug(key or "") or _slug(assistant_id or "")
    if not profile_name:
        raise _fail(path, where, "has no name (nor an id) to name the profile after")
    label = ", ".join(repr(v) for v in dict.fromkeys((name, assistant_id)) if v and v != key)
    origin = f"{where} ({label})" if label else where
    try:
        from .serialization import converter

        converter.structure(table, AssistantProfile)
    except Exception as exc:  # a value the profile refuses (an unknown reasoning effort)
        from .serialization import structure_errors

        raise _fail(path, origin, structure_errors(exc)[0]) from None
    return Imported(profile_name, origin, table, dropped, assistant_id)


def read_assistants(path: str) -> list[Imported]:
    """The assistants in the Assistants-API-style JSON file at ``path``.

    :raises InvalidInputError: naming the file (and the entry) when it cannot be read, is not
        JSON, is not shaped like assistants, or two entries would get the same name.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise _fail(path, None, f"cannot read the file ({exc.strerror or exc})") from None
    try:
        data = json.loads(raw.decode("utf-8-sig"), parse_constant=reject_constant)
    except UnicodeDecodeError as exc:
        raise _fail(path, None, f"not valid JSON: byte {exc.start + 1} is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise _fail(
            path, None, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except (RecursionError, ValueError) as exc:
        what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise _fail(path, None, f"not valid JSON: {what}") from None
    found = [_one(path, where, entry, key) for where, entry, key in _entries(path, data)]
    if not found:
        raise _fail(path, None, "holds no assistants", hint=_SHAPE_HINT)
    seen: dict[str, Imported] = {}
    for item in found:
        if item.name in seen:
            raise _fail(
                path,
                None,
                f"{seen[item.name].origin} and {item.origin} would both be "
                f"[assistants.{toml_key(item.name)}]",
                hint="give them different names in the file",
            )
        seen[item.name] = item
    return found


# --- TOML ------------------------------------------------------------------------------------


def _escape(text: str, *, multiline: bool = False) -> str:
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n" and multiline:
            out.append("\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def toml_key(key: str) -> str:
    """``key`` as a TOML key: bare when it can be, else quoted."""
    return key if _BARE_KEY.match(key) else f'"{_escape(key)}"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if "\n" in value:
            return f'"""\n{_escape(value, multiline=True)}"""'
        return f'"{_escape(value)}"'
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{toml_key(str(k))} = {_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")  # pragma: no cover


def _table(path: tuple[str, ...], table: Mapping[str, Any]) -> list[str]:
    lines = [f"[{'.'.join(toml_key(p) for p in path)}]"]
    nested = []
    for key, value in table.items():
        if isinstance(value, Mapping) and key == "options":
            nested.append((key, value))
        else:
            lines.append(f"{toml_key(key)} = {_value(value)}")
    for key, value in nested:
        lines += ["", *_table((*path, key), value)]
    return lines


def to_toml(assistants: list[Imported], *, source: str) -> str:
    """The assistants as ``[assistants.<name>]`` tables, each after a comment naming where it
    came from."""
    out: list[str] = []
    for item in assistants:
        comment = f"# imported from {source}, {item.origin}"
        comment = _escape(comment.encode("utf-8", "backslashreplace").decode("utf-8"))
        out += [comment, *_table(("assistants", item.name), item.table)]
        out.append("")
    text = "\n".join(out)
    tomllib.loads(text)  # what we write must read back
    return text


# --- adding them to a config file ------------------------------------------------------------


def _header_path(line: str) -> tuple[str, ...] | None:
    """The keys of a ``[table]`` or ``[[array]]`` header line, else ``None``."""
    if _HEADER.match(line) is None:
        return None
    try:
        return _descend(tomllib.loads(line))
    except tomllib.TOMLDecodeError:
        return None


def _descend(data: Any) -> tuple[str, ...]:
    keys: list[str] = []
    while isinstance(data, dict) and len(data) == 1:
        key, data = next(iter(data.items()))
        keys.append(key)
        if isinstance(data, list) and data:
            data = data[-1]
    return tuple(keys)


def _without(text: str, names: set[str]) -> str:
    """``text`` without the ``[assistants.<name>]`` tables (and their sub-tables) of
    ``names``."""
    kept: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        header = _header_path(line)
        if header is not None:
            skipping = len(header) >= 2 and header[0] == "assistants" and header[1] in names
        if not skipping:
            kept.append(line)
    return "".join(kept)


def add_to_config(
    path: Path, assistants: list[Imported], *, source: str, force: bool = False
) -> tuple[list[str], list[str]]:
    """Add the assistants to the config file at ``path`` (created when missing), atomically:
    the file is replaced whole, or not at all. Returns the names added and those replaced.

    :raises InvalidInputError: when a profile exists and ``force`` is off, when the file is
        not valid TOML, or when the profiles cannot be added without touching anything else.
    """
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: cannot read the config file ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(
            f"{path}: invalid TOML ({exc})", hint="fix the file first; nothing was changed"
        ) from None
    existing = data.get("assistants", {})
    if not isinstance(existing, dict):
        raise InvalidInputError(f"{path}: 'assistants' is not a table; nothing was changed")
    names = [a.name for a in assistants]
    clashes = [n for n in names if n in existing]
    if clashes and not force:
        listed = ", ".join(f"[assistants.{toml_key(n)}]" for n in clashes)
        raise InvalidInputError(
            f"{path} already defines {listed}",
            hint="pass --force to replace them; nothing was changed",
        )
    kept = _without(text, set(clashes)).rstrip("\n")
    block = to_toml(assistants, source=source)
    new_text = f"{kept}\n\n{block}" if kept.strip() else block
    expected = {**data, "assistants": {**existing, **{a.name: a.table for a in assistants}}}
    try:
        if tomllib.loads(new_text) != expected:
            raise ValueError
    except (tomllib.TOMLDecodeError, ValueError):
        raise InvalidInputError(
            f"{path}: cannot add the profiles without touching other settings (the file "
            "defines assistants with inline tables or dotted keys)",
            hint="print them (without --write) and add them by hand; nothing was changed",
        ) from None
    _replace(path, new_text)
    return [n for n in names if n not in clashes], clashes


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole (see :func:`write_atomic`), making its directory when
    it has none.

    :raises InvalidInputError: naming the file, when its directory cannot be made or the file
        cannot be written; the file is then as it was.
    """
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        found = next((p for p in (parent, *parent.parents) if os.path.lexists(p)), parent)
        if os.path.isdir(found):
            why = f"cannot make its directory {parent} ({exc.strerror or exc})"
        else:
            why = f"cannot make its directory: {found} is not a directory"
        raise InvalidInputError(
            f"{path}: {why}",
            hint="pick a config file in a directory that exists or can be made; nothing was "
            "changed",
        ) from None
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise InvalidInputError(
            f"{path}: cannot write the config file ({exc.strerror or exc})",
            hint="check the directory is writable; nothing was changed",
        ) from None
