"""Keyword sentiment against vaderSentiment, the standard lexicon analyser, on the same texts
in one run: throughput, and how often the two labels agree.

    pip install -e '.[bench]'   # vaderSentiment
    python benchmarks/sentiment_vs_vader.py [--repeat 20]

The corpus is assembled here: subjects crossed with predicates that cover plain praise and
complaint, negation, intensifiers and diminishers, contrast ("but"), idioms neither lexicon
knows, and emoticons and emoji, plus some free-form texts. VADER's label is the usual one
(compound >= 0.05 positive, <= -0.05 negative); VADER has no "mixed", so agreement is given
both strictly and with "mixed" read as the sign of the keyword score.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

SUBJECTS = ["The delivery", "Customer support", "The app", "This phone", "The hotel room",
            "Our waiter"]  # fmt: skip
PREDICATES = [
    "was great", "was not great", "was okay", "was terrible", "was slow but friendly",
    "could be better", "exceeded my expectations", "was a complete waste of money",
    "was very good", "was slightly disappointing", "was not bad at all", "was fine, I guess",
    "is absolutely amazing!!!", "was rude and useless", "works perfectly", "broke after a day",
    "was good but expensive", "was expensive but good", "made me happy :)", "ruined my day :(",
    "is nothing special", "was surprisingly pleasant", "was awful 😡", "is the best 😍",
    "was not helpful", "never works", "is kind of boring", "was really, really nice",
    "did the job", "arrived on Tuesday",
]  # fmt: skip
FREE = [
    "I love it! Thanks so much 👍", "Worst purchase ever. Do not buy.",
    "Meh. It's fine.", "Not sure how I feel about this update.", "LOVE the new design",
    "The battery dies too fast, but the screen is gorgeous.", "No problems so far.",
    "I can't recommend this enough!", "Nothing works and nobody answers my emails.",
    "It's okay, could be worse.", "Honestly? Pretty impressive.", "Ugh, again?!",
    "Five stars, would buy again.", "Refund please.", "Great, another bug. Just great.",
    "The staff were kind and the room was clean.", "Terrible food, lovely view.",
    "Shipping took three weeks.", "Superb quality for the price.", "I'm disappointed.",
]  # fmt: skip
CORPUS = [f"{s} {p}." for s in SUBJECTS for p in PREDICATES] + FREE
# Reply-length texts (what modelport analyses: a model's reply is usually a few sentences).
_pick = random.Random(7)
REPLIES = [" ".join(_pick.sample(CORPUS, 6)) for _ in range(100)]


def vader_label(compound: float) -> str:
    return "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"


def throughput(fn: Callable[[str], object], texts: list[str], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        for text in texts:
            fn(text)
    return repeat * len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from modelport_keywords import build_analyzer

    vader, keywords = SentimentIntensityAnalyzer(), build_analyzer()
    best: dict[str, dict[str, float]] = {}
    for corpus, texts in (("sentences", CORPUS), ("replies", REPLIES)):
        rates: dict[str, list[float]] = {"keywords": [], "vader": []}
        for _ in range(3):  # interleaved rounds; best of three
            rates["vader"].append(throughput(vader.polarity_scores, texts, args.repeat))
            rates["keywords"].append(throughput(keywords.analyze, texts, args.repeat))
        best[corpus] = {name: max(values) for name, values in rates.items()}

    strict = loose = 0
    disagreements = []
    for text in CORPUS:
        ours = keywords.analyze(text)
        theirs = vader_label(vader.polarity_scores(text)["compound"])
        mine = ours.label.value
        mine_loose = vader_label(ours.score) if mine == "mixed" else mine
        strict += mine == theirs
        loose += mine_loose == theirs
        if mine_loose != theirs:
            disagreements.append((text, ours.label.value, theirs))
    n = len(CORPUS)
    print(f"throughput, {args.repeat} passes, best of 3 interleaved rounds:")
    for corpus, texts in (("sentences", CORPUS), ("replies", REPLIES)):
        words = sum(len(t.split()) for t in texts) / len(texts)
        vader_rate, ours = best[corpus]["vader"], best[corpus]["keywords"]
        print(f"  {len(texts)} {corpus} (~{words:.0f} words): VADER {vader_rate:8.0f}/s, "
              f"keywords {ours:8.0f}/s, {ours / vader_rate:.1f}x")  # fmt: skip
    print(f"labels agree on the {n} sentences: {strict / n:.0%} strictly, "
          f"{loose / n:.0%} with 'mixed' read as the score's sign")  # fmt: skip
    print("some disagreements (text: keywords / VADER):")
    for text, mine, theirs in disagreements[:8]:
        print(f"  {text!r}: {mine} / {theirs}")


if __name__ == "__main__":
    main()
