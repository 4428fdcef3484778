"""The package's small shared helpers: whole-file writes, text checks, JSON words."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from modelport._files import write_atomic
from modelport._json import json_kind, json_text, reject_constant
from modelport._text import invalid_unicode


def test_write_atomic_replaces_the_file_whole_and_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    write_atomic(target, "caf\u00e9\r\n")
    assert target.read_bytes() == "caf\u00e9\r\n".encode()  # line ends as they are
    target.chmod(0o640)
    write_atomic(target, b"new", fsync=False)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError])
def test_write_atomic_leaves_no_temporary_file_whatever_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: type[BaseException]
) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")

    def interrupted(*_args: object) -> None:
        raise stop

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(stop):
        write_atomic(target, "new")
    assert os.listdir(tmp_path) == ["out.txt"]
    assert target.read_text() == "old"


def test_write_atomic_errors_are_oserrors_and_bad_text_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "missing" / "out.txt", "x")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(tmp_path / "out.txt", "\ud800")
    assert os.listdir(tmp_path) == []


def test_invalid_unicode_names_the_first_bad_character() -> None:
    assert invalid_unicode("caf\u00e9 \U0001f600") is None
    assert invalid_unicode("ab\ud800c") == "character 3 is a lone surrogate (U+D800)"
    assert invalid_unicode("ab\udcffc") == "byte 0xff (character 3) is not UTF-8"
    assert invalid_unicode("ab\udcffc", escaped_bytes=False) == (
        "character 3 is a lone surrogate (U+DCFF)"
    )


def test_json_helpers() -> None:
    with pytest.raises(ValueError, match=r"^-Infinity is not a JSON value$"):
        json.loads("[-Infinity]", parse_constant=reject_constant)
    kinds = [json_kind(v) for v in ({}, [], "", 1, 1.5, True, None, b"")]
    assert kinds == [
        "an object", "an array", "a string", "a number", "a number", "a boolean", "null", "bytes"
    ]  # fmt: skip


def test_json_text_is_text_as_it_is_unless_it_cannot_be_written() -> None:
    assert json_text({"a": "caf\u00e9\u2028"}) == '{"a": "caf\u00e9\u2028"}'
    assert json_text(["caf\u00e9", "\ud800"], indent=1) == '[\n "caf\\u00e9",\n "\\ud800"\n]'
