"""Whether text is text: the one check, and the one description, for the whole package.

A Python ``str`` may hold what no encoding can write: a lone surrogate (U+D800 to U+DFFF). It
gets there in two ways: as a byte that was not UTF-8, which Python carries as U+DC80 to U+DCFF
(``surrogateescape``: command-line arguments, environment variables, file names), or as a
``\\ud800``-style escape in JSON. Neither can go to a backend, into a file or on a terminal.
"""

from __future__ import annotations

__all__ = ["invalid_unicode"]


def invalid_unicode(text: str, *, escaped_bytes: bool = True) -> str | None:
    """``None`` when ``text`` can be written as UTF-8; else what is wrong with its first bad
    character, e.g. ``"character 3 is a lone surrogate (U+D800)"``.

    :param escaped_bytes: whether U+DC80 to U+DCFF stand for bytes that were not UTF-8 (text
        from argv, stdin or the environment), described as ``"byte 0xff (character 3) is not
        UTF-8"``. Off for text read from JSON, where such a character can only have been a
        ``\\udcff`` escape.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        position = exc.start + 1
        code = ord(text[exc.start])
        if escaped_bytes and 0xDC80 <= code <= 0xDCFF:
            return f"byte 0x{code - 0xDC00:02x} (character {position}) is not UTF-8"
        return f"character {position} is a lone surrogate (U+{code:04X})"
    return None
