"""Fuzzing stored records: a dialogue file holding any mix of good turns, old single-message
records and generated lines (arbitrary JSON, deep nesting, huge numbers, escaped lone
surrogates, invalid UTF-8, line separators inside strings, a torn or newline-less last line)
either loads, or fails with a ``CorruptRecordError`` naming the file and the right line; a
listing never fails; never another exception, whole or from its end (``last=``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import given

from modelport import Message, Usage
from modelport.errors import CorruptRecordError
from modelport.serialization import dumps_messages
from modelport_jsonfile import JsonFileStore
from tests.support import FUZZ

_text = st.text(
    st.characters(exclude_categories=("Cs",))
    | st.sampled_from(["\u2028", "\x85", "\x00", "\ufeff", '"', "\\", "😀"]),
    max_size=40,
) | st.just('a text that says "role": to the message counter')
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def _good(draw: st.DrawFn) -> bytes:
    question = Message("user", draw(_text) or "q")
    answer = Message("assistant", draw(_text), model="m", usage=Usage(1, 2))
    messages = [question, answer] if draw(st.booleans()) else [question]
    return dumps_messages(messages).encode()


_bad = st.one_of(
    _json.map(lambda value: json.dumps(value, ensure_ascii=False).encode()),
    _json.map(lambda value: json.dumps({"schema": "turn/1", "messages": value}).encode()),
    _json.map(
        lambda value: json.dumps({"schema": "message/1", "role": "user", "parts": value}).encode()
    ),
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.just(b'{"schema":"message/1","role":"user","parts":[{"type":"text","text":"\\udc80"}]}'),
    st.binary(max_size=30).filter(lambda raw: b"\n" not in raw),
    st.just(b'{"schema":"message/1","role":"user","parts":[{"type":"text","text":"caf\xe9"}]}'),
    st.just(b'{"schema":"message/99","role":"user","parts":[]}'),
)


@FUZZ
@given(
    lines=st.lists(st.tuples(st.booleans(), _good(), _bad), max_size=8),
    tail=st.sampled_from(["newline", "none", "torn"]),
    last=st.one_of(st.none(), st.integers(0, 20)),
)
def test_any_dialogue_file_loads_or_names_its_bad_line(
    lines: list[tuple[bool, bytes, bytes]], tail: str, last: int | None
) -> None:
    root = Path(tempfile.mkdtemp())
    try:
        store = JsonFileStore(root)
        info = store.create_dialogue(assistant="a")
        path = root / "dialogues" / f"{info.id}.jsonl"
        chosen = [good if ok else bad for ok, good, bad in lines]
        data = path.read_bytes() + b"\n".join(chosen)
        if chosen and tail == "newline":
            data += b"\n"
        elif tail == "torn":
            data += (b"\n" if chosen else b"") + b'{"schema":"turn/1","messa'
        path.write_bytes(data)
        bad_lines = _expected_bad(chosen, tail, last)
        error: CorruptRecordError | None = None
        try:
            loaded = store.load_dialogue(info.id, last=last)
        except CorruptRecordError as exc:
            error = exc
        if error is not None:
            assert bad_lines, f"a good file was refused: {error}"
            assert error.path == str(path)
            assert error.line in bad_lines, (error.line, bad_lines)
            assert "\n" not in str(error)
        else:
            assert not bad_lines, f"bad lines {bad_lines} loaded"
            assert loaded.assistant == "a"
            if last is not None:
                assert len(loaded.messages) <= last
        page = store.list_dialogues()  # a damaged dialogue is skipped, never an error
        assert page.total in (0, 1)
    finally:
        shutil.rmtree(root)


def _expected_bad(chosen: list[bytes], tail: str, last: int | None) -> list[int]:
    """The file lines (the header is line 1) that a load of ``last`` messages must refuse:
    the bad lines it reads. Reading from the end stops once it has ``last`` messages."""
    records: list[tuple[int, int | None]] = []  # (line, messages in it; None: bad)
    for number, raw in enumerate(chosen, start=2):
        is_last = number == len(chosen) + 1
        if is_last and tail == "none" and not _valid(raw):
            continue  # an unterminated last line that is not a record: ignored as torn
        records.append((number, _count(raw)))
    if last is None:
        return [line for line, count in records if count is None]
    found, bad = 0, []
    for line, count in reversed(records):
        if found >= last:
            break
        if count is None:
            bad.append(line)
            break
        found += count
    return bad


def _valid(raw: bytes) -> bool:
    return _count(raw) is not None


def _count(raw: bytes) -> int | None:
    from modelport.serialization import loads_messages

    if not raw.strip():
        return 0
    try:
        return len(loads_messages(raw))
    except CorruptRecordError:
        return None
