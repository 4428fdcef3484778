"""The settings in effect, and where each came from: what ``modelport config show`` prints.

Not only what was set: each capability's backend (as the hub would choose it), that backend's
settings as it will use them (a preset's URL and model included, when its settings class
reports them through ``effective()``; see :class:`modelport.config.EffectiveSetting`), the
assistants with the model each will really ask, and every core section with its defaults.
Secrets are masked with the same redaction the logs and errors use.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any

import attrs

from ._redact import redact, redact_data
from .config import EffectiveSetting, Settings
from .errors import ModelportError
from .registry import BackendRegistry
from .types import Capability

__all__ = ["Shown", "assistant_rows", "effective_settings", "render_key", "source_text"]

Path = tuple[str, ...]

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")
#: The core sections shown after the backends and assistants, in this order.
_SECTIONS = ("retry", "limits", "plugins", "images", "training")


@attrs.frozen
class Shown:
    """One setting in effect.

    :ivar path: its keys, outermost first (``("backends", "jsonfile", "root")``).
    :ivar value: the value in effect (plain data; ``None`` when there is none).
    :ivar source: ``"default"``, ``"file:<path>"``, ``"env:<VARIABLE>"`` or ``"override"``.
    :ivar error: why the value could not be worked out, if it could not.
    """

    path: Path
    value: Any
    source: str
    error: str | None = None

    @property
    def key(self) -> str:
        return render_key(self.path)


def render_key(path: Path) -> str:
    """``path`` as a dotted TOML key, quoting the keys that need it."""
    return ".".join(p if _BARE.match(p) else _quoted(p) for p in path)


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped) + '"'


def source_text(source: str) -> str:
    """A source as a person reads it: ``default``, the file's path, ``env VAR``, ``override``."""
    kind, _, rest = source.partition(":")
    if kind == "file":
        return rest
    if kind == "env":
        return f"env {rest}"
    return source


def _plain(value: Any) -> Any:
    """``value`` as JSON-like data."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if attrs.has(type(value)):
        return _plain(attrs.asdict(value))
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _leaves(path: Path, value: Any) -> Iterator[tuple[Path, Any]]:
    """Every key under ``path`` with its value; an empty table is a value of its own."""
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _leaves((*path, str(key)), item)
    else:
        yield path, value


def _source(settings: Settings, path: Path) -> str:
    """Where the key at ``path`` came from, by the config's own record."""
    sources = settings.sources
    for end in range(len(path), 0, -1):  # the key itself, else the table that set it
        found = sources.get(".".join(path[:end]))
        if found is not None:
            return found
    return "default"


def _attrs_rows(settings: Settings, path: Path, obj: Any) -> Iterator[Shown]:
    for leaf, value in _leaves(path, _plain(attrs.asdict(obj))):
        if value is not None:
            yield Shown(leaf, value, _source(settings, leaf))


def _capability_rows(
    settings: Settings, registry: BackendRegistry, in_use: dict[str, list[str]]
) -> Iterator[Shown]:
    for capability in Capability:
        path = ("capabilities", capability.value)
        chosen = settings.capabilities.get(capability)
        source = _source(settings, path) if chosen is not None else "default"
        try:
            name = registry.select(capability, chosen).name
        except ModelportError as exc:
            yield Shown(path, chosen, source, error=str(exc))
            continue
        in_use.setdefault(name, []).append(capability.value)
        yield Shown(path, name, source)


def _backend_rows(
    settings: Settings, registry: BackendRegistry, name: str, env: Mapping[str, str]
) -> tuple[list[Shown], dict[str, Any]]:
    """The backend's settings in effect, and those values by key (for the assistants)."""
    path = ("backends", name)
    spec = registry.get(name)
    if spec is None:
        return [Shown(path, None, _source(settings, path), error="no plugin offers it")], {}
    if spec.settings is None:
        return [], {}
    try:
        section = settings.backend_settings(name, spec.settings)
        reported = getattr(section, "effective", None)
        if callable(reported):
            values: Mapping[str, Any] = reported(name, env)
        else:
            values = {f.name: getattr(section, f.name) for f in attrs.fields(type(section))}
    except ModelportError as exc:
        return [Shown(path, None, _source(settings, path), error=str(exc))], {}
    except Exception as exc:  # a plugin's effective() failed: show the rest all the same
        error = f"its plugin failed to report them: {type(exc).__name__}: {exc}"
        return [Shown(path, None, _source(settings, path), error=error)], {}
    rows: list[Shown] = []
    plain: dict[str, Any] = {}
    for key, item in values.items():
        setting = item if isinstance(item, EffectiveSetting) else EffectiveSetting(item)
        plain[key] = _plain(setting.value)
        for leaf, value in _leaves((*path, key), plain[key]):
            if value is not None:
                rows.append(Shown(leaf, value, setting.source or _source(settings, leaf)))
    return rows, plain


def assistant_rows(
    settings: Settings,
    registry: BackendRegistry,
    env: Mapping[str, str],
    models: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Each assistant profile with the backend and model it really uses: ``name``,
    ``default``, ``model``, ``model_source``, ``backend``, ``description``, ``instructions``.

    :param models: each backend's model in effect by name, when already worked out.
    """
    models = dict(models or {})
    chat: str | None
    try:
        chat = registry.select(Capability.CHAT, settings.capabilities.get(Capability.CHAT)).name
    except ModelportError:
        chat = None
    rows = []
    for name, profile in settings.assistants.items():
        backend = profile.backend or chat
        path = ("assistants", name, "model")
        model, source = profile.model, _source(settings, path)
        if model is None and backend is not None:
            if backend not in models:
                models[backend] = _backend_rows(settings, registry, backend, env)[1].get("model")
            model, source = models[backend], f"default (backends.{backend}.model)"
        rows.append(
            {
                "name": name,
                "default": name == settings.default_assistant,
                "model": model,
                "model_source": source,
                "backend": backend,
                "description": profile.description,
                "instructions": profile.instructions,
            }
        )
    return rows


def effective_settings(
    settings: Settings, registry: BackendRegistry, env: Mapping[str, str]
) -> list[Shown]:
    """Every setting in effect, secrets masked, in the order ``config show`` prints them.

    :param registry: the backends the installed plugins offer.
    :param env: the environment the backends read (their presets' variables).
    """
    in_use: dict[str, list[str]] = {}
    rows = list(_capability_rows(settings, registry, in_use))
    for profile in settings.assistants.values():
        if profile.backend:
            in_use.setdefault(profile.backend, [])
    for name in settings.backends:
        in_use.setdefault(name, [])
    models: dict[str, Any] = {}
    for name in in_use:
        backend_rows, values = _backend_rows(settings, registry, name, env)
        rows += backend_rows
        models[name] = values.get("model")
    default = settings.default_assistant
    rows.append(Shown(("default_assistant",), default, _source(settings, ("default_assistant",))))
    for row in assistant_rows(settings, registry, env, models):
        base = ("assistants", row["name"])
        rows.append(Shown((*base, "model"), row["model"], row["model_source"]))
        rows.append(
            Shown((*base, "backend"), row["backend"], _source(settings, (*base, "backend")))
        )
        profile = settings.assistants[row["name"]]
        shown = attrs.evolve(profile, model=None, backend=None)
        rows += _attrs_rows(settings, base, shown)
    for section in _SECTIONS:
        value = getattr(settings, section)
        if isinstance(value, Mapping):
            for name, item in value.items():
                rows += _attrs_rows(settings, (section, name), item)
        else:
            rows += _attrs_rows(settings, (section,), value)
    return _masked([r for r in rows if r.value not in ([], {}) or r.source != "default"])


def _masked(rows: list[Shown]) -> list[Shown]:
    """``rows`` with every secret masked, as the logs and errors mask them."""
    tree: dict[str, Any] = {}
    for row in rows:
        node: Any = tree
        for key in row.path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node[row.path[-1]] = row.value
    clean = redact_data(tree)
    masked = []
    for row in rows:
        found: Any = clean
        for key in row.path:
            found = found.get(key) if isinstance(found, Mapping) else None
        value = row.value
        if found != value and isinstance(value, str | list | dict):
            value = found  # flags and numbers are no secrets, whatever their key
        error = redact(row.error) if row.error else row.error
        masked.append(attrs.evolve(row, value=value, error=error))
    return masked
