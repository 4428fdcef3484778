"""modelport: talk to AI models without being welded to one vendor.

The public names below are loaded on first use, so ``import modelport`` stays cheap (no
plugin, no vendor SDK, no Pillow, not even cattrs or structlog until something needs them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .async_hub import AsyncHub, AsyncReplyStream
    from .backends import (
        AnalyzesMany,
        AsyncChatBackend,
        AsyncClosable,
        AsyncDeletesFiles,
        AsyncHasJobEvents,
        AsyncReportsUploadProgress,
        AsyncTrainer,
        AsyncVisionBackend,
        BackendContext,
        ChatBackend,
        ChatCaller,
        Closable,
        DeletesFiles,
        HasAcceptsURLs,
        HasChatPrice,
        HasConfiguredModels,
        HasDefaultBaseModel,
        HasExampleTokenLimit,
        HasJobEvents,
        HasMediaTypes,
        HasMinExamples,
        HasServingNotes,
        HasTrainingPrice,
        HasTrainingWarnings,
        ImportsDialogues,
        ReportsUploadProgress,
        SentimentAnalyzer,
        Store,
        TakesImageExamples,
        Trainer,
        UsageStore,
        VisionBackend,
    )
    from .config import (
        AssistantProfile,
        EffectiveSetting,
        Secret,
        Settings,
        load_settings,
        read_secret,
    )
    from .errors import ModelportError
    from .hookspecs import hookimpl
    from .hub import Hub, ReplyStream
    from .plugins import PluginInfo, Plugins, make_plugins
    from .registry import BackendRegistry, BackendSpec
    from .resilience import RateLimiter, RetryPolicy
    from .sentiment import ScoringAnalyzer, SentimentSettings
    from .serialization import converter
    from .storage import RecordStore
    from .types import (
        Answer,
        CallFailure,
        Capability,
        ChatOptions,
        ChatRequest,
        Dialogue,
        DialogueInfo,
        Evidence,
        Exchange,
        Image,
        ImagePart,
        JobEvent,
        JobRecord,
        JobSpec,
        JobStatus,
        Message,
        ModelInfo,
        Page,
        Reply,
        Sentiment,
        SentimentLabel,
        StreamDelta,
        TextPart,
        TrainingDataset,
        TrainingExample,
        TrainingJob,
        Turn,
        Usage,
        UsageRecord,
        UsageReport,
        UsageTotal,
        VisionRequest,
    )

__all__ = [
    "AnalyzesMany",
    "Answer",
    "AssistantProfile",
    "AsyncChatBackend",
    "AsyncClosable",
    "AsyncDeletesFiles",
    "AsyncHasJobEvents",
    "AsyncHub",
    "AsyncReplyStream",
    "AsyncReportsUploadProgress",
    "AsyncTrainer",
    "AsyncVisionBackend",
    "BackendContext",
    "BackendRegistry",
    "BackendSpec",
    "CallFailure",
    "Capability",
    "ChatBackend",
    "ChatCaller",
    "ChatOptions",
    "ChatRequest",
    "Closable",
    "DeletesFiles",
    "Dialogue",
    "DialogueInfo",
    "EffectiveSetting",
    "Evidence",
    "Exchange",
    "HasAcceptsURLs",
    "HasChatPrice",
    "HasConfiguredModels",
    "HasDefaultBaseModel",
    "HasExampleTokenLimit",
    "HasJobEvents",
    "HasMediaTypes",
    "HasMinExamples",
    "HasServingNotes",
    "HasTrainingPrice",
    "HasTrainingWarnings",
    "Hub",
    "Image",
    "ImagePart",
    "ImportsDialogues",
    "JobEvent",
    "JobRecord",
    "JobSpec",
    "JobStatus",
    "Message",
    "ModelInfo",
    "ModelportError",
    "Page",
    "PluginInfo",
    "Plugins",
    "RateLimiter",
    "RecordStore",
    "Reply",
    "ReplyStream",
    "ReportsUploadProgress",
    "RetryPolicy",
    "ScoringAnalyzer",
    "Secret",
    "Sentiment",
    "SentimentAnalyzer",
    "SentimentLabel",
    "SentimentSettings",
    "Settings",
    "Store",
    "StreamDelta",
    "TakesImageExamples",
    "TextPart",
    "Trainer",
    "TrainingDataset",
    "TrainingExample",
    "TrainingJob",
    "Turn",
    "Usage",
    "UsageRecord",
    "UsageReport",
    "UsageStore",
    "UsageTotal",
    "VisionBackend",
    "VisionRequest",
    "__version__",
    "converter",
    "hookimpl",
    "load_settings",
    "make_plugins",
    "read_secret",
]

_SOURCES: dict[str, tuple[str, ...]] = {
    "async_hub": ("AsyncHub", "AsyncReplyStream"),
    "backends": (
        "AnalyzesMany", "AsyncChatBackend", "AsyncClosable", "AsyncDeletesFiles",
        "AsyncHasJobEvents", "AsyncReportsUploadProgress",
        "AsyncTrainer", "AsyncVisionBackend", "BackendContext", "ChatBackend", "ChatCaller",
        "Closable", "DeletesFiles", "HasAcceptsURLs", "HasChatPrice", "HasConfiguredModels",
        "HasDefaultBaseModel", "HasExampleTokenLimit", "HasJobEvents", "HasMediaTypes",
        "HasMinExamples", "HasServingNotes", "HasTrainingPrice", "HasTrainingWarnings",
        "ImportsDialogues", "ReportsUploadProgress", "SentimentAnalyzer", "Store",
        "TakesImageExamples", "Trainer", "UsageStore", "VisionBackend",
    ),
    "config": (
        "AssistantProfile", "EffectiveSetting", "Secret", "Settings", "load_settings",
        "read_secret",
    ),
    "errors": ("ModelportError",),
    "hookspecs": ("hookimpl",),
    "hub": ("Hub", "ReplyStream"),
    "plugins": ("PluginInfo", "Plugins", "make_plugins"),
    "registry": ("BackendRegistry", "BackendSpec"),
    "resilience": ("RateLimiter", "RetryPolicy"),
    "sentiment": ("ScoringAnalyzer", "SentimentSettings"),
    "serialization": ("converter",),
    "storage": ("RecordStore",),
    "types": (
        "Answer", "CallFailure", "Capability", "ChatOptions", "ChatRequest", "Dialogue",
        "DialogueInfo", "Evidence", "Exchange", "Image", "ImagePart", "JobEvent", "JobRecord",
        "JobSpec", "JobStatus", "Message", "ModelInfo", "Page", "Reply", "Sentiment",
        "SentimentLabel", "StreamDelta", "TextPart", "TrainingDataset", "TrainingExample",
        "TrainingJob", "Turn", "Usage", "UsageRecord", "UsageReport", "UsageTotal",
        "VisionRequest",
    ),
}  # fmt: skip
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("modelport")
        except PackageNotFoundError:  # running from a source tree
            return "0.0.0+unknown"
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'modelport' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
