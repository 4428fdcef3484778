"""Finding, loading and listing plugins.

:func:`make_plugins` builds a fresh :class:`Plugins` (nothing happens at import time, and there
is no global manager): it blocks names, registers the plugins handed to it, imports the modules
named in ``load``, then loads the ``modelport`` entry-point group, validating each plugin as it
goes (``check_pending``). A plugin that fails to import, validate or register its backends is
recorded by name with the cause, and the others carry on.

Each hook implementation is called on its own (so one plugin's exception stops no other, and
each plugin's ``modelport_register_backends`` gets its own registrar); a wrapper implementation
could never run that way, so a plugin that declares one is refused when it loads.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Literal

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError
from .logs import get_logger
from .registry import BackendRegistry

if TYPE_CHECKING:
    from .config import Settings
    from .types import CallFailure, Exchange

__all__ = ["ENTRY_POINT_GROUP", "BackendInfo", "PluginInfo", "Plugins", "make_plugins"]

ENTRY_POINT_GROUP = "modelport"


@attrs.frozen
class BackendInfo:
    """One backend a plugin offers, as ``modelport plugins`` lists it."""

    name: str
    capabilities: tuple[str, ...]
    description: str = ""
    docs: str | None = None


@attrs.frozen
class PluginInfo:
    """One plugin, as ``modelport plugins`` lists it.

    :ivar backends: the names of its backends; ``offers`` has each with its capabilities,
        description and documentation.
    """

    name: str
    status: Literal["loaded", "blocked", "failed"]
    distribution: str | None = None
    version: str | None = None
    backends: tuple[str, ...] = ()
    error: str | None = None
    offers: tuple[BackendInfo, ...] = ()
    docs: str | None = None


def distribution_docs(distribution: str | None) -> str | None:
    """The documentation URL a distribution's metadata gives (``Project-URL:
    Documentation``, else ``Homepage``/``Home-page``), or ``None``."""
    if distribution is None:
        return None
    try:
        meta = importlib.metadata.metadata(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    urls: dict[str, str] = {}
    for entry in meta.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        urls[label.strip().lower().replace("-", "").replace("_", "")] = url.strip()
    for label in ("documentation", "docs", "homepage"):
        if urls.get(label):
            return urls[label]
    home = meta.get_all("Home-page") or []
    return str(home[0]) if home and home[0] else None


@attrs.define
class Plugins:
    """The loaded plugins: a pluggy manager, the failures, and the backends they offer."""

    manager: pluggy.PluginManager
    failures: dict[str, PluginError] = attrs.field(factory=dict)
    blocked: frozenset[str] = frozenset()
    distributions: dict[str, tuple[str, str]] = attrs.field(factory=dict)
    _registry: BackendRegistry | None = None

    @property
    def registry(self) -> BackendRegistry:
        """The backends every loaded plugin offers (collected once, on first use)."""
        if self._registry is None:
            self._registry = self._collect()
        return self._registry

    def _impls(self, hook_name: str) -> list[pluggy.HookImpl]:
        # pluggy calls implementations last-registered first; keep that order.
        hook: pluggy.HookCaller = getattr(self.manager.hook, hook_name)
        return list(reversed(hook.get_hookimpls()))

    def _fail(self, name: str, message: str, cause: BaseException | None) -> None:
        error = PluginError(message, plugin=name)
        error.__cause__ = cause
        self.failures[name] = error
        get_logger().warning("plugin_failed", plugin=name, error=str(error))

    def _collect(self) -> BackendRegistry:
        registry = BackendRegistry()
        for impl in self._impls("modelport_register_backends"):
            name = impl.plugin_name
            try:  # each plugin through its own registrar, so its errors name it
                _call_impl(impl, registry=registry.for_plugin(name))
            except Exception as exc:
                registry.discard_plugin(name)
                cause = exc.__cause__ if isinstance(exc, PluginError) else exc
                self._fail(name, f"registering backends failed: {_describe(exc)}", cause)
        return registry

    def configure(self, settings: Settings) -> None:
        """Call every plugin's ``modelport_configure``; a failure is recorded, not raised."""
        for impl in self._impls("modelport_configure"):
            try:
                _call_impl(impl, settings=settings)
            except Exception as exc:
                self._fail(impl.plugin_name, f"configure failed: {_describe(exc)}", exc)

    @property
    def observes_exchanges(self) -> bool:
        """Whether some plugin implements ``modelport_on_exchange`` (cheap: the core builds an
        :class:`~modelport.Exchange` only then)."""
        return bool(self.manager.hook.modelport_on_exchange.get_hookimpls())

    @property
    def observes_errors(self) -> bool:
        """Whether some plugin implements ``modelport_on_error`` (cheap: the core builds a
        :class:`~modelport.CallFailure` only then)."""
        return bool(self.manager.hook.modelport_on_error.get_hookimpls())

    def on_exchange(self, exchange: Exchange) -> None:
        """Tell every ``modelport_on_exchange`` observer of a successful call; an observer's
        exception is logged, never propagated."""
        self._observe("modelport_on_exchange", exchange=exchange)

    def on_error(self, failure: CallFailure) -> None:
        """Tell every ``modelport_on_error`` observer of a failed attempt; an observer's
        exception is logged, never propagated."""
        self._observe("modelport_on_error", failure=failure)

    def _observe(self, hook_name: str, **kwargs: object) -> None:
        for impl in self._impls(hook_name):
            try:
                _call_impl(impl, **kwargs)
            except Exception as exc:
                get_logger().warning(
                    "observer_failed", plugin=impl.plugin_name, hook=hook_name, error=repr(exc)
                )

    def docs_of(self, plugin: str, backend_docs: str = "") -> str | None:
        """Where a plugin's backend is documented: its own ``docs``, else its distribution's
        documentation URL."""
        if backend_docs:
            return backend_docs
        return distribution_docs(self.distributions.get(plugin, (None, None))[0])

    def cli_commands(self) -> tuple[list[tuple[str, object]], list[PluginError]]:
        """The commands plugins add through ``modelport_cli_commands``, as ``(plugin,
        command)``, and a :class:`PluginError` for each plugin whose hook failed (recorded
        nowhere else: its backends still work)."""
        found: list[tuple[str, object]] = []
        problems: list[PluginError] = []
        for impl in self._impls("modelport_cli_commands"):
            try:
                commands = _call_impl(impl)
                items = [] if commands is None else list(commands)  # type: ignore[call-overload]
            except Exception as exc:
                error = PluginError(
                    f"adding its commands failed: {_describe(exc)}", plugin=impl.plugin_name
                )
                error.__cause__ = exc
                problems.append(error)
                continue
            found += [(impl.plugin_name, command) for command in items]
        return found, problems

    def infos(self) -> list[PluginInfo]:
        """Every plugin: loaded, blocked or failed, with its distribution and backends."""
        backends: dict[str, list[str]] = {}
        offers: dict[str, list[BackendInfo]] = {}
        for spec in self.registry:
            backends.setdefault(spec.plugin, []).append(spec.name)
            offers.setdefault(spec.plugin, []).append(
                BackendInfo(
                    spec.name,
                    tuple(sorted(spec.capabilities)),
                    spec.description,
                    spec.docs or None,
                )
            )
        rows: list[PluginInfo] = []
        names = {n for n, _ in self.manager.list_name_plugin() if n is not None}
        for name in sorted(names | set(self.failures) | self.blocked):
            dist, version = self.distributions.get(name, (None, None))
            if name in self.failures:
                status: Literal["loaded", "blocked", "failed"] = "failed"
            elif name in self.blocked:
                status = "blocked"
            else:
                status = "loaded"
            error = self.failures.get(name)
            rows.append(
                PluginInfo(
                    name=name,
                    status=status,
                    distribution=dist,
                    version=version,
                    backends=tuple(backends.get(name, ())) if status == "loaded" else (),
                    error=str(error.__cause__ or error) if error else None,
                    offers=tuple(offers.get(name, ())) if status == "loaded" else (),
                    docs=distribution_docs(dist),
                )
            )
        return rows


def _call_impl(impl: pluggy.HookImpl, **kwargs: object) -> object:
    """Call one implementation with the arguments it asks for (a subset of the spec's, by
    name), as pluggy would. Not through a subset hook caller: pluggy keeps the plugins to
    leave out in a set, and a plugin object need not be hashable (an attrs class with ``eq``)."""
    function: Callable[..., object] = impl.function
    return function(*[kwargs[arg] for arg in impl.argnames])


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _wrappers(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """The hooks ``plugin`` implements as a wrapper (``wrapper=True`` or ``hookwrapper=True``).

    modelport calls each implementation on its own, so that one plugin's failure does not
    stop the others; a wrapper would never run, so it is refused rather than dropped.
    """
    return sorted(
        caller.name
        for caller in pm.get_hookcallers(plugin) or ()
        for impl in caller.get_hookimpls()
        if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper)
    )


def _register(plugins: Plugins, plugin: object, name: str) -> bool:
    pm = plugins.manager
    try:
        pm.register(plugin, name=name)
        pm.check_pending()
        if wrapped := _wrappers(pm, plugin):
            raise PluginError(
                f"implements {', '.join(wrapped)} as a wrapper, which modelport never runs",
                plugin=name,
                hint="implement the hook as a plain @hookimpl; observers see every call",
            )
    except Exception as exc:
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        message = exc.message if isinstance(exc, PluginError) else f"is invalid: {_describe(exc)}"
        plugins._fail(name, message, exc.__cause__ if isinstance(exc, PluginError) else exc)
        if isinstance(exc, PluginError):
            plugins.failures[name].hint = exc.hint
        return False
    return True


def make_plugins(
    *,
    autoload: bool = True,
    blocked: Iterable[str] = (),
    load: Iterable[str] = (),
    plugins: Sequence[object | tuple[str, object]] = (),
) -> Plugins:
    """Build a fresh set of plugins.

    :param autoload: load the ``modelport`` entry-point group (off: only ``plugins``/``load``).
    :param blocked: plugin names never to register (entry-point or given names).
    :param load: dotted module names to import and register as plugins (named by the module).
    :param plugins: plugin objects to register first, each optionally as ``(name, plugin)``.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked = frozenset(blocked)
    result = Plugins(manager=pm, blocked=blocked)
    for name in blocked:
        pm.set_blocked(name)

    for item in plugins:
        name, plugin = item if isinstance(item, tuple) else (None, item)
        name = name or pm.get_canonical_name(plugin)
        if not pm.is_blocked(name):
            _register(result, plugin, name)

    for module_name in load:
        if pm.is_blocked(module_name) or pm.has_plugin(module_name):
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            result._fail(module_name, f"failed to import: {_describe(exc)}", exc)
            continue
        _register(result, module, module_name)

    if autoload:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if pm.is_blocked(ep.name) or pm.has_plugin(ep.name) or ep.name in result.failures:
                continue
            if ep.dist is not None:
                result.distributions[ep.name] = (ep.dist.name, ep.dist.version)
            try:
                plugin = ep.load()
            except Exception as exc:
                result._fail(ep.name, f"failed to import {ep.value!r}: {_describe(exc)}", exc)
                continue
            _register(result, plugin, ep.name)
    result.registry  # noqa: B018  (collect now, so every failure is known up front)
    return result
