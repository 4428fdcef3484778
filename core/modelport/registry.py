"""The backend registry plugins fill through ``modelport_register_backends``.

The core hands each plugin's hook its own registrar, :meth:`BackendRegistry.for_plugin`: a
view of the one registry that records that plugin in every backend it adds. So an error names
the plugin that made it without any shared "current plugin" state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs

from .errors import BackendNotFoundError, PluginError
from .types import Capability

if TYPE_CHECKING:
    from .backends import BackendContext

S = TypeVar("S")

__all__ = ["BackendRegistry", "BackendSpec"]

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


@attrs.frozen
class BackendSpec:
    """One backend a plugin offers.

    :ivar name: unique across plugins; the key of its ``[backends.<name>]`` config section.
    :ivar factory: builds the backend object from a :class:`modelport.BackendContext`. One
        object serves every capability the backend offers (so it can share one client).
    :ivar capabilities: what the object implements (checked against the protocols).
    :ivar settings: a frozen attrs class for the config section, or ``None`` for none.
    :ivar default_for: capabilities this backend serves when config names none.
    :ivar plugin: the name of the plugin that offered it.
    :ivar description: one line saying what it is (``modelport plugins`` shows it).
    :ivar docs: where its documentation is (a URL): a mistake in its config section points
        there. Empty: the plugin distribution's ``Project-URL`` (``Documentation``, else
        ``Homepage``) is used when it has one.
    """

    name: str
    factory: Callable[[Any], object] = attrs.field(eq=False)
    capabilities: frozenset[Capability]
    settings: type[Any] | None = None
    default_for: frozenset[Capability] = frozenset()
    plugin: str = "?"
    description: str = ""
    docs: str = ""


@attrs.define
class BackendRegistry:
    """Collects the backends plugins offer. Plugins call :meth:`add`; the core reads.

    A plugin's ``modelport_register_backends(registry)`` receives the registrar of that plugin
    (:meth:`for_plugin`), so every backend it adds records it as ``plugin``.

    :ivar plugin: the plugin this registrar adds backends for (``"?"`` for the registry
        itself, used directly).
    """

    _specs: dict[str, BackendSpec] = attrs.field(factory=dict)
    plugin: str = attrs.field(default="?", kw_only=True, on_setattr=attrs.setters.frozen)

    def for_plugin(self, plugin: str) -> BackendRegistry:
        """The registrar of ``plugin``: a view of this registry (the same backends) whose
        :meth:`add` records ``plugin`` in each spec and names it in each error."""
        return BackendRegistry(self._specs, plugin=plugin)

    @overload
    def add(
        self,
        name: str,
        factory: Callable[[BackendContext[S]], object],
        *,
        capabilities: Iterable[Capability | str],
        settings: type[S],
        default_for: Iterable[Capability | str] = (),
        description: str = "",
        docs: str = "",
    ) -> BackendSpec: ...

    @overload
    def add(
        self,
        name: str,
        factory: Callable[[BackendContext[None]], object],
        *,
        capabilities: Iterable[Capability | str],
        settings: None = None,
        default_for: Iterable[Capability | str] = (),
        description: str = "",
        docs: str = "",
    ) -> BackendSpec: ...

    def add(
        self,
        name: str,
        factory: Callable[[Any], object],
        *,
        capabilities: Iterable[Capability | str],
        settings: type[Any] | None = None,
        default_for: Iterable[Capability | str] = (),
        description: str = "",
        docs: str = "",
    ) -> BackendSpec:
        """Offer a backend.

        :param name: lower-case letters, digits, ``-`` and ``_``; unique across plugins.
        :param factory: ``factory(context) -> backend``; called lazily, once per hub, with a
            :class:`~modelport.BackendContext` whose ``settings`` is an instance of
            ``settings`` (``BackendContext[MySettings]``), or ``None`` without one.
        :param capabilities: the capabilities the backend object implements.
        :param settings: a frozen attrs class its config section is structured into.
        :param default_for: capabilities it serves when config names no backend.
        :param description: one line saying what it is (``modelport plugins`` shows it).
        :param docs: the URL of its documentation, where a mistake in its config section
            points (default: the distribution's ``Documentation`` or ``Homepage`` URL).
        :raises modelport.errors.PluginError: for a bad or duplicate name, or an unknown
            capability, naming this registrar's plugin.
        """
        plugin = self.plugin
        if not _NAME.match(name):
            raise PluginError(
                f"backend name {name!r} must be lower-case letters, digits, '-' or '_'",
                plugin=plugin,
            )
        if name in self._specs:
            raise PluginError(
                f"backend {name!r} is already offered by plugin {self._specs[name].plugin!r}",
                plugin=plugin,
                hint="block one of the two plugins (MODELPORT_DISABLE_PLUGINS) or rename",
            )
        try:
            caps = frozenset(Capability(c) for c in capabilities)
            defaults = frozenset(Capability(c) for c in default_for)
        except ValueError as exc:
            raise PluginError(str(exc), plugin=plugin) from None
        if not caps or not defaults <= caps:
            raise PluginError(
                f"backend {name!r}: capabilities must be non-empty and include default_for",
                plugin=plugin,
            )
        spec = BackendSpec(
            name=name,
            factory=factory,
            capabilities=caps,
            settings=settings,
            default_for=defaults,
            plugin=plugin,
            description=description,
            docs=docs,
        )
        self._specs[name] = spec
        return spec

    def discard_plugin(self, plugin: str) -> None:
        """Forget every backend ``plugin`` offered (used when its registration failed)."""
        for name in [n for n, s in self._specs.items() if s.plugin == plugin]:
            del self._specs[name]

    def __iter__(self) -> Iterator[BackendSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, name: str) -> BackendSpec | None:
        return self._specs.get(name)

    def offering(self, capability: Capability) -> list[BackendSpec]:
        """The backends that offer ``capability``, in registration order."""
        return [s for s in self._specs.values() if capability in s.capabilities]

    def select(self, capability: Capability, name: str | None) -> BackendSpec:
        """The backend to use for ``capability``: ``name`` if given, else the one plugin
        default, else the only backend offering it.

        :raises BackendNotFoundError: saying which names would work.
        """
        offering = self.offering(capability)
        names = [s.name for s in offering]
        if name is not None:
            spec = self._specs.get(name)
            if spec is None:
                raise BackendNotFoundError(capability.value, name, names)
            if capability not in spec.capabilities:
                raise BackendNotFoundError(
                    capability.value,
                    name,
                    names,
                    reason=f"it offers only {', '.join(sorted(spec.capabilities))}",
                )
            return spec
        defaults = [s for s in offering if capability in s.default_for]
        if len(defaults) == 1:
            return defaults[0]
        if len(offering) == 1:
            return offering[0]
        reason = None
        if len(defaults) > 1:
            reason = (
                f"several plugins claim to be the default ({', '.join(s.name for s in defaults)})"
            )
        raise BackendNotFoundError(capability.value, None, names, reason=reason)
