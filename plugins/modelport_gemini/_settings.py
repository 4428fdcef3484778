"""The keys of a ``[backends.gemini]`` section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from modelport import ChatOptions
from modelport.logs import redact_data

__all__ = ["DEFAULT_MODEL", "FALLBACK_KEY_ENV", "KEY_ENV", "GeminiSettings", "key_variable"]

#: The chat and vision model when neither the call, the assistant nor the config names one.
DEFAULT_MODEL = "gemini-3.5-flash"
#: Where the API key is read from by default, and the variable tried when that one is unset.
KEY_ENV = "GEMINI_API_KEY"
FALLBACK_KEY_ENV = "GOOGLE_API_KEY"


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"'{attribute.name}' must be more than 0: {value!r}")


def _http_url(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"'{attribute.name}' must be an http:// or https:// URL: {value!r}")


@attrs.frozen(kw_only=True)
class GeminiSettings:
    """Which Gemini models to use, and how to reach the Gemini API.

    :ivar model: the chat model when neither the call nor the assistant names one.
    :ivar vision_model: the model for image descriptions; defaults to ``model``.
    :ivar api_key_env: the name of the environment variable holding the API key; unset means
        ``GEMINI_API_KEY``, or ``GOOGLE_API_KEY`` when that one is unset.
    :ivar base_url: the API's URL, up to its version (``/v1beta``).
    :ivar timeout_s: seconds to wait for a response (and between two streamed chunks).
    :ivar connect_timeout_s: seconds to wait for a connection.
    :ivar max_connections: connections the backend's HTTP client keeps at most.
    :ivar headers: extra HTTP headers sent with every request (never the key: use the env).
    :ivar options: default chat options (temperature, max_tokens, ...), under the
        assistant's and the call's own.
    """

    model: str = DEFAULT_MODEL
    vision_model: str | None = None
    api_key_env: str | None = None
    base_url: str = attrs.field(
        default="https://generativelanguage.googleapis.com/v1beta",
        validator=_http_url,
        repr=lambda v: repr(redact_data(v)),
    )
    timeout_s: float = attrs.field(default=60.0, validator=_positive)
    connect_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    max_connections: int = attrs.field(default=20, validator=_positive)
    headers: Mapping[str, str] = attrs.field(
        factory=dict, repr=lambda v: repr(redact_data(v, headers=True))
    )
    options: ChatOptions = ChatOptions()


def key_variable(settings: GeminiSettings, env: Mapping[str, str]) -> str:
    """The variable the key is read from: ``api_key_env`` when set; else ``GEMINI_API_KEY``,
    or ``GOOGLE_API_KEY`` when only that one is set (the error for neither names the first)."""
    if settings.api_key_env:
        return settings.api_key_env
    if not env.get(KEY_ENV, "").strip() and env.get(FALLBACK_KEY_ENV, "").strip():
        return FALLBACK_KEY_ENV
    return KEY_ENV
