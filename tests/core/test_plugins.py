"""Plugins: found through entry points, blocked by name, failures isolated and reported."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from modelport import Capability, Hub, hookimpl, load_settings, make_plugins
from modelport.errors import BackendNotFoundError, PluginBlockedError, PluginError
from modelport.testing import FakeBackends

MakeDist = Callable[..., None]


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakeDist:
    """Install a tiny distribution on sys.path: a module and its modelport entry point."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def make(dist: str, name: str, module: str, source: str, version: str = "1.0") -> None:
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[modelport]\n{name} = {module}\n")
        monkeypatch.delitem(sys.modules, module, raising=False)

    return make


GOOD = """
    from modelport import hookimpl

    class Echo:
        def __init__(self, context):
            self.settings = context.settings
        def complete(self, request): ...
        def stream(self, request): ...
        def models(self): return []

    @hookimpl
    def modelport_register_backends(registry):
        registry.add("echo", Echo, capabilities=["chat"], default_for=["chat"])
"""


def test_entry_point_plugins_load_with_distribution_and_backends(make_dist: MakeDist) -> None:
    make_dist("acme-echo", "echo", "acme_echo", GOOD, version="2.1")
    plugins = make_plugins(blocked=["openai"])  # the shipped default for chat, else two claim it
    info = next(i for i in plugins.infos() if i.name == "echo")
    assert (info.status, info.distribution, info.version, info.backends) == (
        "loaded", "acme-echo", "2.1", ("echo",)
    )  # fmt: skip
    assert plugins.registry.select(Capability.CHAT, None).name == "echo"


def test_autoload_off_loads_no_entry_point(make_dist: MakeDist) -> None:
    make_dist("acme-echo", "echo", "acme_echo", GOOD)
    assert "echo" not in {i.name for i in make_plugins(autoload=False).infos()}
    settings = load_settings(env={"MODELPORT_DISABLE_PLUGIN_AUTOLOAD": "1"}, search=False)
    assert not Hub(settings).plugins.manager.has_plugin("echo")


def test_a_plugin_that_fails_to_import_is_reported_and_others_load(make_dist: MakeDist) -> None:
    make_dist("acme-echo", "echo", "acme_echo", GOOD)
    make_dist("broken", "broken", "broken_plugin", "raise RuntimeError('no config for you')\n")
    plugins = make_plugins()
    assert plugins.manager.has_plugin("echo")
    failure = plugins.failures["broken"]
    assert "failed to import 'broken_plugin'" in str(failure)
    assert "RuntimeError: no config for you" in str(failure)
    info = next(i for i in plugins.infos() if i.name == "broken")
    assert info.status == "failed"
    assert info.distribution == "broken"


def test_a_misspelt_hook_is_reported_by_name(make_dist: MakeDist) -> None:
    make_dist("typo", "typo", "typo_plugin", """
        from modelport import hookimpl

        @hookimpl
        def modelport_register_backend(registry):
            pass
    """)  # fmt: skip
    plugins = make_plugins()
    assert "typo" in plugins.failures
    assert "modelport_register_backend" in str(plugins.failures["typo"].__cause__)
    assert not plugins.manager.has_plugin("typo")


def test_a_plugin_whose_registration_raises_loses_only_its_backends(make_dist: MakeDist) -> None:
    make_dist("acme-echo", "echo", "acme_echo", GOOD)
    make_dist("half", "half", "half_plugin", """
        from modelport import hookimpl

        @hookimpl
        def modelport_register_backends(registry):
            registry.add("half-a", object, capabilities=["chat"])
            raise ValueError("oops")
    """)  # fmt: skip
    plugins = make_plugins()
    names = {s.name for s in plugins.registry}
    assert "echo" in names
    assert "half-a" not in names
    assert "ValueError: oops" in str(plugins.failures["half"])


def test_a_backend_name_offered_twice_names_both_plugins(make_dist: MakeDist) -> None:
    make_dist("acme-echo", "echo", "acme_echo", GOOD)
    make_dist("copycat", "copycat", "copycat_plugin", GOOD)
    plugins = make_plugins()
    assert len(plugins.failures) == 1
    ((loser, error),) = plugins.failures.items()
    winner = "echo" if loser == "copycat" else "copycat"
    assert f"already offered by plugin {winner!r}" in str(error)


def test_blocked_plugins_do_not_load_and_say_so(make_dist: MakeDist) -> None:
    make_dist("acme-echo", "echo", "acme_echo", GOOD)
    settings = load_settings(
        env={"MODELPORT_DISABLE_PLUGINS": "echo", "MODELPORT_CAPABILITIES__CHAT": "echo"},
        search=False,
    )
    hub = Hub(settings)
    assert not hub.plugins.manager.has_plugin("echo")
    assert next(i for i in hub.plugins.infos() if i.name == "echo").status == "blocked"
    with pytest.raises(PluginBlockedError) as info:
        hub.models()
    assert "MODELPORT_DISABLE_PLUGINS" in str(info.value)


def test_unknown_backend_name_lists_the_choices() -> None:
    fakes = FakeBackends()
    settings = load_settings(overrides={"capabilities": {"chat": "gpt"}}, env={}, search=False)
    hub = Hub(settings, plugins=make_plugins(autoload=False, plugins=[fakes]))
    with pytest.raises(BackendNotFoundError) as info:
        hub.ask("hi")
    assert str(info.value) == (
        "key 'capabilities.chat': no chat backend named 'gpt' "
        "(set [capabilities] chat = one of: fake-chat)"
    )


def test_registry_rejects_bad_names_and_capabilities() -> None:
    from modelport import BackendRegistry

    registry = BackendRegistry()
    with pytest.raises(PluginError, match="lower-case"):
        registry.add("Bad Name", object, capabilities=["chat"])
    with pytest.raises(PluginError, match="'telepathy' is not a valid Capability"):
        registry.add("ok", object, capabilities=["telepathy"])
    with pytest.raises(PluginError, match="include default_for"):
        registry.add("ok", object, capabilities=["chat"], default_for=["vision"])


class Recorder:
    def __init__(self) -> None:
        self.exchanges: list[object] = []
        self.failures: list[object] = []

    @hookimpl
    def modelport_on_exchange(self, exchange: object) -> None:
        self.exchanges.append(exchange)

    @hookimpl
    def modelport_on_error(self, failure: object) -> None:
        self.failures.append(failure)


class Exploder:
    @hookimpl
    def modelport_on_exchange(self, exchange: object) -> None:
        raise RuntimeError("observer bug")


def test_a_failing_observer_never_reaches_the_caller_or_other_observers() -> None:
    from modelport.testing import make_test_hub

    recorder = Recorder()
    hub = make_test_hub(plugins=[recorder, Exploder()])
    assert hub.ask("hi").text == "echo: hi"
    assert recorder.exchanges  # still called, though Exploder raised


def test_hooks_run_last_registered_first_and_configure_sees_settings() -> None:
    order: list[str] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        @hookimpl
        def modelport_configure(self, settings: object) -> None:
            order.append(self.name)

    plugins = make_plugins(
        autoload=False, plugins=[("first", Named("first")), ("second", Named("second"))]
    )
    plugins.configure(load_settings(env={}, search=False))
    assert order == ["second", "first"]


@pytest.mark.parametrize("style", ["wrapper", "hookwrapper"])
def test_a_wrapper_implementation_is_refused_at_load_not_silently_dropped(style: str) -> None:
    from collections.abc import Generator

    from modelport import hookimpl, make_plugins

    class Wrapping:
        @hookimpl(**{style: True})  # type: ignore[call-overload, misc]
        def modelport_on_exchange(self, exchange: object) -> Generator[None, None, None]:
            yield

    class Plain:
        @hookimpl
        def modelport_on_exchange(self, exchange: object) -> None: ...

    plugins = make_plugins(autoload=False, plugins=[("wrapping", Wrapping()), ("plain", Plain())])
    error = plugins.failures["wrapping"]
    assert "modelport_on_exchange as a wrapper, which modelport never runs" in str(error)
    assert "plain @hookimpl" in str(error)
    assert not plugins.manager.has_plugin("wrapping")
    assert plugins.manager.has_plugin("plain")
    assert "plain" not in plugins.failures
