"""The generated references in docs/reference/ match the code, and cannot skip a setting."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import attrs
import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "docs_reference.py"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_reference"] = module
    spec.loader.exec_module(module)
    return module


def test_the_committed_pages_are_up_to_date(tool: ModuleType) -> None:
    for name, build in tool.PAGES.items():
        committed = (tool.DOCS / name).read_text(encoding="utf-8")
        assert committed == build(), f"run `python tools/docs_reference.py` to refresh {name}"


def test_every_shipped_backend_and_core_section_is_in_the_reference(tool: ModuleType) -> None:
    page = tool.configuration()
    for section in ("capabilities", "retry", "plugins", "images", "training", "training.csv"):
        assert f"`[{section}]`" in page
    for backend in ("openai", "azure", "ollama", "vllm", "llamacpp", "lmstudio", "jsonfile"):
        assert f"`[backends.{backend}]`" in page
    assert "`max_retry_after_s`" in page
    assert "`[backends.ollama-native]`" not in page  # a third-party plugin documents its own


def test_a_setting_without_a_description_is_an_error(tool: ModuleType) -> None:
    @attrs.frozen
    class Half:
        """Half documented.

        :ivar told: this one is described.
        """

        told: int = 1
        forgotten: str = "x"

    with pytest.raises(tool.UndocumentedError, match="forgotten"):
        list(tool.table(Half))


def test_the_cli_reference_has_every_command(tool: ModuleType) -> None:
    page = tool.cli_reference()
    for command in ("ask", "describe", "sentiment", "train", "jobs wait", "dialogues export"):
        assert f"`modelport {command}`" in page


def test_the_openai_pages_settings_table_names_exactly_the_settings() -> None:
    """docs/openai.md keeps its own table (with the presets' defaults): it must not drift."""
    from modelport_openai import OpenAISettings

    page = (TOOL.parents[1] / "docs" / "openai.md").read_text(encoding="utf-8")
    section = page.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            documented |= {name.strip("` ") for name in row.split("|")[1].split(",")}
    assert documented == {f.name for f in attrs.fields(OpenAISettings)}
