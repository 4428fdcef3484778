"""The suites are only worth something if they fail: run them against broken backends."""

from __future__ import annotations

import pytest

BROKEN = """
import attrs

from modelport import Sentiment, SentimentLabel, hookimpl
from modelport.errors import RecordNotFoundError
from modelport.testing import MemoryStore
from modelport.testing.conformance import SentimentConformance, StoreConformance


class OldestFirst(MemoryStore):
    def list_dialogues(self, **kwargs):
        page = super().list_dialogues(**kwargs)
        return attrs.evolve(page, items=tuple(reversed(page.items)))


class Forgetful(MemoryStore):
    def load_job(self, job_id):
        try:
            return super().load_job(job_id)
        except RecordNotFoundError:
            raise KeyError(job_id) from None  # the wrong error for a missing id


class Gloomy:
    def analyze(self, text):
        return Sentiment(SentimentLabel.NEGATIVE, -0.5)


class Broken:
    @hookimpl
    def modelport_register_backends(self, registry):
        registry.add("oldest-first", lambda ctx: OldestFirst(), capabilities=["storage"])
        registry.add("forgetful", lambda ctx: Forgetful(), capabilities=["storage"])
        registry.add("gloomy", lambda ctx: Gloomy(), capabilities=["sentiment"])


class TestOldestFirst(StoreConformance):
    backend = "oldest-first"
    plugins = (("broken", Broken()),)


class TestForgetful(StoreConformance):
    backend = "forgetful"
    plugins = (("broken", Broken()),)


class TestGloomy(SentimentConformance):
    backend = "gloomy"
    plugins = (("broken", Broken()),)
"""


def test_each_broken_backend_fails_exactly_the_tests_for_its_bug(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_broken=BROKEN)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio", "-q")
    outcomes = result.parseoutcomes()
    failed = sorted(
        line.split("::", 1)[1].split(" ")[0]
        for line in result.outlines
        if line.startswith("FAILED")
    )
    assert failed == [
        "TestForgetful::test_missing_ids_are_record_not_found",
        "TestGloomy::test_clear_texts_get_their_label_and_sign",
        "TestOldestFirst::test_listing_is_newest_first_paged_and_filtered",
    ], result.outlines
    assert outcomes["failed"] == 3
