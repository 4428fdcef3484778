"""Settings: a TOML file, overridden by environment variables, overridden by arguments.

The file is the first of: the path given, ``$MODELPORT_CONFIG``, ``./modelport.toml``, and
``modelport.toml`` in the user config directory. No file at all is fine: the defaults work.

Environment variables ``MODELPORT_<SECTION>__<KEY>`` set nested keys (``__`` separates levels;
values are read as TOML values when they parse as one, else as strings)::

    MODELPORT_CAPABILITIES__CHAT=acme
    MODELPORT_BACKENDS__ACME__TIMEOUT=20
    MODELPORT_RETRY__ATTEMPTS=6

API keys are never read from the file; backends read them from the environment through
:func:`read_secret`, and they live in a :class:`Secret`, which never prints its value.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from .datasets import CsvColumns
from .errors import ConfigError, MissingSecretError
from .types import Capability, ChatOptions

__all__ = [
    "AssistantProfile",
    "CapabilitySettings",
    "ImageSettings",
    "LimitSettings",
    "PluginSettings",
    "RetrySettings",
    "TrainingSettings",
    "Secret",
    "Settings",
    "find_config_file",
    "load_settings",
    "read_secret",
]

T = TypeVar("T")

ENV_PREFIX = "MODELPORT_"
#: Environment variables with a meaning of their own, not nested config keys.
RESERVED_ENV = frozenset(
    {"MODELPORT_CONFIG", "MODELPORT_DISABLE_PLUGINS", "MODELPORT_DISABLE_PLUGIN_AUTOLOAD",
     "MODELPORT_PLUGINS"}
)  # fmt: skip
_SECRET_KEY = re.compile(r"(api_?key|secret|token|password|authorization)$", re.IGNORECASE)


@attrs.frozen(repr=False)
class Secret:
    """A secret read from the environment. Its repr and str never show the value."""

    variable: str
    _value: str = attrs.field(eq=False, hash=False)

    def reveal(self) -> str:
        """The secret value. Call it only where the value is handed to a client."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.variable}=***)"

    __str__ = __repr__


def read_secret(
    variable: str, *, backend: str | None = None, env: Mapping[str, str] | None = None
) -> Secret:
    """Read a secret from the environment.

    :raises MissingSecretError: when the variable is unset or empty, saying how to set it.
    """
    value = (os.environ if env is None else env).get(variable, "").strip()
    if not value:
        raise MissingSecretError(variable, backend=backend)
    return Secret(variable, value)


@attrs.frozen
class RetrySettings:
    """The retry policy every backend call gets (``[retry]``).

    :ivar attempts: tries per call, the first included; 1 turns retrying off.
    :ivar initial_s: the first backoff wait in seconds; each further wait doubles it.
    :ivar max_s: the longest backoff wait in seconds.
    :ivar max_retry_after_s: the longest Retry-After the policy honours; a backend asking
        for longer fails at once instead of hanging the caller.
    :ivar jitter_s: up to this many random seconds added to each wait, so that many clients
        do not retry in step.
    """

    attempts: int = 4
    initial_s: float = 0.5
    max_s: float = 30.0
    max_retry_after_s: float = 60.0
    jitter_s: float = 1.0


@attrs.frozen
class LimitSettings:
    """Client-side rate limits for one backend (``[limits.<backend>]``); unset is unlimited.

    :ivar requests_per_minute: calls started per minute, at most.
    :ivar tokens_per_minute: estimated tokens sent per minute, at most.
    """

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None


@attrs.frozen
class PluginSettings:
    """Which plugins load (``[plugins]``).

    :ivar disable: plugin names not to load (``MODELPORT_DISABLE_PLUGINS`` adds to them).
    :ivar autoload: load the plugins installed under the ``modelport`` entry-point group.
    :ivar load: modules to load as plugins besides, by import path (``MODELPORT_PLUGINS``).
    """

    disable: tuple[str, ...] = ()
    autoload: bool = True
    load: tuple[str, ...] = ()


@attrs.frozen
class CapabilitySettings:
    """Which backend serves each capability (``[capabilities]``).

    Unset means: the backend its plugin marks as the default, or the only one installed.

    :ivar chat: the backend for questions, streaming and the model list.
    :ivar vision: the backend for image descriptions.
    :ivar sentiment: the backend for the mood of a text (and of every reply).
    :ivar storage: the backend that keeps dialogues and training-job records.
    :ivar training: the backend for fine-tuning jobs.
    """

    chat: str | None = None
    vision: str | None = None
    sentiment: str | None = None
    storage: str | None = None
    training: str | None = None

    def get(self, capability: Capability) -> str | None:
        value: str | None = getattr(self, capability.value)
        return value


@attrs.frozen
class ImageSettings:
    """How images are checked and normalised before a backend sees them (``[images]``).

    :ivar max_side: the longest side in pixels; larger images are scaled down (aspect ratio
        kept).
    :ivar max_bytes: the largest encoded size in bytes; larger images are re-encoded, then
        scaled down.
    :ivar max_pixels: images with more pixels than this are refused unread (decompression
        bombs).
    :ivar fetch_timeout_s: the time limit in seconds for downloading an image URL, when the
        backend needs the bytes.
    :ivar fetch_max_bytes: the size limit in bytes for such a download.
    :ivar quality: the JPEG/WebP quality of re-encoded photos (lowered step by step to fit
        ``max_bytes``).
    """

    max_side: int = attrs.field(default=2048, validator=attrs.validators.ge(16))
    max_bytes: int = attrs.field(default=10 * 1024 * 1024, validator=attrs.validators.ge(1024))
    max_pixels: int = attrs.field(default=64_000_000, validator=attrs.validators.ge(1))
    fetch_timeout_s: float = attrs.field(default=20.0, validator=attrs.validators.gt(0))
    fetch_max_bytes: int = attrs.field(default=20 * 1024 * 1024, validator=attrs.validators.ge(1))
    quality: int = attrs.field(default=90, validator=attrs.validators.in_(range(30, 101)))


@attrs.frozen
class TrainingSettings:
    """Training data defaults (``[training]``).

    :ivar csv: the CSV column names (``[training.csv]``).
    :ivar epochs: the epochs assumed for the token and cost estimate when the
        hyperparameters set none.
    :ivar tokenizer: the tiktoken encoding used to count tokens, when tiktoken is installed.
    :ivar min_examples: overrides the training backend's minimum number of examples.
    """

    csv: CsvColumns = CsvColumns()
    epochs: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    tokenizer: str = "o200k_base"
    min_examples: int | None = None


@attrs.frozen
class AssistantProfile:
    """A named assistant (``[assistants.<name>]``): model, instructions, options, backend.

    :ivar model: the model it asks, over the chat backend's default.
    :ivar instructions: the system message that opens each of its dialogues.
    :ivar options: its chat options (``[assistants.<name>.options]``: temperature, top_p,
        max_tokens, stop, seed, json_schema, extra), under the call's own.
    :ivar backend: the chat backend it uses, over ``[capabilities] chat``.
    :ivar description: a line for ``modelport config show`` and your own tooling.
    """

    model: str | None = None
    instructions: str | None = None
    options: ChatOptions = ChatOptions()
    backend: str | None = None
    description: str = ""


@attrs.frozen
class Settings:
    """modelport's settings, validated. Build them with :func:`load_settings`.

    :ivar capabilities: which backend serves each capability (``[capabilities]``).
    :ivar backends: each backend's own section (``[backends.<name>]``).
    :ivar assistants: named assistant profiles (``[assistants.<name>]``).
    :ivar default_assistant: the profile used when a call names none.
    :ivar retry: the retry policy (``[retry]``).
    :ivar limits: client-side rate limits per backend (``[limits.<backend>]``).
    :ivar plugins: which plugins load (``[plugins]``).
    :ivar images: image checks and normalisation (``[images]``).
    :ivar training: training-data defaults (``[training]``).
    :ivar path: the config file these settings were read from, if any (for error messages).
    """

    capabilities: CapabilitySettings = CapabilitySettings()
    backends: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict, hash=False)
    assistants: Mapping[str, AssistantProfile] = attrs.field(factory=dict, hash=False)
    default_assistant: str | None = None
    retry: RetrySettings = RetrySettings()
    limits: Mapping[str, LimitSettings] = attrs.field(factory=dict, hash=False)
    plugins: PluginSettings = PluginSettings()
    images: ImageSettings = ImageSettings()
    training: TrainingSettings = TrainingSettings()
    path: str | None = attrs.field(default=None, eq=False)

    def assistant(self, name: str | None) -> tuple[str | None, AssistantProfile]:
        """The named profile (or the default one, or an empty one when none is set)."""
        name = name or self.default_assistant
        if name is None:
            return None, AssistantProfile()
        try:
            return name, self.assistants[name]
        except KeyError:
            known = ", ".join(sorted(self.assistants)) or "none defined"
            raise ConfigError(
                f"no assistant named {name!r}",
                path=self.path,
                key=f"assistants.{name}",
                hint=f"define [assistants.{name}] in the config file; known: {known}",
            ) from None

    def backend_settings(self, name: str, cls: type[T]) -> T:
        """The ``[backends.<name>]`` section structured into ``cls``.

        :raises ConfigError: naming the first wrong key (and how many more there are).
        """
        from .serialization import converter

        section = self.backends.get(name, {})
        try:
            return converter.structure(dict(section), cls)
        except Exception as exc:
            raise _structure_error(exc, f"backends.{name}", self.path) from None

    def redacted(self) -> dict[str, Any]:
        """The settings as plain data, with anything that looks like a secret masked."""
        from .serialization import converter

        data: dict[str, Any] = _redact(converter.unstructure(attrs.evolve(self, path=None)))
        return data


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: "***" if _SECRET_KEY.search(str(k)) and v else _redact(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _structure_error(exc: Exception, prefix: str, path: str | None) -> ConfigError:
    from .serialization import structure_errors

    lines = structure_errors(exc, path=prefix or "$")
    what, _, where = lines[0].rpartition(" @ ")
    key = where.removeprefix("$").removeprefix(".") or None
    hint = "check the spelling against the configuration reference (docs/configuration.md)"
    invalid = re.match(r"'(\w+)' (must .*): (.*)$", what)
    if invalid:
        key = f"{key}.{invalid.group(1)}" if key else invalid.group(1)
        what = f"{invalid.group(2)}, not {invalid.group(3)}"
        hint = "see the configuration reference (docs/configuration.md)"
    extra = re.match(r"extra fields found \((.*)\)", what)
    if extra:
        names = [n.strip() for n in extra.group(1).split(",")]
        key = f"{key}.{names[0]}" if key else names[0]
        what = f"unknown key{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}"
        if any(_SECRET_KEY.search(n) for n in names):
            hint = "API keys are read only from environment variables, never from config files"
    if len(lines) > 1:
        what = f"{what} (and {len(lines) - 1} more problem{'s' if len(lines) > 2 else ''})"
    return ConfigError(what, path=path, key=key, hint=hint)


def find_config_file(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> Path | None:
    """The config file to read: ``path``, ``$MODELPORT_CONFIG``, ``./modelport.toml``, or the
    user config directory's ``modelport.toml``; ``None`` when there is none.

    :raises ConfigError: when an explicitly named file (argument or variable) does not exist.
    """
    env = os.environ if env is None else env
    explicit = path if path is not None else env.get("MODELPORT_CONFIG") or None
    if explicit is not None:
        candidate = Path(explicit)
        if not candidate.is_file():
            source = "MODELPORT_CONFIG" if path is None else "the config path given"
            raise ConfigError(
                f"config file not found: {candidate}",
                hint=f"check {source}, or unset it to use the defaults",
            )
        return candidate
    local = Path("modelport.toml")
    if local.is_file():
        return local
    import platformdirs

    user = platformdirs.user_config_path("modelport") / "modelport.toml"
    return user if user.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", path=str(path), hint="fix the syntax") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file: {exc}", path=str(path)) from None


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
        if not all(keys):
            raise ConfigError(f"malformed variable name {name}", hint="use MODELPORT_SECTION__KEY")
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name} conflicts with another MODELPORT_ variable")
        node[keys[-1]] = _env_value(raw)
    plugins: dict[str, Any] = {}
    if disabled := env.get("MODELPORT_DISABLE_PLUGINS", "").strip():
        plugins["disable"] = [n.strip() for n in disabled.split(",") if n.strip()]
    if env.get("MODELPORT_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower() in {"1", "true", "yes"}:
        plugins["autoload"] = False
    if extra := env.get("MODELPORT_PLUGINS", "").strip():
        plugins["load"] = [n.strip() for n in extra.split(",") if n.strip()]
    return _merge(tree, {"plugins": plugins}) if plugins else tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    search: bool = True,
) -> Settings:
    """Read and validate the settings.

    :param path: the config file; default: see the module docs.
    :param search: look for a config file when ``path`` is not given (off: defaults,
        environment and overrides only; tests use this).
    :param overrides: nested keys that win over the file and the environment, e.g.
        ``{"capabilities": {"chat": "fake"}}``.
    :param env: the environment to read (default ``os.environ``).
    :raises ConfigError: for a missing explicit file, bad TOML, or a wrong key or value,
        naming the file and the key.
    """
    env = os.environ if env is None else env
    file = find_config_file(path, env=env) if path is not None or search else None
    data: dict[str, Any] = _read_toml(file) if file else {}
    data = _merge(data, _from_env(env))
    if overrides:
        data = _merge(data, overrides)
    data["path"] = str(file) if file else None
    from .serialization import converter

    try:
        settings = converter.structure(data, Settings)
    except Exception as exc:
        raise _structure_error(exc, "", data["path"]) from None
    if settings.default_assistant is not None:
        settings.assistant(settings.default_assistant)  # fail early on a dangling default
    return settings
