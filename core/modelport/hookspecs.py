"""The hook specifications: how plugins extend modelport.

A leaf module: it imports nothing of modelport at run time, so plugins can import the markers
without pulling in the rest. Hooks are for discovery and observation, not per-request dispatch:
a plugin offers named backends through :func:`modelport_register_backends`, and the core then
calls the chosen backend directly through its typed protocol (see :mod:`modelport.backends`).

Every spec's docstring follows one template (checked by ``tests/core/test_hookspecs.py`` and
documented in ``docs/hooks.md``): a summary line, a ``:param:`` per argument, ``:returns:``,
"Stops at first non-None result (firstresult)." or "Historic: ..." where that applies, and
``.. versionadded::``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from .config import Settings
    from .registry import BackendRegistry
    from .types import CallFailure, Exchange

PROJECT = "modelport"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def modelport_configure(settings: Settings) -> None:
    """Receive the validated settings when a hub is built (once per hub).

    Not historic on purpose: one set of plugins may serve several hubs with different settings,
    and each implementation is called on its own, so one plugin's failure is recorded against
    it without stopping the others.

    :param settings: the frozen settings. A plugin's own backends get their sections already
        structured (see :func:`modelport_register_backends`); use this hook for plugin-wide
        set-up that is not tied to one backend.
    :returns: nothing.

    .. versionadded:: 0.1
    """


@hookspec
def modelport_register_backends(registry: BackendRegistry) -> None:
    """Offer named backends for one or more capabilities.

    Call ``registry.add(name, factory, capabilities=..., settings=...)`` once per backend. The
    factory is called lazily, once per hub, with a :class:`modelport.BackendContext` typed by
    the settings class (``BackendContext[MySettings]``: its ``[backends.<name>]`` section
    structured into ``settings``) and a way to read secrets from the environment. Do no I/O
    and import no vendor SDK here.

    :param registry: this plugin's own registrar (a :class:`~modelport.BackendRegistry` that
        records the plugin in each backend it adds); it collects backends under unique names,
        and a name offered twice is an error that names both plugins.
    :returns: nothing.

    .. versionadded:: 0.1
    """


@hookspec
def modelport_on_exchange(exchange: Exchange) -> None:
    """Observe every successful backend call (audit, metrics, cost).

    Called after each chat completion, finished stream, image description, sentiment analysis,
    storage write and training call, with what was asked, what came back, how long it took and
    after how many attempts. An exception raised here is logged and never reaches the caller
    or the other observers.

    :param exchange: the call, its result, its duration and usage.
    :returns: nothing.

    .. versionadded:: 0.1
    """


@hookspec
def modelport_on_error(failure: CallFailure) -> None:
    """Observe every failed backend attempt, including those that will be retried.

    An exception raised here is logged and never reaches the caller or the other observers.

    :param failure: the call, the error, the attempt number, and whether it will be retried.
    :returns: nothing.

    .. versionadded:: 0.1
    """


@hookspec
def modelport_cli_commands() -> Iterable[click.Command] | None:
    """Add commands (or command groups) to the ``modelport`` command line.

    Called only when the command line needs more than its built-in commands: a name it does
    not know, or the list of commands (``modelport --help``). Build the commands with click
    (``@click.group()``); import what they need inside them, not here. A command named like a
    built-in one (or one another plugin added first) is refused, and a hook that raises is
    reported as one warning line: neither stops the command line.

    :returns: the :class:`click.Command` objects to add (a :class:`click.Group` brings its
        subcommands), or ``None`` for none.

    .. versionadded:: 0.2
    """
