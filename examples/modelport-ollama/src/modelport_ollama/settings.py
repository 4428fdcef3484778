"""The keys of a ``[backends.ollama-native]`` section."""

from __future__ import annotations

import attrs


@attrs.frozen
class OllamaSettings:
    """Where the Ollama server is and which models to use.

    :ivar base_url: the server, without ``/api``.
    :ivar model: the chat model, as ``ollama list`` names it.
    :ivar vision_model: the model for image descriptions (one that takes images).
    :ivar timeout_s: how long to wait for the server; a cold model can take a while to load.
    :ivar keep_alive: how long the server keeps the model loaded after a call ("5m", "1h").
    :ivar api_key_env: the variable holding a bearer token, for a server behind an
        authenticating proxy; empty for none. The token itself is never a setting.
    """

    base_url: str = "http://localhost:11434"
    model: str = "llama3.2"
    vision_model: str = "llava"
    timeout_s: float = attrs.field(default=120.0, validator=attrs.validators.gt(0))
    keep_alive: str | None = None
    api_key_env: str = ""
