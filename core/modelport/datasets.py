"""Training data files: read CSV, JSONL and directories of them; write JSONL.

* **JSONL** in the chat fine-tuning format: one ``{"messages": [{"role": ..., "content": ...},
  ...]}`` per line. An assistant message may carry ``"weight": 0`` (context only, not learnt).
  A user message's content may be a list of parts in the vision fine-tuning format (``text``
  and ``image_url`` parts, images as ``data:`` or ``https://`` URLs).
* **CSV** in one of two shapes, told apart by the header (column names are configurable with
  :class:`CsvColumns`):

  - *pairs*: ``prompt`` and ``response`` columns (and an optional ``system`` column); each row
    is one example;
  - *rows*: ``role`` and ``content`` columns; each row is one message. Rows with the same
    ``conversation`` value form one example; without that column, an example starts at each
    ``system`` row and at each ``user`` row that follows an ``assistant`` row.

* A **directory**: every ``.csv`` and ``.jsonl`` file under it, in name order.

Every problem names the file and line; all of them are reported at once, as a
:class:`~modelport.errors.TrainingDataError`. Lines end at ``\\n``, as ``wc -l`` counts
them (in CSV a lone ``\\r`` ends one too, as the csv module reads it): ``\\u2028``, ``\\x85``
or a form feed inside a JSON string is text, not a line break. Any input gives a dataset or
such an error, never another exception.
"""

from __future__ import annotations

import base64
import binascii
import csv
import errno
import io
import json
import os
import stat
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from ._json import json_text
from ._text import invalid_unicode
from .errors import ConfigError, TrainingDataError
from .types import (
    ROLES,
    Image,
    ImagePart,
    Message,
    Part,
    TextPart,
    TrainingDataset,
    TrainingExample,
)

__all__ = [
    "DATA_SUFFIXES",
    "CsvColumns",
    "dataset_to_jsonl",
    "load_csv",
    "load_dataset",
    "load_jsonl",
]

DATA_SUFFIXES = (".csv", ".jsonl")
_MESSAGE_KEYS = frozenset({"role", "content", "name", "weight"})
#: JSON's own whitespace: a JSONL line of nothing else is blank and skipped.
_JSON_SPACE = " \t\r"


@attrs.frozen(kw_only=True)
class CsvColumns:
    """The names of the CSV columns (``[training.csv]`` in the config, ``--columns`` on the CLI).

    :ivar prompt: the user's message, in a file of prompt/response pairs.
    :ivar response: the assistant's answer, in such a file.
    :ivar system: an optional system message, in such a file.
    :ivar role: the role (system, user, assistant), in a file of one message per row.
    :ivar content: the message, in such a file.
    :ivar conversation: which example a row belongs to, in such a file (optional).
    """

    prompt: str = "prompt"
    response: str = "response"
    system: str = "system"
    role: str = "role"
    content: str = "content"
    conversation: str = "conversation"

    @classmethod
    def parse(cls, text: str, base: CsvColumns | None = None) -> CsvColumns:
        """Columns from ``"prompt=question,response=answer"`` laid over ``base``.

        :raises ConfigError: on an unknown key or a missing ``=``.
        """
        fields = {f.name for f in attrs.fields(cls)}
        changes: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep or key.strip() not in fields or not value.strip():
                raise ConfigError(
                    f"bad column mapping {item!r}",
                    key="--columns",
                    hint=f"use KEY=NAME pairs, KEY one of {', '.join(sorted(fields))}",
                )
            changes[key.strip()] = value.strip()
        return attrs.evolve(base or cls(), **changes)


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise TrainingDataError(
            [f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {column})"],
            hint="save the file as UTF-8",
        ) from None


def _read(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrainingDataError([f"{path}: cannot read ({exc.strerror or exc})"]) from None
    except ValueError as exc:  # a NUL in the path
        raise TrainingDataError([f"{path}: not a usable file name ({exc})"]) from None
    return _decode(path, raw)


# --- JSONL -----------------------------------------------------------------------------------


def _jsonl_example(row: Any, where: str, problems: list[str]) -> TrainingExample | None:
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list):
        problems.append(f"{where}: expected an object with a 'messages' list")
        return None
    parsed: list[Message] = []
    context: list[int] = []
    for index, item in enumerate(messages, start=1):
        if not isinstance(item, dict):
            problems.append(f"{where}: message {index} is not an object")
            return None
        unknown = sorted(set(item) - _MESSAGE_KEYS)
        if unknown:
            problems.append(f"{where}: message {index} has unknown key(s) {', '.join(unknown)}")
            return None
        role, content = item.get("role"), item.get("content")
        if not isinstance(role, str) or role not in ROLES:
            problems.append(f"{where}: message {index} has unknown role {_short(role)}")
            return None
        parts: tuple[Part, ...] | None = None
        if isinstance(content, list) and role == "user":  # text and image_url parts
            parts = _content_parts(content, f"{where}: message {index} ({role})", problems)
            if parts is None:
                return None
            content = "\n\n".join(p.text for p in parts if isinstance(p, TextPart))
        if not isinstance(content, str):
            problems.append(
                f"{where}: message {index} ({role}) needs a string 'content'"
                + (" (a list of parts only on user messages)" if role != "user" else "")
            )
            return None
        bad_text = invalid_unicode(content, escaped_bytes=False)  # a "\\ud800" in the JSON
        if bad_text:
            problems.append(
                f"{where}: message {index} ({role}): the content is not text: {bad_text}"
            )
            return None
        weight = item.get("weight", 1)
        if (
            weight not in (0, 1)
            or isinstance(weight, bool)
            or (role != "assistant" and "weight" in item)
        ):
            problems.append(
                f"{where}: message {index}: 'weight' must be 0 or 1, on assistant messages only"
            )
            return None
        if weight == 0:
            context.append(index - 1)
        parsed.append(Message(role, parts if parts is not None else content))  # type: ignore[arg-type]  # one of ROLES
    return TrainingExample(parsed, origin=where, context=context)


def _content_parts(content: list[Any], where: str, problems: list[str]) -> tuple[Part, ...] | None:
    """The parts of a message in the vision fine-tuning format: ``{"type": "text", "text":
    ...}`` and ``{"type": "image_url", "image_url": {"url": ..., "detail": ...}}``."""
    parts: list[Part] = []
    for number, part in enumerate(content, start=1):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(TextPart(part["text"]))
            continue
        image = part.get("image_url") if kind == "image_url" else None
        url = image.get("url") if isinstance(image, dict) else None
        detail = image.get("detail", "auto") if isinstance(image, dict) else None
        if not isinstance(url, str) or detail not in ("auto", "low", "high"):
            problems.append(
                f"{where}: part {number} is neither a text part nor an image_url part "
                "with a url (and detail auto, low or high)"
            )
            return None
        try:
            picture = _url_image(url)
        except ValueError as exc:
            problems.append(f"{where}: part {number}: {exc}")
            return None
        parts.append(ImagePart(picture, detail))
    return tuple(parts)


def _url_image(url: str) -> Image:
    """An image from an ``image_url`` part: the bytes of a ``data:`` URL, else the URL."""
    if not url.startswith("data:"):
        if not url.startswith(("http://", "https://")):
            raise ValueError("an image URL must start with http://, https:// or data:")
        return Image.from_url(url)
    header, comma, body = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise ValueError("a data: URL must be base64 (data:image/png;base64,...)")
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the data: URL is not valid base64") from None
    try:
        return Image.from_bytes(data, source="data: URL")
    except Exception as exc:  # ImageError: not an image
        raise ValueError(str(exc)) from None


def _image_url(part: ImagePart) -> dict[str, Any]:
    image = part.image
    if image.url is not None:
        url = image.url
    else:
        assert image.data is not None
        media_type = image.media_type or "application/octet-stream"
        url = f"data:{media_type};base64,{base64.b64encode(image.data).decode('ascii')}"
    detail = {} if part.detail == "auto" else {"detail": part.detail}
    return {"type": "image_url", "image_url": {"url": url, **detail}}


def _content(message: Message) -> str | list[dict[str, Any]]:
    """A message's JSONL content: its text, or (with images) its parts in the vision
    fine-tuning format."""
    if not message.images:
        return message.text
    return [
        {"type": "text", "text": p.text} if isinstance(p, TextPart) else _image_url(p)
        for p in message.parts
    ]


def _short(value: Any) -> str:
    """``repr(value)``, cut short for a one-line message."""
    try:
        text = repr(value)
    except RecursionError:  # pragma: no cover - only nested values recurse, and they are cut
        text = f"a {type(value).__name__}"
    return text if len(text) <= 60 else f"{text[:57]}..."


def _json_line(content: str, where: str, problems: list[str]) -> tuple[bool, Any]:
    """``(True, value)`` for a line of JSON, else ``(False, None)`` after adding a problem."""
    try:
        return True, json.loads(content)
    except json.JSONDecodeError as exc:
        problems.append(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
    except RecursionError:
        problems.append(f"{where}: JSON nested too deeply to read (too many [ or {{ levels)")
    except ValueError as exc:  # the only other: an integer past Python's digit limit
        if "integer string conversion" in str(exc):
            limit = sys.get_int_max_str_digits()
            problems.append(f"{where}: a number too long to read (over {limit} digits)")
        else:  # pragma: no cover - json raises no other ValueError today
            problems.append(f"{where}: not readable JSON ({exc})")
    return False, None


def load_jsonl(path: str | os.PathLike[str]) -> TrainingDataset:
    """Read a chat-format JSONL file.

    Lines end at ``\\n`` (a ``\\r`` before it is fine); blank lines are skipped.

    :raises TrainingDataError: listing every bad line as ``file:line: what``.
    """
    path = Path(path)
    examples: list[TrainingExample] = []
    problems: list[str] = []
    # not str.splitlines(): it also breaks at \u2028, \x85, \x0c, ..., which JSON strings
    # may hold as they are (dataset_to_jsonl writes them so), and would misnumber every line
    for number, line in enumerate(_read(path).split("\n"), start=1):
        # a BOM opening a later line: files joined with their BOMs
        content = line[1:] if number > 1 and line.startswith("\ufeff") else line
        if not content.strip(_JSON_SPACE):
            continue
        where = f"{path}:{number}"
        parsed, row = _json_line(content, where, problems)
        if not parsed:
            continue
        example = _jsonl_example(row, where, problems)
        if example is not None:
            examples.append(example)
    if problems:
        raise TrainingDataError(problems, hint="fix these lines; nothing was uploaded")
    return TrainingDataset(examples, source=str(path))


# --- CSV -------------------------------------------------------------------------------------


def _csv_rows(path: Path, text: str, problems: list[str]) -> Iterator[tuple[int, list[str]]]:
    """``(first line, cells)`` per record; quoting errors become problems and stop the file."""
    # the csv module refuses fields over 128 KiB by default and says only "field larger than
    # field limit"; no field can be longer than the file, so allow that (the limit is global
    # to the module: only ever raise it, never lower it under another reader's feet)
    if len(text) >= csv.field_size_limit():
        csv.field_size_limit(len(text) + 1)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.append(f"{path}:{start}: broken CSV quoting ({exc})")
            return
        yield start, cells
        start = reader.line_num + 1


def load_csv(path: str | os.PathLike[str], columns: CsvColumns | None = None) -> TrainingDataset:
    """Read a CSV file of prompt/response pairs or of role/content rows (see the module).

    Blank lines before the header are skipped.

    :raises TrainingDataError: listing every bad row as ``file:line: what``.
    """
    path = Path(path)
    columns = columns or CsvColumns()
    problems: list[str] = []
    rows = _csv_rows(path, _read(path), problems)
    header_row = next((row for row in rows if any(cell.strip() for cell in row[1])), None)
    if header_row is None:
        if problems:  # the first record is already broken
            raise TrainingDataError(problems, hint="fix the quoting; nothing was uploaded")
        raise TrainingDataError([f"{path}:1: the file is empty (expected a header row)"])
    header = [h.strip() for h in header_row[1]]
    names = set(header)
    if {columns.prompt, columns.response} <= names:
        examples = list(_pairs(path, header, rows, columns, problems))
    elif {columns.role, columns.content} <= names:
        examples = list(_messages(path, header, rows, columns, problems))
    else:
        found = ", ".join(_short(h) for h in header[:10]) or "none"
        if len(header) > 10:
            found += f", ... ({len(header)} columns)"
        raise TrainingDataError(
            [
                f"{path}:{header_row[0]}: expected columns {columns.prompt!r} and "
                f"{columns.response!r}, or {columns.role!r} and {columns.content!r}; "
                f"found {found}"
            ],
            hint="rename the columns, or map them: --columns prompt=question,response=answer",
        )
    if problems:
        raise TrainingDataError(problems, hint="fix these rows; nothing was uploaded")
    return TrainingDataset(examples, source=str(path))


def _cells(
    path: Path, header: list[str], rows: Iterable[tuple[int, list[str]]], problems: list[str]
) -> Iterator[tuple[str, dict[str, str]]]:
    for line, cells in rows:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            problems.append(f"{path}:{line}: {len(cells)} cells, but the header has {len(header)}")
            continue
        yield f"{path}:{line}", dict(zip(header, cells, strict=True))


def _pairs(
    path: Path,
    header: list[str],
    rows: Iterable[tuple[int, list[str]]],
    columns: CsvColumns,
    problems: list[str],
) -> Iterator[TrainingExample]:
    for where, row in _cells(path, header, rows, problems):
        empty = [c for c in (columns.prompt, columns.response) if not row[c].strip()]
        if empty:
            problems.append(f"{where}: empty {' and '.join(map(repr, empty))}")
            continue
        system = row.get(columns.system, "").strip()
        messages = [Message("system", system)] if system else []
        messages += [
            Message("user", row[columns.prompt]),
            Message("assistant", row[columns.response]),
        ]
        yield TrainingExample(messages, origin=where)


def _messages(
    path: Path,
    header: list[str],
    rows: Iterable[tuple[int, list[str]]],
    columns: CsvColumns,
    problems: list[str],
) -> Iterator[TrainingExample]:
    grouped = columns.conversation in header
    current: list[Message] = []
    origin = ""
    key: str | None = None
    for where, row in _cells(path, header, rows, problems):
        role = row[columns.role].strip().lower()
        if role not in ROLES:
            problems.append(
                f"{where}: unknown role {row[columns.role]!r} (system, user, assistant)"
            )
            continue
        if not row[columns.content].strip():
            problems.append(f"{where}: empty {columns.content!r}")
            continue
        if grouped:
            new = row[columns.conversation] != key
            key = row[columns.conversation]
        else:
            new = role == "system" or (
                role == "user" and bool(current) and current[-1].role == "assistant"
            )
        if new and current:
            yield TrainingExample(current, origin=origin)
            current = []
        if not current:
            origin = where
        current.append(Message(role, row[columns.content]))  # type: ignore[arg-type]
    if current:
        yield TrainingExample(current, origin=origin)


# --- files and directories -------------------------------------------------------------------


def _kind(path: Path) -> str | None:
    """``"dir"``, ``"file"``, ``"other"``, or ``None`` when nothing is there; raises
    :class:`TrainingDataError` for a path that cannot be looked at."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:  # a name too long, a loop of links, no permission, ...
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise TrainingDataError([f"{path}: cannot read ({exc.strerror or exc})"]) from None
    except ValueError as exc:  # a NUL in the path
        raise TrainingDataError([f"{path}: not a usable file name ({exc})"]) from None
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


def _data_files(directory: Path) -> list[Path]:
    """Every ``.csv`` and ``.jsonl`` file under ``directory`` (links followed, loops not), in
    name order."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    problems: list[str] = []

    def walk(folder: Path) -> None:
        try:
            info = folder.stat()
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            problems.append(f"{folder}: cannot read this directory ({exc.strerror or exc})")
            return
        if (info.st_dev, info.st_ino) in seen:  # a link back up the tree
            return
        seen.add((info.st_dev, info.st_ino))
        for entry in entries:
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError:  # vanished, or a broken link: not data
                continue
            if is_dir:
                walk(Path(entry.path))
            elif is_file and Path(entry.name).suffix.lower() in DATA_SUFFIXES:
                found.append(Path(entry.path))

    walk(directory)
    if problems:
        raise TrainingDataError(problems, hint="fix the permissions; nothing was uploaded")
    return sorted(found)


def load_dataset(
    path: str | os.PathLike[str], *, columns: CsvColumns | None = None
) -> TrainingDataset:
    """A ``.csv`` or ``.jsonl`` file, or every such file under a directory, as one dataset.

    :raises TrainingDataError: listing every problem in every file.
    """
    path = Path(path)
    kind = _kind(path)
    if kind == "dir":
        files = _data_files(path)
        if not files:
            raise TrainingDataError(
                [f"{path}: no .csv or .jsonl files in this directory"],
                hint="training data is read from .csv and .jsonl files",
            )
    elif kind is None:
        raise TrainingDataError([f"{path}: no such file or directory"])
    elif kind == "other":
        raise TrainingDataError([f"{path}: not a regular file (a pipe or device, say)"])
    elif path.suffix.lower() not in DATA_SUFFIXES:
        raise TrainingDataError(
            [f"{path}: not a .csv or .jsonl file"],
            hint="training data is read from .csv and .jsonl files (or a directory of them)",
        )
    else:
        files = [path]
    examples: list[TrainingExample] = []
    problems: list[str] = []
    for file in files:
        try:
            csv_file = file.suffix.lower() == ".csv"
            dataset = load_csv(file, columns) if csv_file else load_jsonl(file)
        except TrainingDataError as exc:
            problems += exc.problems
            continue
        examples += dataset.examples
    if problems:
        raise TrainingDataError(problems, hint="fix these; nothing was uploaded")
    return TrainingDataset(examples, source=str(path))


def dataset_to_jsonl(dataset: TrainingDataset) -> str:
    """The dataset in the chat fine-tuning JSONL format (context-only assistant messages carry
    ``"weight": 0``). A message with images has a list of parts as its content, in the vision
    fine-tuning format: ``{"type": "text", ...}`` and ``{"type": "image_url", "image_url":
    {"url": "data:image/png;base64,..."}}``; :func:`load_jsonl` reads them back.

    Text is written as it is (``ensure_ascii=False``), so a line may hold ``\\u2028`` and
    the like: :func:`load_jsonl` reads it back. A line whose text is not valid Unicode (a lone
    surrogate) is written with escapes instead, so the result can always be encoded as UTF-8.
    """
    out = io.StringIO()
    for example in dataset.examples:
        context = set(example.context)
        messages: list[Mapping[str, Any]] = [
            {"role": m.role, "content": _content(m), **({"weight": 0} if i in context else {})}
            for i, m in enumerate(example.messages)
        ]
        out.write(json_text({"messages": messages}))
        out.write("\n")
    return out.getvalue()
