"""modelport's Gemini plugin: chat, streaming, vision and the model list through Google's
Gemini API (``generateContent``), on the HTTP backend kit.

Select it in the config, with the key in ``$GEMINI_API_KEY`` (or ``$GOOGLE_API_KEY``)::

    [capabilities]
    chat = "gemini"
    vision = "gemini"

Importing this module does no I/O and imports no HTTP client: the backend is built lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelport import BackendContext, BackendRegistry, hookimpl

from ._settings import DEFAULT_MODEL, GeminiSettings

if TYPE_CHECKING:
    from ._backend import GeminiBackend

__all__ = ["DEFAULT_MODEL", "GeminiBackend", "GeminiSettings", "modelport_register_backends"]


def _build(context: BackendContext[GeminiSettings]) -> GeminiBackend:
    from ._backend import GeminiBackend  # httpx loads when the backend is first needed

    return GeminiBackend(context)


@hookimpl
def modelport_register_backends(registry: BackendRegistry) -> None:
    """Offer ``gemini`` for chat and vision."""
    registry.add(
        "gemini",
        _build,
        capabilities=["chat", "vision"],
        settings=GeminiSettings,
        description="Google's Gemini API: chat, streaming, vision, model list",
    )


def __getattr__(name: str) -> object:
    if name == "GeminiBackend":
        from ._backend import GeminiBackend

        return GeminiBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
