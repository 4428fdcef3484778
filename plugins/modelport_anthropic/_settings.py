"""The keys of a ``[backends.anthropic]`` section."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from modelport import ChatOptions
from modelport.logs import redact_data

__all__ = ["DEFAULT_MODEL", "AnthropicSettings"]

#: The chat and vision model when neither the call nor the assistant names one: the current
#: Sonnet, which reads images and follows JSON schemas.
DEFAULT_MODEL = "claude-sonnet-5"


def _http_url(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"'{attribute.name}' must be an http:// or https:// URL: {value!r}")


@attrs.frozen(kw_only=True)
class AnthropicSettings:
    """Which Claude models to use, where the API is, and how to talk to it.

    :ivar model: the chat model when neither the call nor the assistant names one.
    :ivar vision_model: the model for image descriptions; empty for ``model``.
    :ivar api_key_env: the name of the environment variable holding the API key (the key
        itself is never a setting).
    :ivar base_url: the API's address, without ``/v1``.
    :ivar anthropic_version: the ``anthropic-version`` header: the API version spoken.
    :ivar max_tokens: the reply's token limit when the options give none (the Messages API
        requires one).
    :ivar timeout_s: seconds to wait for a response (and between two streamed events).
    :ivar connect_timeout_s: seconds to wait for a connection.
    :ivar max_connections: connections the backend keeps open at most.
    :ivar headers: extra HTTP headers sent with every request, e.g. ``anthropic-beta``.
    :ivar options: default chat options, under the assistant's and the call's own.
    """

    model: str = DEFAULT_MODEL
    vision_model: str = ""
    api_key_env: str = "ANTHROPIC_API_KEY"
    base_url: str = attrs.field(
        default="https://api.anthropic.com",
        validator=_http_url,
        repr=lambda v: repr(redact_data(v)),
    )
    anthropic_version: str = "2023-06-01"
    max_tokens: int = attrs.field(default=4096, validator=attrs.validators.gt(0))
    timeout_s: float = attrs.field(default=600.0, validator=attrs.validators.gt(0))
    connect_timeout_s: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    max_connections: int = attrs.field(default=100, validator=attrs.validators.gt(0))
    headers: Mapping[str, str] = attrs.field(
        factory=dict, repr=lambda v: repr(redact_data(v, headers=True))
    )
    options: ChatOptions = ChatOptions()
