"""Keyword sentiment: lexicons, negation, intensifiers, contrast, emoji, labels, evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import modelport_keywords
from modelport import SentimentLabel
from modelport.errors import ConfigError
from modelport.testing import make_test_hub
from modelport_keywords import KeywordSettings, build_analyzer

analyzer = build_analyzer()


def label(text: str) -> str:
    return analyzer.analyze(text).label.value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The support was excellent, thank you!", "positive"),
        ("This is the worst update ever.", "negative"),
        ("The meeting is at noon on Tuesday.", "neutral"),
        ("I love the camera and I hate the battery", "mixed"),
        ("Всё было отлично, спасибо!", "positive"),
        ("Ужасный сервис, очень плохо.", "negative"),
        ("Заказ пришёл во вторник.", "neutral"),
        ("Камера прекрасная, а батарея ужасная", "mixed"),
        ("😍😍", "positive"),
        ("ok :(", "negative"),
        ("Thanks! Всё работает 👍", "positive"),  # two languages in one text
    ],
)
def test_labels(text: str, expected: str) -> None:
    assert label(text) == expected


def test_negation_turns_and_softens() -> None:
    good, not_good = analyzer.analyze("good"), analyzer.analyze("not good")
    assert good.score > 0 > not_good.score
    assert abs(not_good.score) < good.score  # "not good" is not as bad as "bad"
    assert analyzer.analyze("not bad").label == SentimentLabel.POSITIVE
    assert analyzer.analyze("не плохо").label == SentimentLabel.POSITIVE
    assert analyzer.analyze("не понравилось").label == SentimentLabel.NEGATIVE
    # a negation reaches a few words, and stops at punctuation
    assert analyzer.analyze("It isn't all that good").score < 0
    assert analyzer.analyze("It is not here. Good.").score > 0


def test_intensifiers_and_diminishers_scale() -> None:
    plain = analyzer.analyze("good").score
    assert analyzer.analyze("very good").score > plain > analyzer.analyze("slightly good").score
    assert analyzer.analyze("очень хорошо").score > analyzer.analyze("хорошо").score
    assert analyzer.analyze("extremely bad").score < analyzer.analyze("bad").score


def test_capitals_exclamations_and_contrast() -> None:
    assert analyzer.analyze("GOOD food").score > analyzer.analyze("good food").score
    assert analyzer.analyze("good!!!").score > analyzer.analyze("good").score
    but = analyzer.analyze("The food was good but the service was bad")
    assert but.label == SentimentLabel.NEGATIVE  # what follows "but" weighs more
    evidence = {e.term: e.weight for e in but.evidence}
    assert evidence["good"] == pytest.approx(1.9 * 0.5)
    assert evidence["bad"] == pytest.approx(-2.5 * 1.5)


def test_russian_stems_and_yo() -> None:
    forms = ["хороший", "хорошая", "хорошие", "хорошо", "ХОРОШЕГО"]
    assert all(analyzer.analyze(f).score > 0 for f in forms)
    assert analyzer.analyze("надёжный").score == analyzer.analyze("надежный").score > 0


def test_evidence_names_the_terms_that_moved_the_score() -> None:
    result = analyzer.analyze("The app is not very good, but support was amazing 🎉")
    assert [e.term for e in result.evidence] == ["not very good", "amazing", "🎉"]
    assert result.evidence[0].weight < 0
    assert result.analyzer == "keywords"


def test_scores_stay_in_range() -> None:
    for text in ["good " * 500, "bad " * 500 + "!!!!!!!!", "😡" * 300, "", "   ", "1234"]:
        score = analyzer.analyze(text).score
        assert -1 <= score <= 1
    assert analyzer.analyze("").label == SentimentLabel.NEUTRAL


def test_thresholds_are_configurable() -> None:
    strict = build_analyzer(KeywordSettings(positive_threshold=0.5))
    assert strict.analyze("it was fine").label == SentimentLabel.NEUTRAL
    assert analyzer.analyze("it was fine").label == SentimentLabel.POSITIVE
    no_mixed = build_analyzer(KeywordSettings(mixed_min=100))
    assert no_mixed.analyze("I love the camera and I hate the battery").label != "mixed"


def test_custom_lexicons_extend_or_replace(tmp_path: Path) -> None:
    lexicon = tmp_path / "shop.json"
    lexicon.write_text(json.dumps({
        "words": {"refund": 2.0, "gut": 2.0},
        "negators": ["nicht"],
        "intensifiers": {"sehr": 1.4},
    }))  # fmt: skip
    extended = build_analyzer(KeywordSettings(lexicons=(str(lexicon),), words={"meh": -1.5}))
    assert extended.analyze("refund").score > 0  # was mildly negative built in
    assert extended.analyze("nicht gut").score < 0
    assert extended.analyze("sehr gut").score > extended.analyze("gut").score
    assert extended.analyze("meh").label == SentimentLabel.NEGATIVE
    assert extended.analyze("excellent").score > 0  # built-ins still there
    replaced = build_analyzer(KeywordSettings(lexicons=(str(lexicon),), replace=True))
    assert replaced.analyze("excellent").label == SentimentLabel.NEUTRAL
    assert replaced.analyze("not gut").score < 0  # built-in negators kept


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{", "cannot read the lexicon"),
        ('{"word": {}}', "unknown section 'word'"),
        ('{"words": {"good": "very"}}', "words.good: the weight must be a number"),
        ('{"words": {"good": 9}}', "outside -4..4"),
        ('{"negators": {"not": 1}}', "'negators' must be an array of terms"),
    ],
)
def test_a_bad_lexicon_file_says_what_and_where(tmp_path: Path, content: str, match: str) -> None:
    lexicon = tmp_path / "bad.json"
    lexicon.write_text(content)
    with pytest.raises(ConfigError, match=match) as caught:
        build_analyzer(KeywordSettings(lexicons=(str(lexicon),)))
    assert str(lexicon) in str(caught.value)


def test_unknown_language_and_missing_file() -> None:
    with pytest.raises(ConfigError, match="no built-in lexicon for de"):
        build_analyzer(KeywordSettings(languages=("en", "de")))
    with pytest.raises(ConfigError, match="no such lexicon file"):
        build_analyzer(KeywordSettings(lexicons=("/nonexistent/lex.json",)))


def test_through_the_hub_from_config(tmp_path: Path) -> None:
    hub = make_test_hub(
        overrides={
            "capabilities": {"sentiment": "keywords"},
            "backends": {"keywords": {"words": {"modelport": 3.0}}},
        },
        plugins=[("keywords", modelport_keywords)],
    )
    assert hub.analyze("modelport").label == SentimentLabel.POSITIVE
    answer = hub.ask("this is awful")
    assert answer.sentiment is not None
    assert answer.sentiment.label == SentimentLabel.NEGATIVE  # "echo: this is awful"


def test_it_is_the_default_sentiment_backend() -> None:
    from modelport import Capability, make_plugins

    assert make_plugins().registry.select(Capability.SENTIMENT, None).name == "keywords"
