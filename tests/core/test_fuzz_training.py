"""Fuzzing the training-data loaders: any file gives a dataset or a ``TrainingDataError`` whose
every problem names the file and the right line; never another exception.

JSONL files are built line by line from valid examples, arbitrary JSON (huge numbers, NaN,
deep nesting, lone surrogates as escapes), and text that is not JSON, with every Unicode line
separator JSON strings may hold as they are (U+2028, U+0085, form feed, ...). An independent
oracle in this file says which lines are bad; the loader must report exactly those. CSV files
are written by :mod:`csv` from rows of arbitrary text (quotes, NUL, CR, fields over 128 KiB)
with the line of each record counted as they are written. Directories hold random trees of
such files. All derandomized, so a failure is the same on every run.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from modelport import Dialogue, ImagePart, Message, Sentiment, SentimentLabel, TextPart
from modelport.errors import ConfigError, TrainingDataError
from modelport.testing import TINY_PNG
from modelport.training import (
    Tokenizer,
    check_dataset,
    dataset_from_dialogues,
    dataset_to_jsonl,
    load_csv,
    load_dataset,
    load_jsonl,
)
from modelport.types import Image, utcnow
from tests.support import FUZZ

ROLES = ("system", "user", "assistant")
#: Characters a JSON string may hold unescaped that str.splitlines() breaks at, and others that
#: trip readers: NUL, a BOM, CR, quotes, commas, backslashes.
AWKWARD = ["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\0", "\ufeff",
           "\r", '"', ",", "\\", "\t", " ", "\u00a0", "😀"]  # fmt: skip
NONE = Tokenizer("none", lambda _: 0)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """One directory for the module's examples (hypothesis runs many per test)."""
    path = Path(tempfile.mkdtemp(prefix="fuzz-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@functools.cache
def text(*, newlines: bool = False, surrogates: bool = False) -> st.SearchStrategy[str]:
    """Any Unicode text, heavy on the awkward characters; lone surrogates on request."""
    extra = AWKWARD + (["\n"] if newlines else []) + (["\ud800", "\udfff"] if surrogates else [])
    alphabet = st.one_of(
        st.characters(exclude_characters="\n", exclude_categories=["Cs"]),
        st.sampled_from(extra),
    )
    return st.text(alphabet, max_size=12)


# --- JSONL ---------------------------------------------------------------------------------


def line_of(problem: str, path: Path) -> int:
    """The line number a ``"path:line: what"`` problem names."""
    return int(problem[len(str(path)) + 1 :].split(":", maxsplit=1)[0])


def oracle(line: str) -> bool:
    """Whether one JSONL line is a valid example (independent of the loader's code)."""
    if not line.strip(" \t\r"):
        return True  # blank: skipped
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        return False
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
        return False
    for item in row["messages"]:
        if not isinstance(item, dict) or set(item) - {"role", "content", "name", "weight"}:
            return False
        role, content = item.get("role"), item.get("content")
        if not (isinstance(role, str) and role in ROLES and isinstance(content, str)):
            return False
        try:
            content.encode("utf-8")
        except UnicodeEncodeError:
            return False
        if "weight" in item:
            weight = item["weight"]
            if role != "assistant" or isinstance(weight, bool) or weight not in (0, 1):
                return False
    return True


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text(surrogates=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text(), inner, max_size=3),
    max_leaves=5,
)
messages = st.fixed_dictionaries(
    {"role": st.sampled_from(ROLES), "content": text(surrogates=True)},
    optional={"weight": st.sampled_from([0, 1, 0.0, 2, True, None]), "name": text()},
)


@st.composite
def jsonl_line(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["example", "example", "example", "value", "messages", "text",
                                 "blank", "deep", "number"]))  # fmt: skip
    ascii_only = draw(st.booleans())
    if kind == "example":
        row: Any = {"messages": draw(st.lists(messages, max_size=3))}
        if draw(st.booleans()):
            row["extra"] = draw(json_values)
    elif kind == "value":
        row = draw(json_values)
    elif kind == "messages":
        row = {"messages": draw(st.lists(json_values | messages, max_size=3))}
    elif kind == "text":
        return draw(text())
    elif kind == "blank":
        return draw(st.sampled_from(["", " ", "\t", "\r", " \r"]))
    elif kind == "deep":
        # far from the recursion limit either way, whatever the depth of the stack
        depth = draw(st.sampled_from([1, 50, 400, 5_000, 100_000]))
        opening = draw(st.sampled_from(["[", '{"a":']))
        closing = "]" if opening == "[" else "}"
        return '{"messages": [], "x": ' + opening * depth + "1" + closing * depth + "}"
    else:
        digits = draw(st.sampled_from([1, 300, 4300, 4301, 20_000]))
        return '{"messages": [], "n": ' + "9" * digits + "}"
    line = json.dumps(row, ensure_ascii=False)
    if ascii_only or re.search("[\ud800-\udfff]", line):  # raw, a surrogate is not UTF-8
        line = json.dumps(row)
    return line


@FUZZ
@given(lines=st.lists(jsonl_line(), max_size=5), crlf=st.booleans(), bom=st.booleans())
def test_jsonl_reports_exactly_the_bad_lines(
    scratch: Path, lines: list[str], crlf: bool, bom: bool
) -> None:
    path = scratch / "data.jsonl"
    ending = "\r\n" if crlf else "\n"
    path.write_bytes((("\ufeff" if bom else "") + ending.join(lines)).encode("utf-8"))
    # a BOM opening a line is dropped: by the UTF-8 decoding on line 1 (unless the file had
    # its own), by the loader on later lines (files joined with their BOMs)
    seen = [
        line[1:] if line.startswith("\ufeff") and (n > 1 or not bom) else line
        for n, line in enumerate(lines, start=1)
    ]
    bad = {n for n, line in enumerate(seen, start=1) if not oracle(line)}
    try:
        dataset = load_jsonl(path)
    except TrainingDataError as exc:
        problems = exc.problems
    else:
        problems = ()
    for problem in problems:
        assert problem.startswith(f"{path}:")
        assert "\n" not in problem
    assert {line_of(p, path) for p in problems} == bad
    assert len(problems) == len(bad)
    if bad:
        return
    assert len(dataset.examples) == sum(1 for line in seen if line.strip(" \t\r"))
    for example in dataset.examples:
        assert example.origin is not None
        number = int(example.origin.rsplit(":", 1)[1])
        assert len(json.loads(seen[number - 1])["messages"]) == len(example.messages)


# --- CSV -----------------------------------------------------------------------------------

HEADERS = [
    ["prompt", "response"],
    ["prompt", "response", "system"],
    ["system", "response", "prompt"],
    ["role", "content"],
    ["conversation", "role", "content"],
    ["question", "answer"],
    [" prompt", "response "],
]
LINE_BREAK = re.compile(r"\r\n|\r|\n")


ROLE_CELLS = st.sampled_from(["user", "assistant", "system", "User", " assistant ", "wizard", ""])
CELLS = st.one_of(text(newlines=True), ROLE_CELLS, st.just(""))


@st.composite
def csv_file(draw: st.DrawFn) -> tuple[str, list[tuple[int, list[str]]], list[str]]:
    """The file's text, ``(line, cells)`` of each record after the header, and the header."""
    header = draw(st.sampled_from(HEADERS))
    width = len(header) or 2
    rows = draw(st.lists(st.lists(CELLS, min_size=width - 1, max_size=width + 1), max_size=5))
    if rows and draw(st.integers(0, 7)) == 0:  # a field over the csv module's 128 KiB default
        row = draw(st.sampled_from(rows))
        row[draw(st.integers(0, len(row) - 1))] = (
            draw(st.sampled_from(["a", "é", '"', "\n"])) * 140_000
        )
    # csv.writer quotes a field with CR or LF only when the line terminator holds that
    # character: with "\n", quote every field, or a lone CR would break the record
    ending = draw(st.sampled_from(["\r\n", "\n"]))
    quote_all = ending == "\n" or draw(st.booleans())

    def record(cells: list[str]) -> str:
        out = io.StringIO()
        if quote_all:
            csv.writer(out, lineterminator=ending, quoting=csv.QUOTE_ALL).writerow(cells)
        else:
            csv.writer(out, lineterminator=ending).writerow(cells)
        return out.getvalue()

    content = record(header)
    line = len(LINE_BREAK.findall(content)) + 1
    records: list[tuple[int, list[str]]] = []
    for row in rows:
        records.append((line, row))
        written = record(row)
        content += written
        line += len(LINE_BREAK.findall(written))
    return content, records, header


def csv_oracle(header: list[str], records: list[tuple[int, list[str]]]) -> set[int] | None:
    """The lines of the bad records, or ``None`` when the header is what is wrong."""
    names = [h.strip() for h in header]
    pairs = {"prompt", "response"} <= set(names)
    if not pairs and not {"role", "content"} <= set(names):
        return None
    bad: set[int] = set()
    for line, cells in records:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            bad.add(line)
            continue
        row = dict(zip(names, cells, strict=True))
        if pairs:
            if not row["prompt"].strip() or not row["response"].strip():
                bad.add(line)
        elif row["role"].strip().lower() not in ROLES or not row["content"].strip():
            bad.add(line)
    return bad


@FUZZ
@given(file=csv_file())
def test_csv_reports_exactly_the_bad_records_at_their_first_line(
    scratch: Path, file: tuple[str, list[tuple[int, list[str]]], list[str]]
) -> None:
    content, records, header = file
    path = scratch / "data.csv"
    path.write_bytes(content.encode("utf-8"))
    expected = csv_oracle(header, records)
    try:
        dataset = load_csv(path)
    except TrainingDataError as exc:
        problems = exc.problems
    else:
        problems = ()
        assert all(e.origin and e.origin.startswith(f"{path}:") for e in dataset.examples)
    for problem in problems:
        assert problem.startswith(f"{path}:")
        assert "\n" not in problem
        assert "quoting" not in problem, problem  # csv.writer's output is never broken
    if expected is None:
        assert len(problems) == 1
        assert problems[0].startswith(f"{path}:1: expected columns")
    else:
        assert {line_of(p, path) for p in problems} == expected
        assert len(problems) == len(expected)


@FUZZ
@given(content=st.binary(max_size=300) | text(newlines=True).map(str.encode))
def test_any_bytes_as_csv_or_jsonl_give_data_or_a_located_error(
    scratch: Path, content: bytes
) -> None:
    lines = content.count(b"\n") + content.count(b"\r") + 1
    for name in ("any.csv", "any.jsonl"):
        path = scratch / name
        path.write_bytes(content)
        try:
            load_dataset(path)
        except TrainingDataError as exc:
            problems = exc.problems
        else:
            problems = ()
        for problem in problems:
            assert problem.startswith(f"{path}:")
            assert 1 <= line_of(problem, path) <= lines


# --- directories ---------------------------------------------------------------------------

names = st.text(
    st.characters(exclude_characters="/\0", exclude_categories=["Cs"]), min_size=1, max_size=12
).filter(lambda n: n not in (".", ".."))
suffixes = st.sampled_from([".csv", ".jsonl", ".CSV", ".Jsonl", ".txt", ".json", ""])
contents = st.one_of(
    st.just(b"prompt,response\nq,a\n"),
    st.just(b'{"messages": [{"role": "user", "content": "q"}]}\n'),
    st.binary(max_size=64),
    text(newlines=True).map(lambda t: t.encode("utf-8")),
)


@FUZZ
@given(
    tree=st.lists(
        st.tuples(st.lists(names, min_size=1, max_size=3), suffixes, contents), max_size=4
    ),
    loop=st.booleans(),
)
def test_a_directory_of_anything_gives_data_or_errors_naming_its_files(
    scratch: Path, tree: list[tuple[list[str], str, bytes]], loop: bool
) -> None:
    root = Path(tempfile.mkdtemp(dir=scratch))
    try:
        written: set[Path] = set()
        for parts, suffix, data in tree:
            path = root.joinpath(*parts[:-1], parts[-1] + suffix)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            except OSError:  # a name clashes with a directory, or is too long
                continue
            written.add(path)
        if loop and not (root / "loop").exists():
            os.symlink(root, root / "loop")
        data_files = {p for p in written if p.is_file() and p.suffix.lower() in (".csv", ".jsonl")}
        try:
            dataset = load_dataset(root)
        except TrainingDataError as exc:
            problems = exc.problems
        else:
            problems = ()
            assert data_files
            assert dataset.source == str(root)
        for problem in problems:
            if problem.startswith(f"{root}: no .csv or .jsonl files"):
                assert not data_files
            else:
                assert any(problem.startswith(f"{file}:") for file in data_files), problem
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- dialogues: what modelport builds, it reads back and passes its own check --------------


def _mood() -> st.SearchStrategy[Sentiment | None]:
    labels = st.sampled_from(list(SentimentLabel))
    return st.one_of(st.none(), labels.map(lambda label: Sentiment(label, 0)))


stored_messages = st.builds(
    lambda role, parts, mood: Message(role, parts, sentiment=mood),
    st.sampled_from(ROLES),
    st.lists(
        st.one_of(
            text(newlines=True, surrogates=True).map(TextPart),
            st.just(ImagePart(Image.from_bytes(TINY_PNG))),
        ),
        max_size=2,
    ),
    _mood(),
)
dialogues = st.lists(
    st.builds(
        lambda i, assistant, msgs: Dialogue(f"d{i}", utcnow(), msgs, assistant=assistant),
        st.integers(0, 1000),
        st.sampled_from([None, "support", "gone"]),
        st.lists(stored_messages, max_size=6),
    ),
    max_size=3,
)


def instructions(name: str | None) -> str | None:
    if name == "gone":
        raise ConfigError(f"no assistant named {name!r}")
    return {"support": "Be kind.\u2028Always.", None: None}[name]


@settings(FUZZ, max_examples=500)  # not a loader: half the examples keep the run short
@given(found=dialogues, labels=st.none() | st.sets(st.sampled_from(list(SentimentLabel))))
def test_dialogue_datasets_pass_their_own_check_and_read_back(
    scratch: Path, found: list[Dialogue], labels: set[SentimentLabel] | None
) -> None:
    dataset = dataset_from_dialogues(found, instructions=instructions, labels=labels)
    report = check_dataset(dataset, min_examples=0, tokenizer=NONE)
    assert report.problems == ()
    assert set(dataset.warnings) <= set(report.warnings)
    path = scratch / "export.jsonl"
    path.write_text(dataset_to_jsonl(dataset), encoding="utf-8")
    again = load_jsonl(path)
    assert [e.messages for e in again.examples] == [
        tuple(Message(m.role, m.text) for m in e.messages) for e in dataset.examples
    ]
    assert [e.context for e in again.examples] == [e.context for e in dataset.examples]
