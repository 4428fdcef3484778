"""JSON the way JSON is written: no ``NaN`` or ``Infinity`` read, values named by the types JSON
has, and text written as it is unless it cannot be."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from ._text import invalid_unicode

__all__ = ["json_kind", "json_text", "reject_constant"]

_KINDS = {str: "a string", list: "an array", dict: "an object", type(None): "null"}


def reject_constant(name: str) -> NoReturn:
    """For ``json.loads(..., parse_constant=reject_constant)``: Python's json reads ``NaN``,
    ``Infinity`` and ``-Infinity``, which are not JSON.

    :raises ValueError: ``"NaN is not a JSON value"``.
    """
    raise ValueError(f"{name} is not a JSON value")


def json_kind(value: Any) -> str:
    """What ``value`` is, in JSON's words and with an article: ``"an object"``, ``"an
    array"``, ``"a string"``, ``"a number"``, ``"a boolean"`` or ``"null"`` (the Python type's
    name for anything else)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return _KINDS.get(type(value), type(value).__name__)


def json_text(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON with its text as it is (``ensure_ascii=False``); or, when some string
    in it is not valid Unicode (a lone surrogate, which a server may send as ``\\ud800``),
    with ``\\u`` escapes throughout, so that the result can always be written as UTF-8."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return json.dumps(value, indent=indent) if invalid_unicode(text) else text
