"""modelport's chat-model sentiment plugin: any configured chat backend as the classifier.

Backend ``chat-sentiment`` asks a chat backend (``[capabilities] chat``, or the one its
settings name) to label texts in any language against a JSON schema: a label, a score in
[-1, 1] that agrees with it, and the words that decided it. A malformed or refused answer is
asked again, then is a clear error; results are cached; several texts go in one request.

    [capabilities]
    sentiment = "chat-sentiment"

Importing this module does no I/O: the chat backend is resolved at the first call.
"""

from __future__ import annotations

from modelport import BackendContext, BackendRegistry, hookimpl

from ._analyzer import ChatSentiment, ChatSentimentSettings

__all__ = ["ChatSentiment", "ChatSentimentSettings", "modelport_register_backends"]


def _build(context: BackendContext[ChatSentimentSettings]) -> ChatSentiment:
    return ChatSentiment(context)


@hookimpl
def modelport_register_backends(registry: BackendRegistry) -> None:
    """Offer ``chat-sentiment``."""
    registry.add(
        "chat-sentiment",
        _build,
        capabilities=["sentiment"],
        settings=ChatSentimentSettings,
        description="sentiment from any chat backend: label, score and evidence, any language",
    )
