"""The sentiment kit (``modelport.sentiment``): the documented 20-line backend
(examples/kits/tinymood.py, shown in docs/kits.md) passes the sentiment conformance suite, and
the kit's labels always agree with its scores."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelport import BackendContext, Evidence, SentimentLabel
from modelport.backends import SentimentAnalyzer
from modelport.errors import ConfigError
from modelport.sentiment import ScoringAnalyzer, SentimentSettings, verdict, weigh_words
from modelport.testing import make_test_hub
from modelport.testing.conformance import SentimentConformance

KITS = Path(__file__).resolve().parents[2] / "examples" / "kits"
sys.path.insert(0, str(KITS))

import tinymood  # noqa: E402  (examples/kits, the backend docs/kits.md shows)


class TestTinyMoodExample(SentimentConformance):
    backend = "tinymood"
    plugins = (("tinymood", tinymood),)
    settings_that_change_results: ClassVar[Mapping[str, tuple[Any, Any, str]]] = {
        "positive_threshold": (0.05, 0.5, "Good, good, bad."),  # positive, then neutral
        "mixed_min": (1.0, 5.0, "Good and bad."),  # mixed, then neutral
    }


def _agrees(label: SentimentLabel, score: float) -> bool:
    if label is SentimentLabel.POSITIVE:
        return score > 0
    if label is SentimentLabel.NEGATIVE:
        return score < 0
    if label is SentimentLabel.NEUTRAL:
        return -0.5 <= score <= 0.5
    return True


_SETTINGS = st.builds(
    SentimentSettings,
    positive_threshold=st.floats(0.001, 0.5),
    negative_threshold=st.floats(0.001, 0.5),
    mixed_min=st.floats(0, 10),
    mixed_ratio=st.floats(0, 1),
)


@given(
    score=st.floats(allow_nan=True, allow_infinity=True),
    weights=st.lists(st.floats(-5, 5), max_size=6),
    settings=_SETTINGS,
)
def test_the_label_always_agrees_with_the_score(
    score: float, weights: list[float], settings: SentimentSettings
) -> None:
    result = verdict(score, [(f"w{n}", w) for n, w in enumerate(weights)], settings=settings)
    assert -1.0 <= result.score <= 1.0
    assert _agrees(result.label, result.score), result


def test_scores_are_clamped_and_evidence_made_floats() -> None:
    result = verdict(7, [("great", 2), Evidence("", 1.0), ("odd", math.nan)], analyzer="mine")
    assert (result.label, result.score, result.analyzer) == (SentimentLabel.POSITIVE, 1.0, "mine")
    assert result.evidence == (Evidence("great", 2.0),)
    assert isinstance(result.evidence[0].weight, float)
    assert verdict(math.nan).score == 0.0
    assert verdict(-3).score == -1.0


def test_strong_evidence_on_both_sides_is_mixed() -> None:
    assert verdict(0.0, [("good", 1.0), ("bad", -1.0)]).label is SentimentLabel.MIXED
    assert verdict(0.4, [("good", 3.0), ("bad", -1.0)]).label is SentimentLabel.POSITIVE
    weak = verdict(0.0, [("good", 0.5), ("bad", -0.5)])
    assert weak.label is SentimentLabel.NEUTRAL  # each side below mixed_min
    assert verdict(0.3, [("good", 1.0)], settings=SentimentSettings(mixed_min=0)).label is (
        SentimentLabel.POSITIVE
    )


def test_thresholds_that_would_break_the_agreement_are_refused() -> None:
    with pytest.raises(ValueError, match="positive_threshold"):
        SentimentSettings(positive_threshold=0.6)
    with pytest.raises(ValueError, match="negative_threshold"):
        SentimentSettings(negative_threshold=0)
    overrides = {
        "capabilities": {"sentiment": "tinymood"},
        "backends": {"tinymood": {"positive_threshold": 0.9}},
    }
    hub = make_test_hub(overrides=overrides, plugins=[("tinymood", tinymood)])
    with pytest.raises(ConfigError, match="positive_threshold"):
        hub.backend("sentiment")


def test_negation_turns_and_weakens_the_words_after_it() -> None:
    words = {"good": 1.0, "bad": -1.0}
    assert weigh_words("Not good at all.", words) == [Evidence("Not good", -0.74)]
    assert weigh_words("I don't like it, bad", words) == [Evidence("bad", -1.0)]
    assert weigh_words("I don't think it is bad", words) == [Evidence("bad", -1.0)]  # too far
    assert weigh_words("Never, good.", words) == [Evidence("good", 1.0)]  # punctuation ends it
    assert weigh_words("isn’t good", words) == [Evidence("isn’t good", -0.74)]
    assert weigh_words("GOOD хорошо 😀", {"good": 1, "хорошо": 2}) == [
        Evidence("GOOD", 1.0),
        Evidence("хорошо", 2.0),
    ]


def test_an_analyzer_takes_its_name_and_thresholds_from_its_context() -> None:
    @attrs.frozen
    class Mine(SentimentSettings):
        extra: str = "x"

    class Constant(ScoringAnalyzer):
        def score(self, text: str) -> tuple[float, Iterable[Evidence]]:
            return 0.3, [Evidence("it", 0.3)]

    plain = Constant()
    assert isinstance(plain, SentimentAnalyzer)
    assert (plain.analyze("x").label, plain.analyze("x").analyzer) == ("positive", "sentiment")
    strict = Constant(BackendContext("strict", Mine(positive_threshold=0.5)))
    assert (strict.analyze("x").label, strict.analyze("x").analyzer) == ("neutral", "strict")
    other = Constant(BackendContext("other", None))
    assert other.settings == SentimentSettings()
