"""The backend registry plugins fill through ``modelport_register_backends``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from .errors import BackendNotFoundError, PluginError
from .types import Capability

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
    """

    name: str
    factory: Callable[[Any], object] = attrs.field(eq=False)
    capabilities: frozenset[Capability]
    settings: type[Any] | None = None
    default_for: frozenset[Capability] = frozenset()
    plugin: str = "?"
    description: str = ""


@attrs.define
class BackendRegistry:
    """Collects the backends plugins offer. Plugins call :meth:`add`; the core reads."""

    _specs: dict[str, BackendSpec] = attrs.field(factory=dict)
    #: Set by the core to the plugin whose hook is running, so each spec knows its plugin.
    current_plugin: str = "?"

    def add(
        self,
        name: str,
        factory: Callable[[Any], object],
        *,
        capabilities: Iterable[Capability | str],
        settings: type[Any] | None = None,
        default_for: Iterable[Capability | str] = (),
        description: str = "",
    ) -> BackendSpec:
        """Offer a backend.

        :param name: lower-case letters, digits, ``-`` and ``_``; unique across plugins.
        :param factory: ``factory(context) -> backend``; called lazily, once per hub.
        :param capabilities: the capabilities the backend object implements.
        :param settings: a frozen attrs class its config section is structured into.
        :param default_for: capabilities it serves when config names no backend.
        :raises modelport.errors.PluginError: for a bad or duplicate name, or an unknown
            capability.
        """
        if not _NAME.match(name):
            raise PluginError(
                f"backend name {name!r} must be lower-case letters, digits, '-' or '_'",
                plugin=self.current_plugin,
            )
        if name in self._specs:
            raise PluginError(
                f"backend {name!r} is already offered by plugin {self._specs[name].plugin!r}",
                plugin=self.current_plugin,
                hint="block one of the two plugins (MODELPORT_DISABLE_PLUGINS) or rename",
            )
        try:
            caps = frozenset(Capability(c) for c in capabilities)
            defaults = frozenset(Capability(c) for c in default_for)
        except ValueError as exc:
            raise PluginError(str(exc), plugin=self.current_plugin) from None
        if not caps or not defaults <= caps:
            raise PluginError(
                f"backend {name!r}: capabilities must be non-empty and include default_for",
                plugin=self.current_plugin,
            )
        spec = BackendSpec(
            name=name,
            factory=factory,
            capabilities=caps,
            settings=settings,
            default_for=defaults,
            plugin=self.current_plugin,
            description=description,
        )
        self._specs[name] = spec
        return spec

    def discard_plugin(self, plugin: str) -> None:
        """Forget every backend ``plugin`` offered (used when its registration failed)."""
        for name in [n for n, s in self._specs.items() if s.plugin == plugin]:
            del self._specs[name]

    def __iter__(self) -> Any:
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
