"""Plugins extend the command line (``modelport_cli_commands``), ``modelport plugins`` shows
each backend's capabilities and description, and a mistake in a plugin's own config section
points to that plugin's documentation."""

from __future__ import annotations

import json
from typing import Any

import attrs
import click
import pytest
from click.testing import CliRunner, Result

from modelport import BackendRegistry, hookimpl
from modelport.cli import CliState, cli
from modelport.errors import ConfigError
from modelport.testing import FakeBackends, make_test_hub


@click.group()
def acme() -> None:
    """Acme's own commands."""


@acme.command()
def quota() -> None:
    """How much is left."""
    click.echo("42% left")


@click.command("ask")
def hijack() -> None:
    click.echo("hijacked")


@attrs.frozen
class AcmeSettings:
    region: str = "eu"


class Acme:
    def __init__(self, *commands: Any, fail: bool = False) -> None:
        self.commands, self.fail = commands, fail

    @hookimpl
    def modelport_register_backends(self, registry: BackendRegistry) -> None:
        registry.add(
            "acme",
            lambda context: FakeBackends().chat,
            capabilities=["chat", "vision"],
            settings=AcmeSettings,
            description="Acme's chat and vision API",
            docs="https://acme.example/modelport",
        )

    @hookimpl
    def modelport_cli_commands(self) -> Any:
        if self.fail:
            raise RuntimeError("no click today")
        return list(self.commands)


def _run(*args: str, plugin: Acme, overrides: dict[str, Any] | None = None) -> Result:
    hub = make_test_hub(FakeBackends(), plugins=[("acme-plugin", plugin)], overrides=overrides)
    return CliRunner().invoke(cli, list(args), obj=CliState(make_hub=lambda _state: hub))


def test_a_plugin_adds_a_command_group() -> None:
    result = _run("acme", "quota", plugin=Acme(acme))
    assert (result.exit_code, result.stdout) == (0, "42% left\n")
    assert "acme" in _run("--help", plugin=Acme(acme)).stdout


def test_built_in_commands_never_ask_the_plugins() -> None:
    result = _run("models", plugin=Acme(acme, fail=True))
    assert result.exit_code == 0
    assert "warning" not in result.stderr


def test_a_command_clashing_with_a_built_in_is_refused_with_one_warning() -> None:
    result = _run("acme", "quota", plugin=Acme(hijack, acme))
    assert result.exit_code == 0
    (warning,) = result.stderr.splitlines()
    assert warning.startswith("warning: plugin 'acme-plugin': its command 'ask' clashes with")
    assert "built-in" in warning


def test_a_failing_hook_is_a_warning_and_the_command_line_goes_on() -> None:
    result = _run("nosuch", plugin=Acme(fail=True))
    assert result.exit_code == 2  # click's "no such command"
    assert "Traceback" not in result.output
    assert "warning: plugin 'acme-plugin': adding its commands failed: RuntimeError" in (
        result.stderr
    )


def test_plugins_lists_each_backends_capabilities_and_description() -> None:
    result = _run("plugins", plugin=Acme())
    assert "  acme (chat, vision): Acme's chat and vision API" in result.stdout.splitlines()
    data = json.loads(_run("plugins", "--json", plugin=Acme()).stdout)
    (acme_info,) = [p for p in data if p["name"] == "acme-plugin"]
    assert acme_info["offers"] == [
        {
            "name": "acme",
            "capabilities": ["chat", "vision"],
            "description": "Acme's chat and vision API",
            "docs": "https://acme.example/modelport",
        }
    ]


def test_a_mistake_in_a_plugins_section_points_to_its_documentation() -> None:
    hub = make_test_hub(
        FakeBackends(),
        plugins=[("acme-plugin", Acme())],
        overrides={"backends": {"acme": {"regoin": "us"}}},
    )
    with pytest.raises(ConfigError) as caught:
        hub.backend("chat", "acme")
    message = str(caught.value)
    assert "regoin" in message
    assert "https://acme.example/modelport" in message
    assert "docs/configuration.md" not in message
