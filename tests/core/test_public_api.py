"""The public surface: explicit, sorted, importable, typed, and cheap to import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import modelport
import modelport.errors


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert modelport.__all__ == sorted(modelport.__all__)
    for name in modelport.__all__:
        assert getattr(modelport, name) is not None, name


def test_exported_members_say_where_they_live() -> None:
    # like httpx's test_exported_members: each public class and function is defined in a
    # public modelport module, so its documented home is importable
    import inspect

    for name in modelport.__all__:
        member = getattr(modelport, name)
        if inspect.isclass(member) or inspect.isfunction(member):
            module = member.__module__
            assert module.startswith("modelport."), (name, module)
            assert not any(p.startswith("_") for p in module.split(".")), (name, module)


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        modelport.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018


def test_package_is_typed() -> None:
    assert (Path(modelport.__file__).parent / "py.typed").is_file()


def test_errors_module_imports_nothing_of_modelport() -> None:
    source = Path(modelport.errors.__file__).read_text()
    assert "from ." not in source
    assert "import modelport" not in source


def _imported_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(json.loads(out.stdout))


def test_import_modelport_imports_no_plugin_vendor_sdk_or_pillow() -> None:
    loaded = _imported_after("import modelport")
    heavy = {"openai", "httpx", "PIL", "modelport_openai", "modelport_jsonfile"}
    heavy |= {"modelport_keywords", "cattrs", "structlog", "tenacity", "click", "pluggy"}
    assert not loaded & heavy, loaded & heavy


def test_using_the_hub_still_imports_no_plugin_vendor_sdk_or_pillow() -> None:
    loaded = _imported_after("import modelport; modelport.Hub; modelport.AsyncHub")
    assert not loaded & {"openai", "httpx", "PIL", "modelport_openai"}


def test_core_names_no_vendor() -> None:
    import re

    vendor = re.compile(r"openai|anthropic|ollama|vllm|azure|gpt-\d", re.IGNORECASE)
    root = Path(modelport.__file__).parent
    offenders = [
        str(p.relative_to(root)) for p in root.rglob("*.py") if vendor.search(p.read_text())
    ]
    assert offenders == []
