"""The two rules of docs/architecture.md, checked on the source (parsed with ``ast``, not run).

* **Plugins use only public names.** No module of a shipped plugin (``plugins/``) or of the
  worked third-party plugin (``examples/modelport-ollama``) imports a private module of
  modelport (``modelport._runtime``, ``modelport.testing._fakes``, ...) or a private name
  (``from modelport.hub import _Turn``), or reaches one as an attribute (``modelport._usage``).
  So whatever a shipped plugin does, anyone's plugin can.
* **Core never imports a plugin.** No module under ``core/modelport`` imports a
  ``modelport_*`` package (by ``import``, ``from ... import`` or ``importlib.import_module``);
  the core finds plugins only through the ``modelport`` entry-point group.

The core naming no vendor at all is ``tests/core/test_public_api.py::test_core_names_no_vendor``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core" / "modelport"
#: Where plugin code lives: the shipped plugins, and the worked third-party plugin.
PLUGIN_ROOTS = (
    ROOT / "plugins",
    ROOT / "examples" / "modelport-ollama" / "src",
    ROOT / "examples" / "modelport-ollama" / "tests",
)


def _private(part: str) -> bool:
    """``_name`` is private; ``__version__``-style dunders are not."""
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _is_modelport(module: str) -> bool:
    return module == "modelport" or module.startswith("modelport.")


def _is_plugin(module: str) -> bool:
    return module.split(".", maxsplit=1)[0].startswith("modelport_")


def _imported_modules(tree: ast.AST) -> Iterator[tuple[int, str, list[str]]]:
    """``(line, absolute module, names imported from it)`` for every absolute import, and for
    ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if (
                name in {"import_module", "__import__"}
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                yield node.lineno, first.value, []


def private_uses(source: str, where: str = "<string>") -> list[str]:
    """Every use of a private modelport module or name in plugin ``source``."""
    tree = ast.parse(source, where)
    found = []
    for line, module, names in _imported_modules(tree):
        if not _is_modelport(module):
            continue
        if any(_private(part) for part in module.split(".")):
            found.append(f"{where}:{line}: imports the private module {module}")
        found.extend(
            f"{where}:{line}: imports the private name {name} from {module}"
            for name in names
            if _private(name)
        )
    for node in ast.walk(tree):  # import modelport; modelport._usage.UsageLedger
        if isinstance(node, ast.Attribute) and _private(node.attr):
            chain = node.value
            while isinstance(chain, ast.Attribute) and not _private(chain.attr):
                chain = chain.value
            if isinstance(chain, ast.Name) and chain.id == "modelport":
                found.append(f"{where}:{node.lineno}: reaches the private modelport.{node.attr}")
    return found


def plugin_imports(source: str, where: str = "<string>") -> list[str]:
    """Every import of a plugin package (``modelport_*``) in core ``source``."""
    return [
        f"{where}:{line}: imports the plugin {module}"
        for line, module, _ in _imported_modules(ast.parse(source, where))
        if _is_plugin(module)
    ]


def _modules(*roots: Path) -> list[Path]:
    return sorted(path for root in roots for path in root.rglob("*.py"))


def _read(path: Path) -> tuple[str, str]:
    return path.read_text(encoding="utf-8"), str(path.relative_to(ROOT))


def test_plugins_use_only_public_names() -> None:
    modules = _modules(*PLUGIN_ROOTS)
    assert len(modules) > 10, "the plugin sources moved: update PLUGIN_ROOTS"
    offences = [found for path in modules for found in private_uses(*_read(path))]
    assert offences == []


def test_core_never_imports_a_plugin() -> None:
    modules = _modules(CORE)
    assert len(modules) > 20, "the core moved: update CORE"
    offences = [found for path in modules for found in plugin_imports(*_read(path))]
    assert offences == []


@pytest.mark.parametrize(
    "source",
    [
        "import modelport._runtime",
        "import modelport._runtime as rt",
        "from modelport._usage import UsageLedger",
        "from modelport.testing._fakes import FakeChat",
        "from modelport import _redact",
        "from modelport.hub import Hub, _Turn",
        "import modelport\nledger = modelport._usage.UsageLedger",
        "import modelport.logs\nmodelport.logs._redact_value('x')",
        "import importlib\nimportlib.import_module('modelport._circuit')",
    ],
)
def test_a_private_import_in_a_plugin_is_caught(source: str) -> None:
    assert len(private_uses(source)) == 1, source


def test_public_imports_in_a_plugin_pass() -> None:
    source = """
from __future__ import annotations
import modelport
import modelport.errors
from modelport import BackendContext, Hub, hookimpl
from modelport.testing.conformance import ChatConformance
from . import _wire
from ._wire import _request
from other_package import _anything
print(modelport.__version__, modelport.errors.ConfigError, _wire._x)
"""
    assert private_uses(source) == []


@pytest.mark.parametrize(
    "source",
    [
        "import modelport_openai",
        "from modelport_jsonfile._store import JsonFileStore",
        "def f():\n    from modelport_sql import plugin",
        "import importlib\nimportlib.import_module('modelport_keywords')",
    ],
)
def test_a_plugin_import_in_core_is_caught(source: str) -> None:
    assert len(plugin_imports(source)) == 1, source


def test_core_imports_of_its_own_and_third_party_modules_pass() -> None:
    source = "import modelport\nfrom . import _runtime\nfrom .hub import Hub\nimport pluggy\n"
    assert plugin_imports(source) == []
