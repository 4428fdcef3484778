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

import difflib
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from ._redact import is_secret_name, redact, redact_data, register_secret, register_secrets_in
from .datasets import CsvColumns
from .errors import ConfigError, MissingSecretError
from .types import Capability, ChatOptions

__all__ = [
    "AssistantProfile",
    "CapabilitySettings",
    "CircuitSettings",
    "Fallback",
    "HistoryWindow",
    "ImageSettings",
    "LimitSettings",
    "PluginSettings",
    "Price",
    "RetrySettings",
    "TrainingSettings",
    "Secret",
    "Settings",
    "EffectiveSetting",
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


def _redacted_repr(value: object) -> str:
    return repr(redact_data(value))


@attrs.frozen(repr=False)
class Secret:
    """A secret read from the environment. Its repr and str never show the value, and from its
    creation on the value is masked wherever modelport writes text: logs, errors (and the vendor
    errors they chain), reprs, ``config show``."""

    variable: str
    _value: str = attrs.field(eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        register_secret(self._value)

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
class EffectiveSetting:
    """One setting of a backend as it takes effect, for ``modelport config show``.

    A backend's settings class may define ``effective(self, backend, env)`` returning a
    mapping of key to ``EffectiveSetting``: the values the backend will really use once its
    own defaults (a preset's URL and model, say) and the environment variables it reads are
    laid over its ``[backends.<name>]`` section. Without that method, ``config show`` shows
    the section's keys with their defaults.

    :ivar value: the value in effect (plain data: text, a number, a list, a table).
    :ivar source: where it came from when not from the section: ``"default"`` (the plugin's
        own default), or ``"env:<VARIABLE>"`` for a variable the plugin reads itself.
        ``None``: from the section (or its default), as the config records it.
    """

    value: Any
    source: str | None = None


@attrs.frozen
class RetrySettings:
    """The retry policy every backend call gets (``[retry]``).

    :ivar attempts: tries per call, the first included; 1 turns retrying off.
    :ivar initial_s: the first backoff wait in seconds; each further wait doubles it.
    :ivar max_s: the longest backoff wait in seconds.
    :ivar max_retry_after_s: the longest Retry-After in seconds the policy honours; a backend
        asking for longer fails at once, with no retry and no wait, instead of hanging the
        caller: its error (a ``RateLimitedError`` stays one) has its hint say how long the
        server asked to wait and that raising this setting would allow it.
    :ivar jitter_s: up to this many random seconds added to each wait, so that many clients
        do not retry in step.
    """

    attempts: int = 4
    initial_s: float = 0.5
    max_s: float = 30.0
    max_retry_after_s: float = 60.0
    jitter_s: float = 1.0


@attrs.frozen
class CircuitSettings:
    """The circuit breaker each chat backend gets (``[circuit]``).

    After ``failures`` chat calls in a row fail (each once the retry policy gave up on it, with
    an error that would fall back: see :class:`Fallback`), the backend's circuit opens: it is
    not called at all for ``reset_s`` seconds. An assistant with fallbacks skips it at once; one
    without fails fast with ``CircuitOpenError``. Then one trial call goes through (half open):
    if it succeeds the circuit closes, else it stays open for another ``reset_s``.

    :ivar failures: failed calls in a row that open a backend's circuit; 0 turns the breaker
        off.
    :ivar reset_s: seconds an open circuit waits before it lets one trial call through.
    """

    failures: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    reset_s: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))


def _one_of(*choices: str) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in choices:
            allowed = " or ".join(f'"{c}"' for c in choices)
            raise ValueError(f"'{attribute.name}' must be {allowed}: {value!r}")

    return check


@attrs.frozen
class LimitSettings:
    """Client-side rate limits for one backend (``[limits.<backend>]``); unset is unlimited.

    The limits hold in each process, unless ``redis_url`` names a Redis server: every process
    that names the same server (and ``redis_prefix``) then shares one budget.

    :ivar requests_per_minute: calls started per minute, at most.
    :ivar tokens_per_minute: estimated tokens sent per minute, at most.
    :ivar burst: the most calls that may start at once after a quiet spell (the size of the
        request bucket); unset, ``requests_per_minute`` (a minute's worth).
    :ivar redis_url: a Redis server (``redis://``, ``rediss://`` for TLS, ``unix://``) that
        holds the limits for every process and machine that names it; unset, each process
        has its own. May hold a password, which is masked wherever it would be shown. Needs
        ``pip install 'modelport[redis]'``.
    :ivar redis_prefix: the start of the Redis key the limit is kept under
        (``<redis_prefix>:<backend>``); applications that share a Redis but not a budget set
        different ones.
    :ivar on_redis_down: what a call does when that Redis is down, too slow or refuses the
        check: ``"local"`` falls back to this process's own limit, with a warning once per
        outage, and goes back to Redis when it answers again; ``"refuse"`` fails the call
        with ``LimiterUnavailableError`` without sending it.
    :ivar redis_timeout_s: how long in seconds to wait for Redis (to connect, and for each
        check) before treating it as down.
    """

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    burst: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(1))
    )
    redis_url: str | None = attrs.field(default=None, repr=_redacted_repr)
    redis_prefix: str = "modelport:limits"
    on_redis_down: str = attrs.field(default="local", validator=_one_of("local", "refuse"))
    redis_timeout_s: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))


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
    :ivar base_model: the model to fine-tune when a call names none (CLI: ``--model``).
        Unset: the training backend's own default (a local trainer's ``base_model``, say),
        else the default assistant's model (the one given with ``--from-dialogues``).
    """

    csv: CsvColumns = CsvColumns()
    epochs: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    tokenizer: str = "o200k_base"
    min_examples: int | None = None
    base_model: str | None = None


_AT_LEAST_ZERO: Any = attrs.validators.optional(attrs.validators.ge(0))


@attrs.frozen(kw_only=True)
class HistoryWindow:
    """How much of a dialogue an ask sends as history (``[assistants.<name>.history]``).

    The window holds the latest whole turns that fit both limits; the dialogue itself stays
    stored whole. A longer window costs more tokens per ask and, past the model's context,
    fails; a shorter one forgets sooner.

    :ivar max_messages: at most this many of the latest messages (``0``: none). To send a
        whole dialogue, set a number larger than any dialogue (the store then reads all of
        it for every ask); in Python, ``None`` means no limit.
    :ivar max_tokens: at most this many estimated tokens of history (4 characters a token);
        unset, no limit by tokens.
    """

    max_messages: int | None = attrs.field(default=100, validator=_AT_LEAST_ZERO)
    max_tokens: int | None = attrs.field(default=None, validator=_AT_LEAST_ZERO)


@attrs.frozen(kw_only=True)
class Price:
    """What a model costs (``[prices.<backend>."<model>"]``), in US dollars per million tokens.

    :ivar input_per_million: per million tokens sent (the prompt, images included).
    :ivar output_per_million: per million tokens received (the reply, reasoning included).
    """

    input_per_million: float = attrs.field(validator=attrs.validators.ge(0))
    output_per_million: float = attrs.field(validator=attrs.validators.ge(0))


@attrs.frozen
class Fallback:
    """A chat backend (and model) an assistant falls back to (an entry of its ``fallbacks``).

    In the file, an entry is a backend name (``"local"``) or a table
    (``{ backend = "acme", model = "acme-large" }``).

    :ivar backend: the chat backend to try; it must exist when the assistant is asked.
    :ivar model: the model to ask it for; unset: the backend's own default model (the
        assistant's model is not sent: model names rarely carry from one vendor to another).
    """

    backend: str = attrs.field(validator=attrs.validators.min_len(1))
    model: str | None = None


@attrs.frozen
class AssistantProfile:
    """A named assistant (``[assistants.<name>]``): model, instructions, options, backend.

    :ivar model: the model it asks, over the chat backend's default.
    :ivar instructions: the system message that opens each of its dialogues.
    :ivar options: its chat options (``[assistants.<name>.options]``: temperature, top_p,
        max_tokens, stop, seed, json_schema, extra), under the call's own.
    :ivar backend: the chat backend it uses, over ``[capabilities] chat``.
    :ivar description: a line for ``modelport config show`` and your own tooling.
    :ivar history: how much of a dialogue each ask sends (``[assistants.<name>.history]``:
        max_messages, max_tokens).
    :ivar fallbacks: the chat backends to try, in order, when its own fails: each a backend
        name or a table with ``backend`` and an optional ``model``. A backend is left for the
        next once the retry policy gave up on a retryable error (5xx, timeout, lost connection,
        rate limit), on a rejected key (401/403, logged as an error), or at once when its
        circuit is open; never on a refused request (400, 404, 422). A stream falls back only
        before its first delta.
    :ivar budget_usd: the most its chat calls may cost in a ``budget_period``, in US dollars
        (by the price table; calls of unknown cost count as 0); once spent, its calls are
        refused with ``BudgetExceededError`` before anything is sent. Unset: no budget.
    :ivar budget_period: ``"month"`` (the calendar month, UTC), ``"day"`` (UTC) or
        ``"total"`` (all recorded usage).
    """

    model: str | None = None
    instructions: str | None = None
    options: ChatOptions = ChatOptions()
    backend: str | None = None
    description: str = ""
    history: HistoryWindow = HistoryWindow()
    fallbacks: tuple[Fallback, ...] = ()
    budget_usd: float | None = attrs.field(default=None, validator=_AT_LEAST_ZERO)
    budget_period: str = attrs.field(default="month", validator=_one_of("month", "day", "total"))


@attrs.frozen
class Settings:
    """modelport's settings, validated. Build them with :func:`load_settings`.

    :ivar capabilities: which backend serves each capability (``[capabilities]``).
    :ivar backends: each backend's own section (``[backends.<name>]``).
    :ivar assistants: named assistant profiles (``[assistants.<name>]``).
    :ivar default_assistant: the profile used when a call names none.
    :ivar retry: the retry policy (``[retry]``).
    :ivar circuit: the circuit breaker of each chat backend (``[circuit]``).
    :ivar limits: client-side rate limits per backend (``[limits.<backend>]``).
    :ivar prices: what models cost, by backend and model (``[prices.<backend>."<model>"]``),
        over the prices the backends ship; the model ``"*"`` prices every other model of the
        backend.
    :ivar plugins: which plugins load (``[plugins]``).
    :ivar images: image checks and normalisation (``[images]``).
    :ivar training: training-data defaults (``[training]``).
    :ivar path: the config file these settings were read from, if any (for error messages).
    :ivar sources: where each key that was set came from, by dotted key
        (``"backends.jsonfile.root"``): ``"file:<path>"``, ``"env:<VARIABLE>"`` or
        ``"override"``; a key not in it has its default. Filled by :func:`load_settings`.
    """

    capabilities: CapabilitySettings = CapabilitySettings()
    backends: Mapping[str, Mapping[str, Any]] = attrs.field(
        factory=dict, hash=False, repr=_redacted_repr
    )
    assistants: Mapping[str, AssistantProfile] = attrs.field(factory=dict, hash=False)
    default_assistant: str | None = None
    retry: RetrySettings = RetrySettings()
    circuit: CircuitSettings = CircuitSettings()
    limits: Mapping[str, LimitSettings] = attrs.field(factory=dict, hash=False)
    prices: Mapping[str, Mapping[str, Price]] = attrs.field(factory=dict, hash=False)
    plugins: PluginSettings = PluginSettings()
    images: ImageSettings = ImageSettings()
    training: TrainingSettings = TrainingSettings()
    path: str | None = attrs.field(default=None, eq=False)
    sources: Mapping[str, str] = attrs.field(factory=dict, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # keys in custom headers, query parameters or base URLs get the same care as the
        # environment's: masked wherever they would be shown
        register_secrets_in(self.backends)

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
            raise _structure_error(
                exc, f"backends.{name}", self.path, self.sources, root=cls
            ) from None

    def redacted(self) -> dict[str, Any]:
        """The settings as plain data (what ``modelport config show`` prints), with every
        secret masked: values under secret-looking keys, secret-looking headers, URL user-info
        and credential query parameters, and any known secret value (see
        :func:`modelport.logs.redact`)."""
        from .serialization import converter

        data: dict[str, Any] = redact_data(
            converter.unstructure(attrs.evolve(self, path=None, sources={}))
        )
        return data


def _structure_error(
    exc: Exception,
    prefix: str,
    path: str | None,
    sources: Mapping[str, str] | None = None,
    *,
    root: Any = None,
) -> ConfigError:
    from .serialization import structure_errors

    named = _name_validator_errors(exc)
    lines = structure_errors(exc, path=prefix or "$")
    what, _, where = lines[0].rpartition(" @ ")
    key = where.removeprefix("$").removeprefix(".") or None
    hint = "check the spelling against the configuration reference (docs/configuration.md)"
    invalid = _ATTRS_MESSAGE.match(what)
    if invalid:
        key = f"{key}.{invalid.group(1)}" if key else invalid.group(1)
        what = f"{invalid.group(2)}, not {invalid.group(3)}"
        hint = "see the configuration reference (docs/configuration.md)"
    elif what in named:  # any other validator's message
        field, what = named[what]
        key = f"{key}.{field}" if key else field
        hint = "see the configuration reference (docs/configuration.md)"
    extra = re.match(r"extra fields found \((.*)\)", what)
    if extra:
        names = [n.strip() for n in extra.group(1).split(",")]
        key = f"{key}.{names[0]}" if key else names[0]
        what = f"unknown key{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}"
        if any(is_secret_name(n.strip("'\"")) for n in names):
            hint = "API keys are read only from environment variables, never from config files"
    if len(lines) > 1:
        what = f"{what} (and {len(lines) - 1} more problem{'s' if len(lines) > 2 else ''})"
    variables = [s.removeprefix("env:") for s in _sources_of(sources or {}, key) if s[:4] == "env:"]
    if variables:  # the environment set it: the file is not to blame
        if extra:
            hint = _variable_hint(variables[0], key, prefix, root)
        error = ConfigError(
            f"environment variable {', '.join(variables)}: {redact(what)}", hint=hint
        )
        error.key = key  # named in the message by the variable, which says more
        return error
    return ConfigError(redact(what), path=path, key=key, hint=hint)


#: An attrs validator's message, which names the attribute: ``'name' must ...: value``.
_ATTRS_MESSAGE = re.compile(r"'(\w+)' (must .*): (.*)$")


def _name_validator_errors(exc: BaseException) -> dict[str, tuple[str, str]]:
    """Name the field of every validator's ``ValueError`` in ``exc`` (a cattrs error tree).

    Validators run in the class's ``__init__``, after cattrs has structured each field, so
    cattrs cannot say which field failed; only attrs' own messages name it. Any other message
    is prefixed in place with ``'field' `` (so the formatter keeps it), and the result maps
    each new text to the field and the validator's own message.
    """
    import cattrs

    named: dict[str, tuple[str, str]] = {}
    subs: tuple[BaseException, ...] = getattr(exc, "exceptions", ())
    for sub in subs:
        named |= _name_validator_errors(sub)
    if not isinstance(exc, cattrs.ClassValidationError) or not attrs.has(exc.cl):
        return named
    fields = {field.name for field in attrs.fields(exc.cl)}
    for sub in subs:
        if type(sub) is not ValueError or getattr(sub, "__notes__", None):
            continue  # not a validator's: a field's structuring failed (cattrs names it)
        text = str(sub)
        field = None if _ATTRS_MESSAGE.match(text) else _validated_field(sub, fields)
        if field is not None:
            sub.args = (f"'{field}' {text}",)
            named[str(sub)] = (field, text)
    return named


def _validated_field(error: BaseException, fields: set[str]) -> str | None:
    """The field whose validator raised ``error``: the ``attrs.Attribute`` that a validator is
    passed, in the innermost frame that has one among its arguments."""
    found = None
    tb = error.__traceback__
    while tb is not None:
        code, names = tb.tb_frame.f_code, tb.tb_frame.f_locals
        for name in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]:
            value = names.get(name)
            if isinstance(value, attrs.Attribute) and value.name in fields:
                found = value.name
        tb = tb.tb_next
    return found


def _sources_of(sources: Mapping[str, str], key: str | None) -> list[str]:
    """Where ``key`` came from: its own source, an enclosing table's, or those of the keys
    under it (for a misspelt table), without repeats."""
    if not key:
        return []
    if key in sources:
        return [sources[key]]
    parts = key.split(".")
    for end in range(len(parts) - 1, 0, -1):
        enclosing = ".".join(parts[:end])
        if enclosing in sources:
            return [sources[enclosing]]
    return list(dict.fromkeys(s for k, s in sources.items() if k.startswith(f"{key}.")))


def _known_keys(root: Any, parents: list[str]) -> list[str]:
    """The keys allowed under ``parents`` in the settings class ``root``, if known."""
    kind = root
    for part in parents:
        if attrs.has(kind):
            kind = typing.get_type_hints(kind).get(part)
        elif typing.get_origin(kind) in (Mapping, dict):
            kind = typing.get_args(kind)[1]
        else:
            return []
    if not attrs.has(kind):
        return []
    return [f.name for f in attrs.fields(kind) if f.name not in ("path", "sources")]


def _variable_hint(variable: str, key: str | None, prefix: str, root: Any) -> str:
    """How to fix a variable that sets an unknown key: the likely intended name."""
    hint = "variables are named MODELPORT_<SECTION>__<KEY> after the configuration reference"
    parts = (key or "").split(".")
    relative = parts[len(prefix.split(".")) :] if prefix else parts
    known = _known_keys(root if root is not None else Settings, relative[:-1])
    close = difflib.get_close_matches(relative[-1], known, n=1) if relative else []
    segments = variable.removeprefix(ENV_PREFIX).split("__")
    if close and len(segments) >= len(parts):
        segments[len(parts) - 1] = close[0].upper()
        return f"did you mean {ENV_PREFIX}{'__'.join(segments)}? {hint}"
    return f"check its spelling: {hint}"


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


def _note(sources: dict[str, str], key: str, value: Any, source: str) -> None:
    """Record that ``source`` set ``key`` to ``value`` (a table: each key in it)."""
    if isinstance(value, Mapping) and (value or not key):
        for name, item in value.items():
            _note(sources, f"{key}.{name}" if key else str(name), item, source)
        return
    parts = key.split(".")
    for end in range(1, len(parts)):  # a value replaces whatever was set above or below it
        sources.pop(".".join(parts[:end]), None)
    for below in [k for k in sources if k.startswith(f"{key}.")]:
        del sources[below]
    sources[key] = source


def _from_env(env: Mapping[str, str], sources: dict[str, str] | None = None) -> dict[str, Any]:
    sources = {} if sources is None else sources
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
        _note(sources, ".".join(keys), node[keys[-1]], f"env:{name}")
    plugins: dict[str, Any] = {}
    if disabled := env.get("MODELPORT_DISABLE_PLUGINS", "").strip():
        plugins["disable"] = [n.strip() for n in disabled.split(",") if n.strip()]
        _note(sources, "plugins.disable", plugins["disable"], "env:MODELPORT_DISABLE_PLUGINS")
    if env.get("MODELPORT_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower() in {"1", "true", "yes"}:
        plugins["autoload"] = False
        _note(sources, "plugins.autoload", False, "env:MODELPORT_DISABLE_PLUGIN_AUTOLOAD")
    if extra := env.get("MODELPORT_PLUGINS", "").strip():
        plugins["load"] = [n.strip() for n in extra.split(",") if n.strip()]
        _note(sources, "plugins.load", plugins["load"], "env:MODELPORT_PLUGINS")
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
    sources: dict[str, str] = {}
    _note(sources, "", data, f"file:{file.absolute() if file else file}")
    data = _merge(data, _from_env(env, sources))
    if overrides:
        data = _merge(data, overrides)
        _note(sources, "", overrides, "override")
    for reserved in ("path", "sources"):  # set below, never by the user
        if reserved in data:
            origin = _sources_of(sources, reserved)
            where = origin[0].partition(":")[2] if origin else None
            raise ConfigError(
                f"unknown key {reserved!r}",
                path=where,
                hint="check the spelling against the configuration reference "
                "(docs/configuration.md)",
            )
    data["path"] = str(file) if file else None
    data["sources"] = sources
    from .serialization import converter

    try:
        settings = converter.structure(data, Settings)
    except Exception as exc:
        raise _structure_error(exc, "", data["path"], sources) from None
    if settings.default_assistant is not None:
        settings.assistant(settings.default_assistant)  # fail early on a dangling default
    return settings
