"""Runs the examples in README.md and docs/ as tests (Sybil), so none can drift.

* ```python blocks run in order, one namespace per document, in a fresh temporary directory
  with no MODELPORT_* variables and no network.
* ```toml blocks are parsed. A modelport config (any block whose keys are modelport's) is
  validated against the real settings classes, each ``[backends.<name>]`` section against the
  settings class its installed plugin declares. A block after ``<!-- file: NAME -->`` is also
  written to NAME in the document's directory, for the python blocks that follow.
* ```bash and ```text blocks: every ``modelport ...`` command line in them must parse against
  the real CLI (the command exists, its options exist, the arguments fit).
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

from modelport import load_settings, make_plugins
from modelport.testing import block_network

pytest_plugins = ["pytester"]  # tests/conformance runs the suites against broken backends

_FILE_MARKER = re.compile(r"<!--\s*file:\s*(\S+)\s*-->\s*$")
#: Top-level keys of a TOML block that make it a modelport config (not a pyproject, say).
_CONFIG_KEYS = {
    "capabilities", "backends", "assistants", "default_assistant", "retry", "circuit", "limits",
    "plugins", "images", "training",
}  # fmt: skip


@pytest.fixture(scope="module")
def doc_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One directory per document, shared by its examples (a file one writes, the next reads)."""
    tmp_path = tmp_path_factory.mktemp("doc")
    with pytest.MonkeyPatch.context() as monkeypatch, block_network():
        for name in list(os.environ):
            if name.startswith("MODELPORT_") or name.endswith("_API_KEY"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
        monkeypatch.chdir(tmp_path)
        yield tmp_path


def _marker_before(example: Example) -> str | None:
    before = example.document.text[: example.region.start].rstrip().splitlines()
    found = _FILE_MARKER.search(before[-1]) if before else None
    return found.group(1) if found else None


def evaluate_toml(example: Example) -> None:
    text = str(example.parsed)
    where = f"{example.path}:{example.line}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AssertionError(f"{where}: the TOML example does not parse: {exc}") from None
    if data and set(data) <= _CONFIG_KEYS:
        _validate_config(data, where)
    name = _marker_before(example)
    if name is not None:
        sandbox: Path = example.namespace["doc_sandbox"]
        (sandbox / name).write_text(text, encoding="utf-8")


def _validate_config(data: dict[str, Any], where: str) -> None:
    settings = load_settings(overrides=data, env={}, search=False)
    specs = {spec.name: spec for spec in make_plugins(autoload=True).registry}
    for name in settings.backends:
        spec = specs.get(name)
        if spec is None:  # a plugin the reader is writing, or one not installed here
            continue
        if spec.settings is not None:
            settings.backend_settings(name, spec.settings)  # ConfigError names the bad key


def evaluate_commands(example: Example) -> None:
    from modelport.cli import cli

    text = str(example.parsed).replace("\\\n", " ")
    for line in text.splitlines():
        found = re.search(r"(?:^|[\s/])modelport\s+(.*)$", line)
        if found is None or line.lstrip().startswith("#"):
            continue
        command = found.group(1).split(" #", 1)[0].split("|", 1)[0].split("&&", 1)[0]
        if "..." in command or "[" in command:  # a usage summary, not a command line
            continue
        try:
            args = shlex.split(command)
        except ValueError as exc:
            raise AssertionError(f"{example.path}:{example.line}: {line!r}: {exc}") from None
        try:
            _parse_subcommands(cli, args)
        except click.exceptions.Exit:
            continue
        except click.BadParameter as exc:
            if "does not exist" in str(exc):  # the reader's own file
                continue
            raise AssertionError(
                f"{example.path}:{example.line}: `modelport {command}` does not parse: {exc}"
            ) from None
        except click.UsageError as exc:
            raise AssertionError(
                f"{example.path}:{example.line}: `modelport {command}` does not parse: {exc}"
            ) from None


def _parse_subcommands(group: click.Group, args: list[str]) -> None:
    context = group.make_context("modelport", list(args))
    while isinstance(context.command, click.Group):
        # what the group left for its subcommand (``protected_args`` before click 9)
        rest = [*getattr(context, "_protected_args", ()), *context.args]
        if not rest:
            break
        name, *rest = rest
        sub = context.command.get_command(context, name)
        if sub is None:
            raise click.UsageError(f"no such command {name!r}")
        context = sub.make_context(name, rest, parent=context)


pytest_collect_file = Sybil(
    parsers=[
        PythonCodeBlockParser(),
        CodeBlockParser(language="toml", evaluator=evaluate_toml),
        CodeBlockParser(language="bash", evaluator=evaluate_commands),
        CodeBlockParser(language="text", evaluator=evaluate_commands),
        SkipParser(),
    ],
    patterns=["*.md"],
    fixtures=["doc_sandbox"],
).pytest()
