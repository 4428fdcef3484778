"""modelport's OpenAI plugin: chat, streaming, vision, model list and fine-tuning through the
HTTP backend kit (the ``openai`` SDK for the Files API), for OpenAI and any OpenAI-compatible
server.

It offers one backend per preset (``openai``, the default for chat, vision and training;
``azure``; ``together``, which fine-tunes over Together's own API (:mod:`._together`); the other
hosted servers; and ``ollama``, ``vllm``, ``llamacpp``, ``lmstudio`` for local servers), all
configured by the same keys (:class:`OpenAISettings`). Importing this module imports neither
the SDK nor an HTTP client: they load when a backend is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelport import BackendContext, BackendRegistry, hookimpl

from ._settings import PRESETS, OpenAISettings, Preset

if TYPE_CHECKING:
    from ._backend import OpenAIBackend

__all__ = ["PRESETS", "OpenAIBackend", "OpenAISettings", "Preset", "modelport_register_backends"]


def _build(context: BackendContext[OpenAISettings]) -> OpenAIBackend:
    if context.name == "together":  # fine-tunes over Together's own API
        from ._together import TogetherBackend

        return TogetherBackend(context)
    from ._backend import OpenAIBackend

    return OpenAIBackend(context)


@hookimpl
def modelport_register_backends(registry: BackendRegistry) -> None:
    """Offer ``openai`` and the presets for OpenAI-compatible servers."""
    for preset in PRESETS.values():
        registry.add(
            preset.name,
            _build,
            capabilities=preset.capabilities,
            settings=OpenAISettings,
            default_for=preset.capabilities if preset.default else (),
            description=preset.description,
        )


def __getattr__(name: str) -> object:
    if name == "OpenAIBackend":
        from ._backend import OpenAIBackend

        return OpenAIBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
