"""The backend contracts (docs/contracts/) name every check of the conformance suites, so the
pages and the suites stay in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelport.testing import conformance

ROOT = Path(__file__).resolve().parents[2]
PAGES = {
    "ChatConformance": "chat.md",
    "VisionConformance": "vision.md",
    "SentimentConformance": "sentiment.md",
    "StoreConformance": "storage.md",
    "TrainingConformance": "training.md",
}


def test_every_suite_has_a_page() -> None:
    assert sorted(PAGES) == sorted(conformance.__all__)


@pytest.mark.parametrize("suite", sorted(PAGES))
def test_each_page_names_every_test_of_its_suite(suite: str) -> None:
    page = ROOT / "docs" / "contracts" / PAGES[suite]
    text = page.read_text("utf-8")
    tests = {name for name in dir(getattr(conformance, suite)) if name.startswith("test_")}
    named = set(re.findall(r"`(test_\w+)`", text))
    assert not tests - named, f"{page.name} does not state the rule of {sorted(tests - named)}"
    assert not named - tests, f"{page.name} names tests {suite} does not have: {named - tests}"


def test_the_pages_are_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text("utf-8")
    for page in ["index.md", *PAGES.values()]:
        assert f"contracts/{page}" in nav, f"mkdocs.yml does not list contracts/{page}"
