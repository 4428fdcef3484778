"""The keyword analyser: one pass over the text's tokens against compiled lexicons."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from modelport import Evidence, Sentiment, SentimentLabel

__all__ = ["KeywordAnalyzer", "Lexicon", "Thresholds"]

# One alternation, scanned once: emoticons and emoji, words (Latin, Cyrillic, any script, with
# inner apostrophes), and the punctuation that ends a negation's reach.
_TOKEN = re.compile(
    r"(?P<emo>>:\(|[:;=][-']?[()\[\]dDpP/|]|\(:|\):|<3|\b[xX][dD]\b"
    r"|[\U0001F300-\U0001FAFF\u2600-\u27BF]\ufe0f?)"
    r"|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)"
    r"|(?P<stop>[.!?;,]+)"
)
_NEGATION_SCALAR = -0.74  # VADER's: "not good" is mildly negative, not as bad as "bad"
_CONTRAST_BEFORE, _CONTRAST_AFTER = 0.5, 1.5  # "good, but slow": the part after counts more
_CAPS = 1.3  # "GOOD" in a text that is not all capitals
_EXCLAIM, _MAX_EXCLAIMS = 0.292, 4
_ALPHA = 15.0  # normalisation: score = s / sqrt(s^2 + alpha), as VADER's compound
_NEGATION_REACH = 3  # words after a negator that it still turns


def _fold(text: str) -> str:
    return text.lower().replace("ё", "е")


@attrs.frozen
class Lexicon:
    """What the analyser looks up; built from one or more language lexicons."""

    words: Mapping[str, float]
    stems: Mapping[str, float]
    negators: frozenset[str]
    intensifiers: Mapping[str, float]
    contrast: frozenset[str]
    emoticons: Mapping[str, float]
    min_stem: int = 3

    @classmethod
    def merge(cls, parts: Iterable[Mapping[str, Any]], emoticons: Mapping[str, float]) -> Lexicon:
        words: dict[str, float] = {}
        stems: dict[str, float] = {}
        negators: set[str] = set()
        intensifiers: dict[str, float] = {}
        contrast: set[str] = set()
        for part in parts:
            words.update({_fold(k): float(v) for k, v in part.get("words", {}).items()})
            stems.update({_fold(k): float(v) for k, v in part.get("stems", {}).items()})
            negators.update(_fold(n) for n in part.get("negators", ()))
            intensifiers.update(
                {_fold(k): float(v) for k, v in part.get("intensifiers", {}).items()}
            )
            contrast.update(_fold(c) for c in part.get("contrast", ()))
        return cls(
            words=words,
            stems=stems,
            negators=frozenset(negators),
            intensifiers=intensifiers,
            contrast=frozenset(contrast),
            emoticons={k.lower(): v for k, v in emoticons.items()},
            min_stem=min((len(s) for s in stems), default=3),
        )

    def weight(self, word: str) -> float | None:
        """The word's weight: an exact entry, else the longest stem it starts with."""
        weight = self.words.get(word)
        if weight is not None or not self.stems:
            return weight
        stems = self.stems
        for end in range(len(word), self.min_stem - 1, -1):
            weight = stems.get(word[:end])
            if weight is not None:
                return weight
        return None


@attrs.frozen
class Thresholds:
    """When a score is positive or negative, and when both sides together are "mixed".

    :ivar positive: a score at or above this is positive.
    :ivar negative: a score at or below minus this is negative.
    :ivar mixed_ratio: the weaker side is at least this share of the stronger one...
    :ivar mixed_min: ...and at least this strong (on the lexicon's -4..4 scale), for "mixed".
    """

    positive: float = 0.05
    negative: float = 0.05
    mixed_ratio: float = 0.6
    mixed_min: float = 1.0


class KeywordAnalyzer:
    """Scores a text from a :class:`Lexicon`: negation, intensifiers and diminishers,
    contrast ("but"), capitals, exclamation marks, emoticons and emoji; score in [-1, 1],
    a label, and the evidence (each term that moved the score, and by how much)."""

    def __init__(self, lexicon: Lexicon, thresholds: Thresholds = Thresholds()) -> None:
        self.lexicon = lexicon
        self.thresholds = thresholds

    def analyze(self, text: str) -> Sentiment:
        lex = self.lexicon
        terms: list[str] = []
        weights: list[float] = []
        negated_by: str | None = None
        reach = 0
        boost, booster = 1.0, ""
        contrast_from = -1
        exclaims = 0
        shouting = text.isupper()
        for match in _TOKEN.finditer(text):
            kind, token = match.lastgroup, match.group()
            if kind == "stop":
                reach, boost, booster = 0, 1.0, ""
                exclaims += token.count("!")
                continue
            if kind == "emo":
                weight = lex.emoticons.get(token.lower().replace("\ufe0f", ""))
                if weight is not None:
                    terms.append(token)
                    weights.append(weight)
                continue
            word = _fold(token)
            if word in lex.negators:
                negated_by, reach = token, _NEGATION_REACH
                continue
            if word in lex.contrast:
                weights = [w * _CONTRAST_BEFORE for w in weights]
                contrast_from, reach = len(weights), 0
                continue
            factor = lex.intensifiers.get(word)
            if factor is not None:
                boost, booster = boost * factor, f"{booster}{token} "
                continue
            weight = lex.weight(word)
            if weight is None:
                reach = max(0, reach - 1)
                continue
            term = f"{booster}{token}"
            weight *= boost
            if not shouting and token.isupper() and len(token) > 1:
                weight *= _CAPS
            if reach:
                weight *= _NEGATION_SCALAR
                term = f"{negated_by} {term}"
            if contrast_from >= 0:
                weight *= _CONTRAST_AFTER
            terms.append(term)
            weights.append(weight)
            boost, booster = 1.0, ""
        return self._verdict(terms, weights, exclaims)

    def _verdict(self, terms: list[str], weights: list[float], exclaims: int) -> Sentiment:
        total = math.fsum(weights)
        if total and exclaims:
            total += math.copysign(_EXCLAIM * min(exclaims, _MAX_EXCLAIMS), total)
        score = total / math.sqrt(total * total + _ALPHA) if total else 0.0
        positive = math.fsum(w for w in weights if w > 0)
        negative = -math.fsum(w for w in weights if w < 0)
        weaker, stronger = sorted((positive, negative))
        t = self.thresholds
        if weaker >= t.mixed_min and weaker >= t.mixed_ratio * stronger:
            label = SentimentLabel.MIXED
        elif score >= t.positive:
            label = SentimentLabel.POSITIVE
        elif score <= -t.negative:
            label = SentimentLabel.NEGATIVE
        else:
            label = SentimentLabel.NEUTRAL
        evidence = [Evidence(term, round(w, 3)) for term, w in zip(terms, weights, strict=True)]
        return Sentiment(label=label, score=round(score, 4), evidence=evidence, analyzer="keywords")
