"""The suites are only worth something if they fail: run them against broken backends."""

from __future__ import annotations

import pytest

BROKEN = """
import json
import time

import attrs
import pytest

from modelport import Sentiment, SentimentLabel, hookimpl
from modelport.errors import RecordNotFoundError
from modelport.testing import FakeTrainer, FakeVision, MemoryStore
from modelport.testing.conformance import (
    SentimentConformance,
    StoreConformance,
    TrainingConformance,
    VisionConformance,
)


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


class HalfTurns(MemoryStore):
    def append(self, dialogue_id, *messages):
        for message in messages:  # one write per message: concurrent turns interleave
            super().append(dialogue_id, message)
            time.sleep(0.001)


class TailBlind(MemoryStore):
    def load_dialogue(self, dialogue_id, *, last=None):
        return super().load_dialogue(dialogue_id)  # ignores last


class Gloomy:
    def analyze(self, text):
        return Sentiment(SentimentLabel.NEGATIVE, -0.5)


class SchemaBlind(FakeVision):
    def describe(self, request):
        return attrs.evolve(super().describe(request), data=None)  # ignores the schema


class JobsOldestFirst(FakeTrainer):
    def list_jobs(self, *, limit=20):
        return list(reversed(super().list_jobs(limit=limit)))


# One instance per test, shared by the test's sync and async hubs (as a vendor's state is).
CURRENT = {}


@pytest.fixture(autouse=True)
def fresh_backends():
    CURRENT.update(vision=SchemaBlind(), trainer=JobsOldestFirst())


class Broken:
    @hookimpl
    def modelport_register_backends(self, registry):
        registry.add("oldest-first", lambda ctx: OldestFirst(), capabilities=["storage"])
        registry.add("forgetful", lambda ctx: Forgetful(), capabilities=["storage"])
        registry.add("half-turns", lambda ctx: HalfTurns(), capabilities=["storage"])
        registry.add("tail-blind", lambda ctx: TailBlind(), capabilities=["storage"])
        registry.add("gloomy", lambda ctx: Gloomy(), capabilities=["sentiment"])
        registry.add("schema-blind", lambda ctx: CURRENT["vision"], capabilities=["vision"])
        registry.add("jobs-oldest-first", lambda ctx: CURRENT["trainer"], capabilities=["training"])


class TestOldestFirst(StoreConformance):
    backend = "oldest-first"
    plugins = (("broken", Broken()),)
    persistent = False


class TestForgetful(StoreConformance):
    backend = "forgetful"
    plugins = (("broken", Broken()),)
    persistent = False


class TestHalfTurns(StoreConformance):
    backend = "half-turns"
    plugins = (("broken", Broken()),)
    persistent = False


class TestTailBlind(StoreConformance):
    backend = "tail-blind"
    plugins = (("broken", Broken()),)
    persistent = False


class TestSchemaBlind(VisionConformance):
    backend = "schema-blind"
    plugins = (("broken", Broken()),)

    def arrange_reply(self, text):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        CURRENT["vision"].script(*[data if isinstance(data, dict) else text] * 10)

    def arrange_failure(self, kind):
        pytest.skip("not under test here")


class TestJobsOldestFirst(TrainingConformance):
    backend = "jobs-oldest-first"
    plugins = (("broken", Broken()),)

    def arrange_service(self):
        pass

    def arrange_failure(self, kind):
        pytest.skip("not under test here")


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
        "TestHalfTurns::test_concurrent_turns_into_one_dialogue_stay_paired",
        "TestJobsOldestFirst::test_jobs_are_listed_newest_first_within_the_limit",
        "TestOldestFirst::test_listing_is_newest_first_paged_and_filtered",
        "TestSchemaBlind::test_a_schema_gives_parsed_data",
        "TestTailBlind::test_a_turn_is_appended_whole_and_the_tail_can_be_read",
    ], result.outlines
    assert outcomes["failed"] == 7
