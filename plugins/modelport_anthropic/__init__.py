"""modelport's Anthropic plugin: chat, streaming, vision, JSON-schema replies and the model
list through Anthropic's Messages API, on the HTTP backend kit.

Select it in the config, with the key in ``$ANTHROPIC_API_KEY``::

    [capabilities]
    chat = "anthropic"
    vision = "anthropic"

Importing this module does no I/O and imports no HTTP client: the backend is built lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelport import BackendContext, BackendRegistry, hookimpl

from ._settings import DEFAULT_MODEL, AnthropicSettings

if TYPE_CHECKING:
    from ._backend import AnthropicBackend

__all__ = ["DEFAULT_MODEL", "AnthropicBackend", "AnthropicSettings", "modelport_register_backends"]


def _build(context: BackendContext[AnthropicSettings]) -> AnthropicBackend:
    from ._backend import AnthropicBackend  # httpx loads when the backend is first needed

    return AnthropicBackend(context)


@hookimpl
def modelport_register_backends(registry: BackendRegistry) -> None:
    """Offer ``anthropic`` for chat and vision."""
    registry.add(
        "anthropic",
        _build,
        capabilities=["chat", "vision"],
        settings=AnthropicSettings,
        description="Anthropic's Messages API: chat, streaming, vision, JSON schemas, model list",
    )


def __getattr__(name: str) -> object:
    if name == "AnthropicBackend":
        from ._backend import AnthropicBackend

        return AnthropicBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
