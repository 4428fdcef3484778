"""``modelport plugin new``: the distribution it writes loads as a plugin, is listed, and
passes its conformance suites as generated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelport.cli import cli

LISTING = """
import importlib, sys
from modelport import make_plugins
name, module = sys.argv[1], sys.argv[2]
plugins = make_plugins(autoload=False, plugins=[(name, importlib.import_module(module))])
for info in plugins.infos():
    for offer in info.offers:
        print(info.name, info.status, offer.name, ",".join(offer.capabilities))
"""


def _new(tmp_path: Path, name: str, *flags: str) -> Path:
    result = CliRunner().invoke(cli, ["plugin", "new", name, *flags, "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / f"modelport-{name}"
    assert str(root / "pyproject.toml") in result.stdout
    return root


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), *sys.path])
    return env


@pytest.mark.parametrize(
    ("name", "flags", "capabilities"),
    [
        ("acme", ("--capability", "chat", "--capability", "vision"), "chat,vision"),
        ("vault", ("--capability", "storage"), "storage"),
        ("moods", ("--capability", "sentiment"), "sentiment"),
    ],
)
def test_a_scaffolded_plugin_loads_is_listed_and_passes_its_suites(
    tmp_path: Path, name: str, flags: tuple[str, ...], capabilities: str
) -> None:
    root = _new(tmp_path, name, *flags)
    pyproject = (root / "pyproject.toml").read_text()
    assert f'[project.entry-points.modelport]\n{name} = "modelport_{name}"' in pyproject
    assert (root / "README.md").is_file()
    listed = subprocess.run(
        [sys.executable, "-c", LISTING, name, f"modelport_{name}"],
        env=_env(root),
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.split() == [name, "loaded", name, capabilities]
    suites = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=root,
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert suites.returncode == 0, suites.stdout[-3000:] + suites.stderr[-2000:]
    assert " passed" in suites.stdout


def test_a_scaffold_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["plugin", "new", "Acme!", "-c", "chat", "--dir", str(tmp_path)])
    assert bad.exit_code == 1
    assert "cannot name a plugin" in bad.stderr
    local = runner.invoke(
        cli, ["plugin", "new", "acme", "-c", "chat", "--no-http", "--dir", str(tmp_path)]
    )
    assert local.exit_code == 1
    assert "HTTP kit only" in local.stderr
    _new(tmp_path, "acme", "-c", "storage")
    again = runner.invoke(cli, ["plugin", "new", "acme", "-c", "chat", "--dir", str(tmp_path)])
    assert again.exit_code == 1
    assert "exists already" in again.stderr
    assert "Traceback" not in again.output


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("openai", "the package 'modelport_openai' is installed"),  # a shipped plugin
        ("azure", "offers a backend named 'azure'"),  # a backend of one
    ],
)
def test_a_scaffold_refuses_a_name_that_is_taken(tmp_path: Path, name: str, why: str) -> None:
    taken = CliRunner().invoke(cli, ["plugin", "new", name, "-c", "chat", "--dir", str(tmp_path)])
    assert taken.exit_code == 1
    assert why in taken.stderr
    assert list(tmp_path.iterdir()) == []
