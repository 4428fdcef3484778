"""A sentiment backend on modelport's sentiment kit: a tiny lexicon, with negation."""

from modelport import BackendRegistry, Evidence, hookimpl
from modelport.sentiment import ScoringAnalyzer, SentimentSettings, weigh_words

WORDS = {"good": 1, "great": 1, "love": 1, "thank": 1, "bad": -1, "awful": -1, "hate": -1}


class TinyMood(ScoringAnalyzer):
    def score(self, text: str) -> tuple[float, list[Evidence]]:
        evidence = weigh_words(text, WORDS)
        return sum(e.weight for e in evidence) / max(len(evidence), 1), evidence


@hookimpl
def modelport_register_backends(registry: BackendRegistry) -> None:
    registry.add("tinymood", TinyMood, capabilities=["sentiment"], settings=SentimentSettings)
