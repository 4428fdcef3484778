"""What Ollama's failures mean, and what to do about them.

The kit (``modelport.http``) maps every HTTP status and transport failure into modelport's
error tree, and reads Ollama's ``{"error": "..."}`` body. What only this plugin knows is what
to do: that is all this module says.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from modelport.errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    NotFoundError,
)
from modelport.http import VendorError, read_error

#: What to do, by error class, instead of the kit's general advice.
HINTS: dict[type[BackendError], str] = {
    AuthenticationError: "set the variable named by api_key_env to the proxy's token",
    NotFoundError: "pull the model first (`ollama pull <model>`), or check the model name",
    BackendConnectionError: "is Ollama running? Start it with `ollama serve`, or check base_url",
    BackendTimeoutError: "raise timeout_s: a model loading for the first time can be slow",
}

_NOT_PULLED = re.compile(r"model ['\"]?([^'\"\s]+)['\"]? not found")


def read_ollama_error(status: int, body: Any) -> VendorError | None:
    """The kit's reading of the error body, with the exact ``ollama pull`` command when the
    server names a model it does not have."""
    found = read_error(status, body)
    if found is not None and (missing := _NOT_PULLED.search(found.message)):
        return attrs.evolve(found, hint=f"pull it first: `ollama pull {missing[1]}`")
    return found
