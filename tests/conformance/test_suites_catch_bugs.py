"""The suites are only worth something if they fail: run them against broken backends."""

from __future__ import annotations

import pytest

BROKEN = """
import collections
import json
import re
import time
from datetime import UTC

import attrs
import pytest

import modelport_keywords
from modelport import Page, Reply, Sentiment, SentimentLabel, StreamDelta, Usage, hookimpl
from modelport.errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    InvalidRequestError,
    RateLimitedError,
    RecordNotFoundError,
    TransientError,
)
from modelport.testing import FakeChat, FakeTrainer, FakeVision, MemoryStore
from modelport.testing.conformance import (
    ChatConformance,
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


class ByCreation(MemoryStore):
    def list_dialogues(self, *, limit=50, offset=0, **filters):
        page = super().list_dialogues(limit=10**6, **filters)
        items = sorted(page.items, key=lambda i: i.created_at, reverse=True)  # not updated_at
        return Page(items[offset : offset + limit], offset=offset, total=page.total)


class NoTotal(MemoryStore):
    def list_dialogues(self, **kwargs):
        return attrs.evolve(super().list_dialogues(**kwargs), total=None)


class CountsAppends(MemoryStore):
    def __init__(self):
        super().__init__()
        self.appends = collections.Counter()

    def append(self, dialogue_id, *messages):
        super().append(dialogue_id, *messages)
        self.appends[dialogue_id] += 1  # one per append, however many messages it held

    def list_dialogues(self, **kwargs):
        page = super().list_dialogues(**kwargs)
        items = [attrs.evolve(i, message_count=self.appends[i.id]) for i in page.items]
        return attrs.evolve(page, items=items)


class CreatedAtFromLastRow(MemoryStore):
    def load_dialogue(self, dialogue_id, *, last=None):
        dialogue = super().load_dialogue(dialogue_id, last=last)
        if dialogue.messages and dialogue.messages[-1].created_at is not None:
            return attrs.evolve(dialogue, created_at=dialogue.messages[-1].created_at)
        return dialogue


class WallClock(MemoryStore):
    def append(self, dialogue_id, *messages):
        super().append(dialogue_id, *[  # keeps the wall-clock time, loses the offset
            attrs.evolve(m, created_at=m.created_at.replace(tzinfo=UTC)) if m.created_at else m
            for m in messages
        ])


class Flat:
    def analyze(self, text):
        return Sentiment(SentimentLabel.NEUTRAL, 0.0)  # one answer for everything


KEYWORDS = modelport_keywords.build_analyzer()


def _unnegated(text):
    return re.sub(r"\\b(not|no|never)\\b", "", text)


class NegationBlind:
    def analyze(self, text):
        return KEYWORDS.analyze(_unnegated(text))


class Disagreeing:
    def analyze(self, text):  # the label reads negation, the score does not
        label = KEYWORDS.analyze(text).label
        return Sentiment(label, KEYWORDS.analyze(_unnegated(text)).score)


def _deaf(context):
    return modelport_keywords.build_analyzer()  # never reads context.settings


class StreamAuthRetryable(FakeChat):
    def stream(self, request):
        try:
            yield from super().stream(request)
        except AuthenticationError as exc:  # "any failure on a stream is a dropped connection"
            raise BackendConnectionError(str(exc), backend="broken") from exc


def _without_wait(exc):
    return RateLimitedError(str(exc), backend=exc.backend, status=429)


class RetryAfterDropped(FakeChat):
    def complete(self, request):
        try:
            return super().complete(request)
        except RateLimitedError as exc:
            raise _without_wait(exc) from exc

    def stream(self, request):
        try:
            yield from super().stream(request)
        except RateLimitedError as exc:
            raise _without_wait(exc) from exc


class CutAccepted(FakeChat):
    def stream(self, request):
        try:
            yield from super().stream(request)
        except BackendConnectionError:  # the body ended: call it done
            yield StreamDelta(finish_reason="stop")


class MidStreamErrorIgnored(FakeChat):
    def stream(self, request):
        started = False
        try:
            for delta in super().stream(request):
                started = True
                yield delta
        except TransientError as exc:
            if not started or isinstance(exc, BackendConnectionError):
                raise  # an error event after the first delta is skipped


class SystemDropped(FakeChat):
    def _unsystem(self, request):
        return attrs.evolve(request, messages=[m for m in request.messages if m.role != "system"])

    def complete(self, request):
        return super().complete(self._unsystem(request))

    def stream(self, request):
        return super().stream(self._unsystem(request))


class StreamUsageDropped(FakeChat):
    def stream(self, request):
        for delta in super().stream(request):
            yield attrs.evolve(delta, usage=None)


def _swapped(usage):
    return usage and Usage(usage.completion_tokens, usage.prompt_tokens)


class UsageSwapped(FakeChat):
    def complete(self, request):
        reply = super().complete(request)
        return attrs.evolve(reply, usage=_swapped(reply.usage))

    def stream(self, request):
        for delta in super().stream(request):
            yield attrs.evolve(delta, usage=_swapped(delta.usage))


CHATS = {
    "stream-auth-retryable": StreamAuthRetryable,
    "retry-after-dropped": RetryAfterDropped,
    "cut-accepted": CutAccepted,
    "mid-stream-error-ignored": MidStreamErrorIgnored,
    "system-dropped": SystemDropped,
    "stream-usage-dropped": StreamUsageDropped,
    "usage-swapped": UsageSwapped,
}


def chat(name):  # the test's one instance of the broken chat backend ``name``
    return CURRENT.setdefault(name, CHATS[name]())


def _failure(kind):
    make, status = {
        "auth": (AuthenticationError, 401),
        "rate_limit": (RateLimitedError, 429),
        "server": (TransientError, 500),
        "bad_request": (InvalidRequestError, 400),
    }[kind]
    return make(f"{kind} happened", backend="broken", status=status)


class FakeChatHooks:  # what the shipped fake's suite scripts (tests/conformance/test_shipped.py)

    def arrange_reply(self, text):
        chat(self.backend).script(*[text] * 10)

    def arrange_failure(self, kind):
        chat(self.backend).script(*[_failure(kind)] * 10)

    def arrange_stream(self, pieces, *, usage=None, cut=False, error_mid_stream=False):
        end = StreamDelta(finish_reason="stop", usage=usage)
        if cut:
            end = BackendConnectionError("the stream ended early", backend="broken")
        elif error_mid_stream:
            end = TransientError("overloaded", backend="broken", status=529)
        chat(self.backend).script(*[[*pieces, end]] * 10)

    def arrange_complete(self, text, *, usage):
        chat(self.backend).script(*[Reply(text, "m", usage=usage, finish_reason="stop")] * 10)

    def arrange_rate_limit(self, retry_after):
        error = RateLimitedError("slow", backend="broken", status=429, retry_after=retry_after)
        chat(self.backend).script(*[error] * 10)

    def last_request_messages(self):
        return [(m.role, m.text) for m in chat(self.backend).calls[-1].messages]


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
    CURRENT.clear()
    CURRENT.update(vision=SchemaBlind(), trainer=JobsOldestFirst())


class Broken:
    @hookimpl
    def modelport_register_backends(self, registry):
        registry.add("oldest-first", lambda ctx: OldestFirst(), capabilities=["storage"])
        registry.add("forgetful", lambda ctx: Forgetful(), capabilities=["storage"])
        registry.add("half-turns", lambda ctx: HalfTurns(), capabilities=["storage"])
        registry.add("tail-blind", lambda ctx: TailBlind(), capabilities=["storage"])
        registry.add("flat", lambda ctx: Flat(), capabilities=["sentiment"])
        registry.add("schema-blind", lambda ctx: CURRENT["vision"], capabilities=["vision"])
        registry.add("jobs-oldest-first", lambda ctx: CURRENT["trainer"], capabilities=["training"])
        for name, store in [
            ("by-creation", ByCreation), ("no-total", NoTotal), ("counts-appends", CountsAppends),
            ("created-at-from-last-row", CreatedAtFromLastRow), ("wall-clock", WallClock),
        ]:
            registry.add(name, lambda ctx, store=store: store(), capabilities=["storage"])
        registry.add("negation-blind", lambda ctx: NegationBlind(), capabilities=["sentiment"])
        registry.add("disagreeing", lambda ctx: Disagreeing(), capabilities=["sentiment"])
        registry.add(
            "deaf-keywords", _deaf, capabilities=["sentiment"],
            settings=modelport_keywords.KeywordSettings,
        )
        for name in CHATS:
            registry.add(name, lambda ctx, name=name: chat(name), capabilities=["chat"])


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


class TestFlat(SentimentConformance):
    backend = "flat"
    plugins = (("broken", Broken()),)


class BrokenStore(StoreConformance):
    plugins = (("broken", Broken()),)
    persistent = False


class TestByCreation(BrokenStore):
    backend = "by-creation"


class TestNoTotal(BrokenStore):
    backend = "no-total"


class TestCountsAppends(BrokenStore):
    backend = "counts-appends"


class TestCreatedAtFromLastRow(BrokenStore):
    backend = "created-at-from-last-row"


class TestWallClock(BrokenStore):
    backend = "wall-clock"


class TestNegationBlind(SentimentConformance):
    backend = "negation-blind"
    plugins = (("broken", Broken()),)


class TestDisagreeing(SentimentConformance):
    backend = "disagreeing"
    plugins = (("broken", Broken()),)


class TestDeafKeywords(SentimentConformance):
    backend = "deaf-keywords"
    plugins = (("broken", Broken()),)
    settings_that_change_results = {"positive_threshold": (0.05, 0.99, "It is good.")}


class BrokenChat(FakeChatHooks, ChatConformance):
    plugins = (("broken", Broken()),)


class TestStreamAuthRetryable(BrokenChat):
    backend = "stream-auth-retryable"


class TestRetryAfterDropped(BrokenChat):
    backend = "retry-after-dropped"


class TestCutAccepted(BrokenChat):
    backend = "cut-accepted"


class TestMidStreamErrorIgnored(BrokenChat):
    backend = "mid-stream-error-ignored"


class TestSystemDropped(BrokenChat):
    backend = "system-dropped"


class TestStreamUsageDropped(BrokenChat):
    backend = "stream-usage-dropped"


class TestUsageSwapped(BrokenChat):
    backend = "usage-swapped"
"""

#: Each broken backend, and the tests that must fail for it (and no other).
EXPECTED = [
    "TestByCreation::test_newest_first_means_last_activity",
    "TestCountsAppends::test_message_count_follows_every_append",
    "TestCreatedAtFromLastRow::test_created_at_is_when_the_dialogue_was_created",
    "TestCutAccepted::test_a_stream_cut_short_is_an_error",
    "TestDeafKeywords::test_declared_settings_change_the_result",
    "TestDisagreeing::test_label_and_score_agree",
    "TestFlat::test_clear_texts_get_their_label_and_sign",
    "TestForgetful::test_missing_ids_are_record_not_found",
    "TestHalfTurns::test_concurrent_turns_into_one_dialogue_stay_paired",
    "TestJobsOldestFirst::test_jobs_are_listed_newest_first_within_the_limit",
    "TestMidStreamErrorIgnored::test_an_error_in_the_middle_of_a_stream_is_raised",
    "TestNegationBlind::test_negation_turns_the_mood",
    "TestNoTotal::test_pages_know_their_total",
    "TestOldestFirst::test_listing_is_newest_first_paged_and_filtered",
    "TestOldestFirst::test_newest_first_means_last_activity",  # oldest first breaks both
    "TestRetryAfterDropped::test_a_rate_limit_says_how_long_to_wait[complete]",
    "TestRetryAfterDropped::test_a_rate_limit_says_how_long_to_wait[stream]",
    "TestSchemaBlind::test_a_schema_gives_parsed_data",
    "TestStreamAuthRetryable::test_vendor_failures_on_a_stream_map_into_the_core_tree"
    "[auth-AuthenticationError-False]",
    "TestStreamUsageDropped::test_a_stream_reports_its_usage",
    "TestSystemDropped::test_system_messages_reach_the_vendor",
    "TestTailBlind::test_a_turn_is_appended_whole_and_the_tail_can_be_read",
    "TestUsageSwapped::test_usage_counts_prompt_and_completion_apart",
    "TestWallClock::test_timestamps_keep_their_time_zone",
]


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
    assert failed == EXPECTED, "\n".join(result.outlines)
    assert outcomes["failed"] == len(EXPECTED)
