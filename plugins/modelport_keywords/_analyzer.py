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


# What a token is to the analyser; a chunk of text between spaces is learnt once as a tuple of
# (kind, value, term) entries, so a text seen in pieces before costs one lookup per chunk.
_OTHER, _STOP, _WORD, _NEGATOR, _CONTRAST, _BOOST, _EMOTICON = range(7)
_Entry = tuple[int, float, str]
_MEMO_LIMIT = 200_000  # chunks remembered before the memo starts afresh


class KeywordAnalyzer:
    """Scores a text from a :class:`Lexicon`: negation, intensifiers and diminishers,
    contrast ("but"), capitals, exclamation marks, emoticons and emoji; score in [-1, 1],
    a label, and the evidence (each term that moved the score, and by how much).

    One pass: the text is split on whitespace, and each chunk is looked up in a memo of
    chunks already tokenised and classified (the regex and the lexicon lookups run once per
    distinct chunk). Safe to share between threads.
    """

    def __init__(self, lexicon: Lexicon, thresholds: Thresholds = Thresholds()) -> None:
        self.lexicon = lexicon
        self.thresholds = thresholds
        self._memo: dict[str, tuple[_Entry, ...]] = {}

    def _entry(self, kind: str | None, token: str) -> _Entry:
        lex = self.lexicon
        if kind == "stop":
            return (_STOP, float(token.count("!")), token)
        if kind == "emo":
            weight = lex.emoticons.get(token.lower().replace("\ufe0f", ""))
            return (_OTHER, 0.0, token) if weight is None else (_EMOTICON, weight, token)
        word = _fold(token)
        if word in lex.negators:
            return (_NEGATOR, 0.0, token)
        if word in lex.contrast:
            return (_CONTRAST, 0.0, token)
        factor = lex.intensifiers.get(word)
        if factor is not None:
            return (_BOOST, factor, token)
        weight = lex.weight(word)
        if weight is None:
            return (_OTHER, 0.0, token)
        if token.isupper() and len(token) > 1:
            return (_WORD, weight * _CAPS, token)  # undone when the whole text shouts
        return (_WORD, weight, token)

    def _learn(self, chunk: str) -> tuple[_Entry, ...]:
        entries = tuple(self._entry(m.lastgroup, m.group()) for m in _TOKEN.finditer(chunk))
        memo = self._memo
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[chunk] = entries
        return entries

    def analyze(self, text: str) -> Sentiment:
        terms: list[str] = []
        weights: list[float] = []
        negated_by = booster = ""
        reach = 0
        boost = 1.0
        contrast = False
        exclaims = 0
        memo_get = self._memo.get
        for chunk in text.split():
            entries = memo_get(chunk)
            if entries is None:
                entries = self._learn(chunk)
            for kind, value, token in entries:
                if kind == _OTHER:
                    if reach:
                        reach -= 1
                elif kind == _WORD:
                    weight = value * boost
                    term = f"{booster}{token}" if booster else token
                    if reach:
                        weight *= _NEGATION_SCALAR
                        term = f"{negated_by} {term}"
                    if contrast:
                        weight *= _CONTRAST_AFTER
                    terms.append(term)
                    weights.append(weight)
                    boost, booster = 1.0, ""
                elif kind == _STOP:
                    reach, boost, booster = 0, 1.0, ""
                    exclaims += int(value)
                elif kind == _EMOTICON:
                    terms.append(token)
                    weights.append(value)
                elif kind == _NEGATOR:
                    negated_by, reach = token, _NEGATION_REACH
                elif kind == _CONTRAST:
                    weights = [w * _CONTRAST_BEFORE for w in weights]
                    contrast, reach = True, 0
                else:  # _BOOST
                    boost *= value
                    booster = f"{booster}{token} "
        if weights and text.isupper():
            weights = [w / _CAPS if _is_caps(t) else w for t, w in zip(terms, weights, strict=True)]
        return self._verdict(terms, weights, exclaims)

    def _verdict(self, terms: list[str], weights: list[float], exclaims: int) -> Sentiment:
        if not weights:
            return _NEUTRAL
        positive = negative = 0.0
        for weight in weights:
            if weight > 0:
                positive += weight
            else:
                negative -= weight
        total = positive - negative
        if total and exclaims:
            total += math.copysign(_EXCLAIM * min(exclaims, _MAX_EXCLAIMS), total)
        score = total / math.sqrt(total * total + _ALPHA)
        weaker, stronger = (positive, negative) if positive < negative else (negative, positive)
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


_NEUTRAL = Sentiment(label=SentimentLabel.NEUTRAL, score=0.0, analyzer="keywords")


def _is_caps(term: str) -> bool:
    word = term.rpartition(" ")[2]
    return word.isupper() and len(word) > 1
