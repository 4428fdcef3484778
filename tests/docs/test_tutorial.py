"""The plugin tutorial (docs/plugins.md) shows the worked plugin's real code, word for word."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "plugins.md"
EXCERPT = re.compile(
    r"<!-- from: (?P<path>\S+) -->\n(?:<!-- skip: next -->\n)?```\w+\n(?P<code>.*?)\n```",
    re.DOTALL,
)


def excerpts() -> list[tuple[str, str]]:
    return [(m["path"], m["code"]) for m in EXCERPT.finditer(TUTORIAL.read_text("utf-8"))]


def test_every_excerpt_is_in_its_file_word_for_word() -> None:
    found = excerpts()
    assert len(found) >= 10
    for path, code in found:
        source = (ROOT / path).read_text("utf-8")
        assert code in source, f"docs/plugins.md shows code that {path} no longer has:\n{code}"


def test_the_tutorial_covers_every_module_of_the_plugin() -> None:
    shown = {path for path, _ in excerpts()}
    package = ROOT / "examples" / "modelport-ollama"
    for module in (package / "src" / "modelport_ollama").glob("*.py"):
        assert str(module.relative_to(ROOT)) in shown, f"the tutorial never shows {module.name}"
    assert "examples/modelport-ollama/pyproject.toml" in shown
