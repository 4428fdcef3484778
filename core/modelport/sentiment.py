"""The sentiment kit: a backend says how a text scores, the kit makes the Sentiment.

A :class:`ScoringAnalyzer` subclass implements one method, ``score(text) -> (score,
evidence)``: a number (any float: the kit clamps it to [-1, 1], and NaN counts as 0) and the
terms that moved it, as :class:`~modelport.types.Evidence` or ``(term, weight)`` pairs. The
kit's ``analyze`` makes the :class:`~modelport.types.Sentiment` the contract asks for
(``docs/contracts/sentiment.md``): weights as floats, empty terms left out, the backend's name
as ``analyzer``, and a label that always agrees with the score (:func:`verdict`), from
thresholds that are settings (:class:`SentimentSettings`).

:func:`weigh_words` is the lexicon half of an analyzer: the words of a text found in a word
list, each turned (and weakened) when a negation ("not", "never", "don't", ...) comes shortly
before it.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .types import Evidence, Sentiment, SentimentLabel

if TYPE_CHECKING:
    from .backends import BackendContext

__all__ = ["NEGATORS", "ScoringAnalyzer", "SentimentSettings", "agrees", "verdict", "weigh_words"]

#: The furthest from 0 a neutral text's score may be (the sentiment contract).
NEUTRAL_BAND = 0.5


def agrees(label: SentimentLabel, score: float) -> bool:
    """Whether a sentiment's ``label`` and ``score`` agree, as the sentiment contract asks:
    positive needs a score above 0, negative below 0, neutral one within [-0.5, 0.5]; mixed
    takes any score. :func:`verdict` always gives a label that agrees."""
    if label is SentimentLabel.POSITIVE:
        return score > 0
    if label is SentimentLabel.NEGATIVE:
        return score < 0
    if label is SentimentLabel.NEUTRAL:
        return -NEUTRAL_BAND <= score <= NEUTRAL_BAND
    return True


def _threshold(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 < value <= NEUTRAL_BAND:
        raise ValueError(f"'{attribute.name}' must be in (0, 0.5]: {value!r}")


def _not_negative(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"'{attribute.name}' must be 0 or more: {value!r}")


def _share(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"'{attribute.name}' must be in [0, 1]: {value!r}")


@attrs.frozen
class SentimentSettings:
    """The thresholds that turn a score into a label; use it as a backend's settings class
    (or subclass it, with ``@attrs.frozen``, to add settings of your own).

    :ivar positive_threshold: a score at or above this is positive; in (0, 0.5], so that a
        neutral text's score is always within [-0.5, 0.5].
    :ivar negative_threshold: a score at or below minus this is negative; in (0, 0.5].
    :ivar mixed_min: a text is mixed when the evidence on each side weighs at least this...
    :ivar mixed_ratio: ...and the weaker side at least this share of the stronger one.
    """

    positive_threshold: float = attrs.field(default=0.05, validator=_threshold)
    negative_threshold: float = attrs.field(default=0.05, validator=_threshold)
    mixed_min: float = attrs.field(default=1.0, validator=_not_negative)
    mixed_ratio: float = attrs.field(default=0.6, validator=_share)


_DEFAULTS = SentimentSettings()


def verdict(
    score: float,
    evidence: Iterable[Evidence | tuple[str, float]] = (),
    *,
    analyzer: str | None = None,
    settings: SentimentSettings = _DEFAULTS,
) -> Sentiment:
    """The :class:`~modelport.types.Sentiment` of ``score`` and ``evidence``.

    The score is clamped to [-1, 1] (NaN counts as 0). The label is "mixed" when the
    evidence weighs at least ``settings.mixed_min`` on each side and the weaker side at least
    ``settings.mixed_ratio`` of the stronger; else positive from ``positive_threshold``,
    negative from ``-negative_threshold``, neutral between: it always agrees with the score.
    """
    kept = [
        Evidence(str(e.term), float(e.weight))
        if isinstance(e, Evidence)
        else Evidence(str(e[0]), float(e[1]))
        for e in evidence
    ]
    kept = [e for e in kept if e.term and not math.isnan(e.weight)]
    value = 0.0 if math.isnan(score) else max(-1.0, min(1.0, float(score)))
    positive = sum(e.weight for e in kept if e.weight > 0)
    negative = -sum(e.weight for e in kept if e.weight < 0)
    weaker, stronger = sorted((positive, negative))
    if weaker > 0 and weaker >= settings.mixed_min and weaker >= settings.mixed_ratio * stronger:
        label = SentimentLabel.MIXED
    elif value >= settings.positive_threshold:
        label = SentimentLabel.POSITIVE
    elif value <= -settings.negative_threshold:
        label = SentimentLabel.NEGATIVE
    else:
        label = SentimentLabel.NEUTRAL
    return Sentiment(label, value, kept, analyzer=analyzer)


class ScoringAnalyzer(ABC):
    """A :class:`~modelport.backends.SentimentAnalyzer` whose subclass implements only
    :meth:`score`.

    Registered as its own factory (``registry.add("mine", MyAnalyzer, settings=
    SentimentSettings, ...)``), it takes its name and thresholds from the context; built
    without one, it uses the class attributes.

    :ivar name: the backend's name, set as each result's ``analyzer``.
    :ivar settings: the thresholds (a :class:`SentimentSettings`, or a subclass of it).
    """

    name: str = "sentiment"
    settings: SentimentSettings = _DEFAULTS

    def __init__(self, context: BackendContext[Any] | None = None) -> None:
        if context is not None:
            self.name = context.name
            if isinstance(context.settings, SentimentSettings):
                self.settings = context.settings

    @abstractmethod
    def score(self, text: str) -> tuple[float, Iterable[Evidence | tuple[str, float]]]:
        """``(score, evidence)`` for ``text``: any float (clamped to [-1, 1]), and the terms
        that moved it with their weights (positive for a good mood)."""

    def analyze(self, text: str) -> Sentiment:
        score, evidence = self.score(text)
        return verdict(score, evidence, analyzer=self.name, settings=self.settings)


#: The words that turn the mood of the words after them (any word ending in "n't" too).
NEGATORS = frozenset(
    {"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "cannot"}
)
_TOKENS = re.compile(r"(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)|(?P<stop>[.!?;:,]+)")  # noqa: RUF001


def weigh_words(
    text: str,
    words: Mapping[str, float],
    *,
    negators: Collection[str] = NEGATORS,
    reach: int = 3,
    negation: float = -0.74,
) -> list[Evidence]:
    """The words of ``text`` found in ``words`` (looked up lower-cased), as evidence.

    A word up to ``reach`` words after a negator (and no punctuation between) counts as
    ``negation`` times its weight, its term naming the negator (``"not good"``): by default
    "not good" is mildly negative, as in VADER.
    """
    found: list[Evidence] = []
    negated_by, left = "", 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if match.lastgroup == "stop":
            left = 0
            continue
        word = token.lower()
        if word in negators or word.endswith(("n't", "n’t")):  # noqa: RUF001
            negated_by, left = token, reach
            continue
        weight = words.get(word)
        if weight is not None:
            if left:
                found.append(Evidence(f"{negated_by} {token}", float(weight) * negation))
            else:
                found.append(Evidence(token, float(weight)))
        left = max(left - 1, 0)
    return found
