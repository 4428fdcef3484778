"""Fuzzing every text the command line takes: any text gives a result or a clean error.

Prompts for ``ask`` (with and without ``--stream`` and ``--json``) and ``sentiment``,
``--assistant``, ``--dialogue``, ``dialogues show ID``, ``jobs show ID``, ``describe --prompt``
and the contents of a ``--schema`` file, drawn from all of Unicode: lone surrogates (how
Python hands over argv bytes that are not UTF-8), NUL, line and paragraph separators, other
control characters, and very long text. The property: exit code 0, or exit code 1 with one
line on stderr starting ``error:``; never a traceback. Derandomized, so a failure is the same
on every run; the CLI runs in-process over the fakes, so the lot takes seconds.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from click.testing import CliRunner, Result
from hypothesis import event, given

from modelport.cli import CliState, cli
from modelport.testing import TINY_PNG, FakeBackends, make_test_hub
from tests.support import FUZZ

#: Any code point, lone surrogates included (the default leaves them out).
ANY = st.characters(exclude_categories=())
#: argv bytes that are not UTF-8 reach Python as U+DC80..U+DCFF; other surrogates only from
#: a host passing a str.
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())
ODD = st.sampled_from(
    "\x00\n\r\t\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\ufeff\u200b\u202e\x7f\x1b -\"'\\{}[]#="
)
CHARS = st.one_of(ANY, ANY, SURROGATES, ODD)
SPECIAL = st.sampled_from(
    ["", " ", "-", "--", "--help", "-h", "--json", "-x", "\x00", "\u2028", "\udcff", "\ud800",
     "support", "caf\udce9", "a\x00b", "\r\n", "\t", "null", "{}", "[]", "None"]
)  # fmt: skip
#: Short text, the special cases, mixes of both, and very long text.
TEXTS = st.one_of(
    st.text(CHARS, max_size=40),
    SPECIAL,
    st.lists(st.one_of(SPECIAL, st.text(CHARS, max_size=4)), min_size=2, max_size=6).map("".join),
    st.builds(
        lambda piece, times: piece * times,
        st.text(CHARS, min_size=1, max_size=3),
        st.integers(1_000, 20_000),
    ),
)


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@functools.cache
def _invoke() -> Callable[..., Result]:
    """One CLI over one hub on the fakes, kept for every example (no setup per example)."""
    hub = make_test_hub(
        FakeBackends(), overrides={"assistants": {"support": {"instructions": "Be kind."}}}
    )

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), obj=CliState(make_hub=lambda _s: hub))

    return invoke


@functools.cache
def _files() -> Path:
    root = Path(tempfile.mkdtemp(prefix="modelport-fuzz-cli-"))
    (root / "a.png").write_bytes(TINY_PNG)
    return root


def check(result: Result) -> Result:
    """Exit 0, or exit 1 with one line on stderr; never a traceback nor another exception."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1), (result.exit_code, result.output)
    if result.exit_code == 1:
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ")
        event(f"error: {lines[0][7:].split(':')[0].split(' ')[0][:20]}")
    else:
        event("ok")
    return result


def asked(text: str) -> bool:
    """Whether ``ask`` should take ``text`` (valid text, not blank, not '-' for stdin)."""
    return _is_text(text) and bool(text.strip()) and text != "-"


@FUZZ
@given(text=TEXTS, stream=st.booleans(), as_json=st.booleans())
def test_ask_takes_any_question(text: str, stream: bool, as_json: bool) -> None:
    flags = [*(["--stream"] if stream else []), *(["--json"] if as_json else [])]
    result = check(_invoke()("ask", *flags, "--", text))
    assert (result.exit_code == 0) == asked(text)
    if result.exit_code == 0 and as_json:
        assert json.loads(result.stdout)["reply"]["text"] == f"echo: {text}"
    elif result.exit_code == 0:
        assert result.stdout_bytes == f"echo: {text}\n".encode()


@FUZZ
@given(text=TEXTS, as_json=st.booleans())
def test_sentiment_takes_any_text(text: str, as_json: bool) -> None:
    result = check(_invoke()("sentiment", *(["--json"] if as_json else []), "--", text))
    assert (result.exit_code == 0) == _is_text(text)  # "-" reads the (empty) stdin


@FUZZ
@given(name=TEXTS)
def test_ask_takes_any_assistant_name(name: str) -> None:
    result = check(_invoke()("ask", f"--assistant={name}", "--", "hi"))
    assert (result.exit_code == 0) == (name in ("", "support"))


@FUZZ
@given(dialogue=TEXTS)
def test_ask_takes_any_dialogue_id(dialogue: str) -> None:
    result = check(_invoke()("ask", f"--dialogue={dialogue}", "--", "hi"))
    assert result.exit_code == 1  # no such dialogue, or not text


@FUZZ
@given(dialogue=TEXTS, as_json=st.booleans())
def test_dialogues_show_takes_any_id(dialogue: str, as_json: bool) -> None:
    flags = ["--json"] if as_json else []
    assert check(_invoke()("dialogues", "show", *flags, "--", dialogue)).exit_code == 1


@FUZZ
@given(job=TEXTS, as_json=st.booleans())
def test_jobs_show_takes_any_id(job: str, as_json: bool) -> None:
    flags = ["--json"] if as_json else []
    assert check(_invoke()("jobs", "show", *flags, "--", job)).exit_code == 1


@FUZZ
@given(prompt=TEXTS, as_json=st.booleans())
def test_describe_takes_any_prompt(prompt: str, as_json: bool) -> None:
    image = str(_files() / "a.png")
    flags = ["--json"] if as_json else []
    result = check(_invoke()("describe", image, f"--prompt={prompt}", *flags))
    assert (result.exit_code == 0) == _is_text(prompt)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(CHARS, max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(CHARS, max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def _encoded(text: str, encoding: str) -> bytes:
    return text.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace")


SCHEMAS = st.one_of(
    st.binary(max_size=200),
    st.builds(_encoded, TEXTS, st.sampled_from(["utf-8", "utf-16", "latin-1", "utf-8-sig"])),
    st.builds(
        lambda value, ascii_only: json.dumps(value, ensure_ascii=ascii_only).encode(
            "utf-8", "surrogatepass"
        ),
        JSON_VALUES,
        st.booleans(),
    ),
    st.builds(
        lambda text, n: (("[" * n) + text).encode("utf-8", "surrogatepass"),
        TEXTS,
        st.integers(0, 200_000),
    ),
)


def _is_schema(content: bytes) -> bool:
    try:
        data: Any = json.loads(content.decode("utf-8-sig"), parse_constant=float)
    except (ValueError, RecursionError):
        return False
    return isinstance(data, dict) and "NaN" not in content.decode() and b"Infinity" not in content


@FUZZ
@given(content=SCHEMAS)
def test_describe_takes_any_schema_file(content: bytes) -> None:
    schema = _files() / "schema.json"
    schema.write_bytes(content)
    result = check(_invoke()("describe", str(_files() / "a.png"), "--schema", str(schema)))
    if _is_schema(content):
        assert result.exit_code == 0
