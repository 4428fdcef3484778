"""The checks that keep the docs' examples honest catch what they are meant to catch."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT_CONFTEST = Path(__file__).resolve().parents[2] / "conftest.py"

BAD = """# A page with three mistakes

```bash
modelport ask "hi" --no-such-flag
```

```toml
[backends.jsonfile]
fsynk = true
```

```text
modelport jobs wiat 123
```

Fine ones:

```bash
modelport ask "hi" --stream   # a comment
modelport train data.csv --check
```

<!-- file: modelport.toml -->
```toml
[capabilities]
sentiment = "keywords"
```

```python
from pathlib import Path

assert "keywords" in Path("modelport.toml").read_text()
```
"""


def test_bad_commands_and_settings_in_examples_fail(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(ROOT_CONFTEST.read_text(encoding="utf-8"))
    pytester.makefile(".md", page=BAD)
    result = pytester.runpytest("-p", "no:cacheprovider", "-q", "page.md")
    failed = [line for line in result.outlines if line.startswith("FAILED")]
    assert [line.split("::")[1].split(" ")[0] for line in failed] == [
        "line:3,column:1",
        "line:7,column:1",
        "line:12,column:1",
    ], result.outlines
    assert result.parseoutcomes()["passed"] == 3
