"""docs/kits.md shows the kits' examples whole, word for word, with their true line counts,
within the budgets of issue 16 (a store in at most 80 lines, a sentiment backend in 20)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "kits.md"
EXCERPT = re.compile(r"<!-- from: (?P<path>\S+) -->\n```python\n(?P<code>.*?)\n```", re.DOTALL)
BUDGETS = {"examples/kits/sqlitestore.py": 80, "examples/kits/tinymood.py": 20}
#: The contract page that cites each example's length.
CITED = {"examples/kits/sqlitestore.py": "storage.md", "examples/kits/tinymood.py": "sentiment.md"}


def test_the_examples_are_shown_whole_and_within_their_budgets() -> None:
    text = PAGE.read_text("utf-8")
    shown = {m["path"]: m["code"] for m in EXCERPT.finditer(text)}
    assert set(shown) == set(BUDGETS)
    for path, code in shown.items():
        source = (ROOT / path).read_text("utf-8")
        assert code + "\n" == source, f"docs/kits.md no longer shows {path} as it is"
        lines = len(source.splitlines())
        assert lines <= BUDGETS[path], f"{path} has {lines} lines, over {BUDGETS[path]}"
        assert f"in {lines} lines" in text, f"docs/kits.md does not say {path} has {lines} lines"
        contract = (ROOT / "docs" / "contracts" / CITED[path]).read_text("utf-8")
        assert f"in {lines}\nlines" in contract or f"in {lines} lines" in contract, CITED[path]
