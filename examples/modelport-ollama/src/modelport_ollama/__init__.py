"""A third-party modelport plugin: chat and vision through Ollama's native API.

Install it next to modelport and select it in the config::

    [capabilities]
    chat = "ollama-native"
    vision = "ollama-native"

    [backends.ollama-native]
    model = "llama3.2"

Importing this module does no I/O and imports no HTTP client: the backend is built lazily.
"""

from __future__ import annotations

from modelport import BackendContext, BackendRegistry, hookimpl

from .settings import OllamaSettings

__all__ = ["OllamaSettings", "modelport_register_backends"]


def _build(context: BackendContext[OllamaSettings]) -> object:
    from .backend import OllamaBackend  # httpx loads when the backend is first needed

    return OllamaBackend(context)


@hookimpl
def modelport_register_backends(registry: BackendRegistry) -> None:
    """Offer ``ollama-native`` for chat and vision."""
    registry.add(
        "ollama-native",
        _build,
        capabilities=["chat", "vision"],
        settings=OllamaSettings,
        description="Ollama's native API (/api/chat): chat, streaming, vision, model list",
    )
