"""Every hook spec follows the docstring template and is documented in docs/hooks.md."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from modelport import hookspecs

DOCS = Path(__file__).parents[2] / "docs" / "hooks.md"
SPECS = [
    getattr(hookspecs, name)
    for name in dir(hookspecs)
    if name.startswith("modelport_") and callable(getattr(hookspecs, name))
]


def test_there_are_hooks_for_discovery_and_observation() -> None:
    assert {f.__name__ for f in SPECS} >= {
        "modelport_configure", "modelport_register_backends",
        "modelport_on_exchange", "modelport_on_error",
    }  # fmt: skip


@pytest.mark.parametrize("spec", SPECS, ids=lambda f: f.__name__)
def test_spec_docstring_follows_the_template(spec) -> None:  # type: ignore[no-untyped-def]
    doc = inspect.getdoc(spec) or ""
    summary = doc.splitlines()[0]
    assert summary.endswith(".")
    assert len(summary) < 100
    for param in inspect.signature(spec).parameters:
        assert f":param {param}:" in doc, param
    assert ":returns:" in doc
    assert ".. versionadded::" in doc
    opts = spec.modelport_spec
    if opts.get("firstresult"):
        assert "Stops at first non-None result (firstresult)." in doc
    if opts.get("historic"):
        assert "Historic:" in doc


@pytest.mark.parametrize("spec", SPECS, ids=lambda f: f.__name__)
def test_every_hook_is_documented_with_its_exact_signature(spec) -> None:  # type: ignore[no-untyped-def]
    text = DOCS.read_text(encoding="utf-8")
    params = ", ".join(inspect.signature(spec).parameters)
    heading = f"## `{spec.__name__}({params})`"
    assert heading in text, f"docs/hooks.md lacks the heading {heading}"


def test_docs_document_no_hook_that_does_not_exist() -> None:
    documented = set(re.findall(r"^## `(modelport_\w+)\(", DOCS.read_text(), re.MULTILINE))
    assert documented == {f.__name__ for f in SPECS}
