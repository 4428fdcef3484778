"""Redaction: the one place that knows what a secret looks like. Every output goes through it.

Three kinds of secret are masked with ``***``:

* **known values**: each :class:`~modelport.Secret` registers its value when it is created, and
  the settings register the values of secret-looking headers, query parameters and keys, and
  the passwords of URLs (:func:`register_secrets_in`). Any occurrence of a registered value, in
  any text, is masked; so is its URL-encoded form.
* **URLs**: the user-info (``https://user:pass@host`` becomes ``https://***@host``) and the
  values of credential-bearing query parameters (``?key=``, ``?api-key=``, ``?token=``,
  ``?sig=``, ``?code=``, ...).
* **shapes**: API-key-like strings (``sk-...``), ``Bearer``/``Basic`` credentials, and
  ``name: value`` or ``name=value`` pairs whose name looks secret.

Whether a *name* looks secret depends on what it names. A header is secret when its name
contains ``key``, ``token``, ``secret``, ``auth``, ``cookie``, ``password``, ``credential``,
``signature`` or ``session`` (``Authorization``, ``api-key``, ``x-api-key``,
``Ocp-Apim-Subscription-Key``). Any other name (a setting, a query parameter, a log event's
key) is split into words and is secret when one word is ``key``, ``token``, ``secret``,
``password``, ``authorization``, ``cookie``, ``sig`` and the like, unless its last word says
it is about the secret rather than the secret itself: ``api_key_env``, ``max_tokens_param``
and ``tokens_per_minute`` stay readable.

This module imports only the standard library, so any core module can use it (``config``
does) without an import cycle; plugins reach it through :mod:`modelport.logs`.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

__all__ = [
    "MASK",
    "is_secret_header",
    "is_secret_name",
    "redact",
    "redact_data",
    "redact_exception",
    "register_secret",
    "register_secrets_in",
]

MASK = "***"
#: Shorter values are not registered: a local server's placeholder key (often the server's own
#: name) would otherwise be masked in every message that names the backend.
MIN_SECRET_LENGTH = 8

_SECRET_WORDS = frozenset(
    {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "passphrase",
     "authorization", "auth", "cookie", "credential", "credentials", "sig", "signature",
     "bearer", "session"}
)  # fmt: skip
#: A last word that makes a name *about* a secret, not the secret (``api_key_env``).
_ABOUT_WORDS = frozenset(
    {"env", "var", "variable", "name", "names", "param", "header", "id", "file", "path",
     "url", "limit", "type", "length", "count", "prefix", "hint", "mode", "method", "scheme"}
)  # fmt: skip
_QUERY_WORDS = _SECRET_WORDS | {"code"}  # ?code= is a function key, or an OAuth grant
_HEADER_PARTS = re.compile(
    r"key|token|secret|auth|cookie|passw|credential|signature|session", re.IGNORECASE
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[^a-z0-9]+")

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>`\\]+")
_KEY_SHAPED = re.compile(r"\b(sk-[A-Za-z0-9_\-]{4})[A-Za-z0-9_\-]{12,}")
_SCHEME_CREDENTIAL = re.compile(r"\b(Bearer|Basic|Token)(\s+)[A-Za-z0-9._~+/=\-]{8,}", re.I)
_PAIR = re.compile(  # a name ending in a secret word, ":" or "=", a value
    r"(?P<name>\b(?:[A-Za-z][\w.\-]*?)?(?:"
    + "|".join(sorted(_QUERY_WORDS, key=len, reverse=True))
    + r"))(?P<sep>['\"]?\s*[:=]\s*['\"]?)"
    r"(?P<value>(?:(?:Bearer|Basic|Token)\s+)?[^\s'\"&,;)}\]]+)",
    re.IGNORECASE,
)


def _words(name: str) -> list[str]:
    return [w for w in _WORD.split(_CAMEL.sub("_", name).lower()) if w]


def is_secret_name(name: str, *, words: frozenset[str] = _SECRET_WORDS) -> bool:
    """Whether a setting, query parameter or log key named ``name`` holds a secret."""
    parts = _words(name)
    return bool(parts) and parts[-1] not in _ABOUT_WORDS and any(w in words for w in parts)


def is_secret_header(name: str) -> bool:
    """Whether an HTTP header named ``name`` carries a credential."""
    return bool(_HEADER_PARTS.search(name))


# --- known values ----------------------------------------------------------------------------


class _Known:
    """The registered secret values, and one regex matching any of them (longest first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, variants: set[str]) -> None:
        with self._lock:
            if not variants <= self._values:
                self._values |= variants
                self._pattern = None

    def pattern(self) -> re.Pattern[str] | None:
        pattern = self._pattern
        if pattern is None and self._values:
            with self._lock:
                values = sorted(self._values, key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(map(re.escape, values)))
        return pattern


_known = _Known()


def register_secret(value: str) -> None:
    """Mask ``value`` (and its URL-encoded forms) wherever it appears from now on.

    Values shorter than :data:`MIN_SECRET_LENGTH` are ignored.
    """
    value = value.strip()
    if len(value) >= MIN_SECRET_LENGTH:
        _known.add({value, quote(value, safe=""), quote_plus(value)})


# --- text ------------------------------------------------------------------------------------


def _redact_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        if eq and value and is_secret_name(unquote_plus(name), words=_QUERY_WORDS):
            value = MASK
        pairs.append(f"{name}{eq}{value}")
    return "&".join(pairs)


def _redact_url(match: re.Match[str]) -> str:
    url = match.group(0)
    scheme, sep, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        authority = f"{MASK}@{authority.rpartition('@')[2]}"
    path, qmark, query = tail.partition("?")
    if qmark:
        query, hash_, fragment = query.partition("#")
        tail = f"{path}?{_redact_query(query)}{hash_}{fragment}"
    return f"{scheme}{sep}{authority}{tail}"


#: Values that stand for a secret in a hint rather than being one: ``KEY=...``, ``$KEY``, ...
_PLACEHOLDER = re.compile(r"^(?:\.{3}|…|\$\{?\w+\}?|<[^>]*>?|\*+)\.?$")


def _redact_pair(match: re.Match[str]) -> str:
    value = match["value"]
    if (
        not is_secret_name(match["name"], words=_QUERY_WORDS)
        or value.startswith(MASK)
        or _PLACEHOLDER.match(value)
    ):
        return match.group(0)
    return f"{match['name']}{match['sep']}{MASK}"


def redact(text: str) -> str:
    """``text`` with every secret it holds masked (see the module docs)."""
    if not text:
        return text
    if (known := _known.pattern()) is not None:
        text = known.sub(MASK, text)
    text = _URL.sub(_redact_url, text)
    text = _PAIR.sub(_redact_pair, text)
    text = _SCHEME_CREDENTIAL.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)
    return _KEY_SHAPED.sub(lambda m: f"{m[1]}{MASK}", text)


# --- data ------------------------------------------------------------------------------------


def _is_headers(name: object) -> bool:
    return isinstance(name, str) and name.lower().endswith("headers")


def _secret_entry(key: object, value: object, headers: bool) -> bool:
    if not isinstance(key, str) or not value or isinstance(value, Mapping | list | tuple):
        return False
    return is_secret_header(key) if headers else is_secret_name(key)


def redact_data(value: Any, *, headers: bool = False) -> Any:
    """Plain data (JSON-like: mappings, lists, strings) with every secret masked.

    A value under a secret-looking key is replaced whole; any mapping under a key ending in
    ``headers`` is judged by header names; every string is passed through :func:`redact`.

    :param headers: ``value`` is a mapping of HTTP headers.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            k: MASK if _secret_entry(k, v, headers) else redact_data(v, headers=_is_headers(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_data(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_data(v) for v in value)
    return value


def _secrets_in(value: Any, headers: bool = False) -> Iterator[str]:
    if isinstance(value, str):
        for match in _URL.finditer(value):
            url = match.group(0)
            authority = re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0]
            if "@" in authority:
                userinfo = authority.rpartition("@")[0]
                secret = userinfo.partition(":")[2] or userinfo  # the password, or a token
                yield from (secret, unquote_plus(secret))
            for pair in url.partition("?")[2].partition("#")[0].split("&"):
                name, _, secret = pair.partition("=")
                if secret and is_secret_name(unquote_plus(name), words=_QUERY_WORDS):
                    yield from (secret, unquote_plus(secret))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if _secret_entry(k, v, headers):
                yield str(v)
            elif k == "query" and isinstance(v, Mapping):
                yield from (
                    str(s) for n, s in v.items() if s and is_secret_name(str(n), words=_QUERY_WORDS)
                )
            else:
                yield from _secrets_in(v, _is_headers(k))
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _secrets_in(v)


def register_secrets_in(data: Any) -> None:
    """Register the secrets found in settings-like data: values under secret-looking keys and
    headers, secret query parameters (in a ``query`` mapping or in a URL), URL passwords."""
    for secret in _secrets_in(data):
        register_secret(secret)


# --- exceptions ------------------------------------------------------------------------------

_OBJECT_ATTRS = frozenset({"request", "_request", "response"})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__]
        if isinstance(current, BaseExceptionGroup):
            todo += current.exceptions


def _scrub(items: Iterable[tuple[str, Any]], exc: BaseException) -> None:
    for name, value in items:
        if name in _OBJECT_ATTRS or not isinstance(value, str | Mapping | list | tuple):
            continue
        clean = redact_data(value)
        if clean != value:
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, name, clean)


def redact_exception(exc: BaseException) -> BaseException:
    """Mask secrets, in place, in ``exc`` and every exception chained to it (``__cause__``,
    ``__context__``): their ``args`` and their text and data attributes (a vendor error's
    ``message`` and ``body``, say). Returns ``exc``.

    Use it on a vendor's exception before chaining it (``raise ours from theirs``): servers
    echo what they were sent, credentials included.
    """
    for item in _chain(exc):
        args = redact_data(item.args)
        if args != item.args:
            with contextlib.suppress(AttributeError, TypeError):
                item.args = args
        with contextlib.suppress(TypeError):
            _scrub(list(vars(item).items()), item)
    return exc
