"""Settings of the OpenAI backend, and the presets for OpenAI-compatible servers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, Literal

import attrs

from modelport import Capability, ChatOptions
from modelport.errors import ConfigError
from modelport.logs import redact, redact_data, register_secrets_in

__all__ = [
    "DEFAULT_MODEL",
    "OPENAI_CHAT_PRICES",
    "OPENAI_FINE_TUNING_CLOSES",
    "OPENAI_REASONING_MODELS",
    "OPENAI_TRAINING_PRICES",
    "PRESETS",
    "REASONING_REFUSED",
    "OpenAISettings",
    "Preset",
    "Resolved",
    "resolve",
]

_CHAT_VISION = frozenset({Capability.CHAT, Capability.VISION})
_ALL = frozenset({Capability.CHAT, Capability.VISION, Capability.TRAINING})


@attrs.frozen(kw_only=True)
class OpenAISettings:
    """The keys of a ``[backends.<name>]`` section for ``openai`` and its presets.

    A key left unset takes the preset's default (see :data:`PRESETS`).

    :ivar model: the chat model when neither the request nor the assistant names one. An
        empty string means "the first model the server lists" (handy for servers that serve
        exactly one, such as vLLM or llama.cpp).
    :ivar vision_model: the model for image descriptions; defaults to ``model``.
    :ivar api_key_env: the name of the environment variable holding the API key.
    :ivar require_key: whether a missing key is an error (local servers need none).
    :ivar base_url: the server's ``/v1`` URL. For ``openai``, ``OPENAI_BASE_URL`` is honoured.
    :ivar organization: the ``OpenAI-Organization`` header (``OPENAI_ORG_ID`` is honoured).
    :ivar project: the ``OpenAI-Project`` header (``OPENAI_PROJECT_ID`` is honoured).
    :ivar timeout_s: seconds to wait for a response (and between two streamed chunks).
    :ivar connect_timeout_s: seconds to wait for a connection.
    :ivar max_connections: connections the backend's HTTP client keeps at most.
    :ivar max_tokens_param: the request key for the reply's token limit:
        ``max_completion_tokens`` (OpenAI, Azure) or ``max_tokens`` (most other servers).
    :ivar stream_usage: ask for token usage at the end of a stream (``stream_options``); unset,
        the preset decides (every preset asks, but ``mistral``, whose API sends usage anyway
        and takes no ``stream_options``).
    :ivar models_ttl_s: how long the model list is cached; 0 turns the cache off.
    :ivar headers: extra HTTP headers sent with every request (never a key: use the env).
    :ivar query: extra query parameters, e.g. ``{"api-version" = "2024-10-21"}`` for Azure.
    :ivar options: default chat options (temperature, max_tokens, ...), under the
        assistant's and the call's own.
    :ivar image_urls: whether the server fetches image URLs itself; when false, modelport
        downloads them (within ``[images]`` limits) and sends the bytes.
    :ivar training_prices: US dollars per million training tokens, by model name prefix, for
        ``modelport train --check``'s estimate; laid over the preset's table.
    :ivar reasoning_models: reasoning models, by model-name pattern (``*`` and ``?``
        wildcards, case-insensitive; a fine-tuned model's ``ft:`` prefix is ignored), each
        with the request keys it refuses unless ``reasoning_effort`` is ``"none"``; those keys
        are left out of its requests, and its token limit is sent as
        ``max_completion_tokens``. Laid over the preset's table; ``[]`` declares a reasoning
        model that refuses nothing.
    """

    model: str | None = None
    vision_model: str | None = None
    api_key_env: str | None = None
    require_key: bool | None = None
    base_url: str | None = attrs.field(default=None, repr=lambda v: repr(redact_data(v)))
    organization: str | None = None
    project: str | None = None
    timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    max_connections: int = 100
    max_tokens_param: str | None = None
    stream_usage: bool | None = None
    models_ttl_s: float = 300.0
    headers: Mapping[str, str] = attrs.field(
        factory=dict, repr=lambda v: repr(redact_data(v, headers=True))
    )
    query: Mapping[str, str] = attrs.field(factory=dict, repr=lambda v: repr(redact_data(v)))
    options: ChatOptions = ChatOptions()
    image_urls: bool | None = None
    training_prices: Mapping[str, float] = attrs.field(factory=dict)
    reasoning_models: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)

    def effective(self, backend: str, env: Mapping[str, str]) -> Mapping[str, Any]:
        """The values in effect (``modelport config show``): this section over the preset
        named ``backend`` and the environment."""
        from ._effective import effective

        return effective(backend, self, env)


#: The chat model of the ``openai`` preset (and the deployment name the ``azure`` preset
#: assumes): OpenAI's named replacement for the gpt-4o and gpt-4.1 snapshots it shuts down on
#: 2027-01-14. It has no shutdown date.
DEFAULT_MODEL = "gpt-6-luna"

#: The request keys OpenAI's reasoning models refuse in chat completions unless
#: ``reasoning_effort`` is ``"none"``: the sampling parameters and tools.
REASONING_REFUSED: tuple[str, ...] = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
)

#: OpenAI's reasoning families (see ``reasoning_models``).
OPENAI_REASONING_MODELS: Mapping[str, tuple[str, ...]] = dict.fromkeys(
    ("o1*", "o3*", "o4*", "gpt-5*", "gpt-6*"), REASONING_REFUSED
)

#: The first day OpenAI accepts no new fine-tuning jobs (announced 2026-10-14; the base models
#: that can be fine-tuned shut down on 2027-01-14).
OPENAI_FINE_TUNING_CLOSES = date(2027, 1, 6)


#: OpenAI's published fine-tuning prices (USD per 1M training tokens) when this was written;
#: prices change, so ``training_prices`` in the config overrides any of them. Every model here
#: can be fine-tuned only until :data:`OPENAI_FINE_TUNING_CLOSES`; no price is known for
#: :data:`DEFAULT_MODEL`, so no estimate is made for it.
OPENAI_TRAINING_PRICES: Mapping[str, float] = {
    "gpt-4o-mini": 3.0,
    "gpt-4o": 25.0,
    "gpt-4.1-nano": 1.5,
    "gpt-4.1-mini": 5.0,
    "gpt-4.1": 25.0,
    "gpt-3.5-turbo": 8.0,
}


#: OpenAI's published chat prices (USD per 1M tokens: input, output; standard tier, uncached
#: input) for the models where they are known, by exact model name (``chat_price`` is a plain
#: lookup); the hub prices a dated snapshot that is not listed as its alias
#: (``gpt-4o-mini-2024-07-18`` as ``gpt-4o-mini``), so list a snapshot only when its price
#: differs (``gpt-4o-2024-05-13``). Prices change: ``[prices.openai."<model>"]`` in the config
#: overrides any of them. No price is known for :data:`DEFAULT_MODEL`, nor for fine-tuned
#: (``ft:``) models, so their cost is unknown until the config gives one.
OPENAI_CHAT_PRICES: Mapping[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-2024-05-13": (5.00, 15.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
}


@attrs.frozen(kw_only=True)
class Preset:
    """Defaults for one kind of OpenAI-compatible server, registered as its own backend."""

    name: str
    description: str
    capabilities: frozenset[Capability]
    model: str
    #: the model for images when the section names none (else ``model``)
    vision_model: str | None = None
    api_key_env: str
    require_key: bool
    base_url: str | None
    base_url_env: str | None = None
    max_tokens_param: str = "max_tokens"
    base_url_hint: str = ""
    default: bool = False
    image_urls: bool = True
    training_prices: Mapping[str, float] = attrs.field(factory=dict)
    #: USD per 1M tokens (input, output) by model name, for ``chat_price``
    chat_prices: Mapping[str, tuple[float, float]] = attrs.field(factory=dict)
    reasoning_models: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    #: the first day the vendor takes no new fine-tuning jobs (only at its own ``base_url``)
    training_closes: date | None = None
    #: whether streams ask for usage with ``stream_options``
    stream_usage: bool = True
    #: how JSON output is asked for: by schema, or by JSON mode plus the schema as an
    #: instruction (servers that take no schema)
    json_mode: Literal["json_schema", "json_object"] = "json_schema"
    #: request keys the server names otherwise (ours: theirs)
    renamed: Mapping[str, str] = attrs.field(factory=dict)


PRESETS: Mapping[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="openai",
            description="OpenAI: chat, streaming, vision, model list, fine-tuning",
            capabilities=_ALL,
            model=DEFAULT_MODEL,
            api_key_env="OPENAI_API_KEY",
            require_key=True,
            base_url="https://api.openai.com/v1",
            base_url_env="OPENAI_BASE_URL",
            max_tokens_param="max_completion_tokens",
            default=True,
            training_prices=OPENAI_TRAINING_PRICES,
            chat_prices=OPENAI_CHAT_PRICES,
            reasoning_models=OPENAI_REASONING_MODELS,
            training_closes=OPENAI_FINE_TUNING_CLOSES,
        ),
        Preset(
            name="azure",
            description="Azure OpenAI deployments (the /openai/v1/ API)",
            capabilities=_ALL,
            model=DEFAULT_MODEL,
            api_key_env="AZURE_OPENAI_API_KEY",
            require_key=True,
            base_url=None,
            base_url_env="AZURE_OPENAI_BASE_URL",
            max_tokens_param="max_completion_tokens",
            base_url_hint="https://<resource>.openai.azure.com/openai/v1/",
            reasoning_models=OPENAI_REASONING_MODELS,
        ),
        Preset(
            name="together",
            description="Together AI: chat and vision (OpenAI-compatible API, open models), "
            "fine-tuning (Together's own API)",
            capabilities=_ALL,
            model="meta-llama/Llama-3.3-70B-Instruct-Turbo",
            vision_model="meta-llama/Llama-4-Scout-17B-16E-Instruct",
            api_key_env="TOGETHER_API_KEY",
            require_key=True,
            base_url="https://api.together.xyz/v1",
        ),
        Preset(
            name="groq",
            description="Groq's OpenAI-compatible API (open models on LPUs)",
            capabilities=_CHAT_VISION,
            model="llama-3.3-70b-versatile",
            vision_model="meta-llama/llama-4-scout-17b-16e-instruct",
            api_key_env="GROQ_API_KEY",
            require_key=True,
            base_url="https://api.groq.com/openai/v1",
            max_tokens_param="max_completion_tokens",
        ),
        Preset(
            name="openrouter",
            description="OpenRouter: many vendors' models behind one OpenAI-compatible API",
            capabilities=_CHAT_VISION,
            model="meta-llama/llama-3.3-70b-instruct",
            vision_model="meta-llama/llama-4-scout",
            api_key_env="OPENROUTER_API_KEY",
            require_key=True,
            base_url="https://openrouter.ai/api/v1",
        ),
        Preset(
            name="deepseek",
            description="DeepSeek's OpenAI-compatible API (chat only; JSON mode, no schemas)",
            capabilities=frozenset({Capability.CHAT}),
            model="deepseek-chat",
            api_key_env="DEEPSEEK_API_KEY",
            require_key=True,
            base_url="https://api.deepseek.com/v1",
            json_mode="json_object",
        ),
        Preset(
            name="fireworks",
            description="Fireworks AI's OpenAI-compatible API (open models)",
            capabilities=_CHAT_VISION,
            model="accounts/fireworks/models/llama-v3p3-70b-instruct",
            vision_model="accounts/fireworks/models/llama4-scout-instruct-basic",
            api_key_env="FIREWORKS_API_KEY",
            require_key=True,
            base_url="https://api.fireworks.ai/inference/v1",
        ),
        Preset(
            name="mistral",
            description="Mistral AI's API (chat and vision; seed sent as random_seed)",
            capabilities=_CHAT_VISION,
            model="mistral-small-latest",
            api_key_env="MISTRAL_API_KEY",
            require_key=True,
            base_url="https://api.mistral.ai/v1",
            stream_usage=False,
            renamed={"seed": "random_seed"},
        ),
        Preset(
            name="ollama",
            description="Ollama's OpenAI-compatible API (local)",
            capabilities=_CHAT_VISION,
            model="llama3.2",
            api_key_env="OLLAMA_API_KEY",
            require_key=False,
            base_url="http://localhost:11434/v1",
            image_urls=False,
        ),
        Preset(
            name="vllm",
            description="a vLLM server (local); the model defaults to the one it serves",
            capabilities=_CHAT_VISION,
            model="",
            api_key_env="VLLM_API_KEY",
            require_key=False,
            base_url="http://localhost:8000/v1",
        ),
        Preset(
            name="llamacpp",
            description="llama.cpp's llama-server (local)",
            capabilities=_CHAT_VISION,
            model="",
            api_key_env="LLAMACPP_API_KEY",
            require_key=False,
            base_url="http://localhost:8080/v1",
            image_urls=False,
        ),
        Preset(
            name="lmstudio",
            description="LM Studio's local server",
            capabilities=_CHAT_VISION,
            model="",
            api_key_env="LMSTUDIO_API_KEY",
            require_key=False,
            base_url="http://localhost:1234/v1",
            image_urls=False,
        ),
    )
}


@attrs.frozen(kw_only=True, repr=False)
class Resolved:
    """A backend's effective settings: the section laid over its preset and the environment."""

    backend: str
    preset: Preset
    settings: OpenAISettings
    model: str
    vision_model: str
    api_key_env: str
    require_key: bool
    base_url: str
    organization: str | None
    project: str | None
    max_tokens_param: str
    image_urls: bool
    training_prices: Mapping[str, float]
    reasoning_models: Mapping[str, tuple[str, ...]]
    training_closes: date | None
    stream_usage: bool

    @property
    def can_train(self) -> bool:
        return Capability.TRAINING in self.preset.capabilities

    def __repr__(self) -> str:
        return f"Resolved(backend={self.backend!r}, base_url={redact(self.base_url)!r})"


def _register_secrets(settings: OpenAISettings, base_url: str) -> None:
    """Have every output mask the credentials these settings hold: keys in headers and query
    parameters, and the base URL's (which may come from the environment)."""
    register_secrets_in(
        {"base_url": base_url, "headers": dict(settings.headers), "query": dict(settings.query)}
    )


def resolve(backend: str, settings: OpenAISettings, env: Mapping[str, str]) -> Resolved:
    """Lay ``settings`` over the preset named ``backend``.

    :raises ConfigError: when a setting is out of range or a required base URL is missing.
    """
    preset = PRESETS[backend]
    section = f"backends.{backend}"
    base_url = (
        settings.base_url
        or (env.get(preset.base_url_env) if preset.base_url_env else None)
        or preset.base_url
    )
    if not base_url:
        raise ConfigError(
            f"backend {backend!r} needs the server's URL",
            key=f"{section}.base_url",
            hint=f"set [backends.{backend}] base_url = {preset.base_url_hint!r}"
            + (f" or export {preset.base_url_env}" if preset.base_url_env else ""),
        )
    _register_secrets(settings, base_url)
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"base_url {redact(base_url)!r} is not an http(s) URL", key=f"{section}.base_url"
        )
    for key in ("timeout_s", "connect_timeout_s"):
        if getattr(settings, key) <= 0:
            raise ConfigError("must be greater than 0", key=f"{section}.{key}")
    if settings.max_connections < 1:
        raise ConfigError("must be at least 1", key=f"{section}.max_connections")
    if settings.models_ttl_s < 0:
        raise ConfigError("must be 0 or more", key=f"{section}.models_ttl_s")
    tokens_param = settings.max_tokens_param or preset.max_tokens_param
    if tokens_param not in ("max_tokens", "max_completion_tokens"):
        raise ConfigError(
            f"{tokens_param!r} is not 'max_tokens' or 'max_completion_tokens'",
            key=f"{section}.max_tokens_param",
        )
    openai_env = preset.name == "openai"
    model = preset.model if settings.model is None else settings.model
    return Resolved(
        backend=backend,
        preset=preset,
        settings=settings,
        model=model,
        vision_model=settings.vision_model or preset.vision_model or model,
        api_key_env=settings.api_key_env or preset.api_key_env,
        require_key=preset.require_key if settings.require_key is None else settings.require_key,
        base_url=base_url.rstrip("/"),
        organization=settings.organization or (env.get("OPENAI_ORG_ID") if openai_env else None),
        project=settings.project or (env.get("OPENAI_PROJECT_ID") if openai_env else None),
        max_tokens_param=tokens_param,
        image_urls=preset.image_urls if settings.image_urls is None else settings.image_urls,
        training_prices={**preset.training_prices, **settings.training_prices},
        reasoning_models={**preset.reasoning_models, **settings.reasoning_models},
        stream_usage=preset.stream_usage
        if settings.stream_usage is None
        else settings.stream_usage,
        # another server behind the same preset has its own rules
        training_closes=(
            preset.training_closes
            if preset.base_url and base_url.rstrip("/") == preset.base_url.rstrip("/")
            else None
        ),
    )
