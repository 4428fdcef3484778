"""modelport's keyword sentiment plugin: scores a text from lexicons, in one pass.

Built-in English and Russian lexicons (words and stems, negators, intensifiers and
diminishers, contrast words), emoticons and emoji; custom lexicons from config or JSON files
extend or replace them. It is the default sentiment backend, ``keywords``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from modelport import BackendContext, BackendRegistry, hookimpl
from modelport.errors import ConfigError

from ._analyzer import KeywordAnalyzer, Lexicon, Thresholds
from ._builtin import BUILTIN, EMOTICONS

__all__ = [
    "KeywordAnalyzer",
    "KeywordSettings",
    "Lexicon",
    "Thresholds",
    "build_analyzer",
    "modelport_register_backends",
]

#: A lexicon file's sections: True for {term: weight} objects, False for arrays of terms.
_SECTIONS = {
    "words": True,
    "stems": True,
    "negators": False,
    "intensifiers": True,
    "contrast": False,
}


@attrs.frozen(kw_only=True)
class KeywordSettings:
    """The keys of ``[backends.keywords]``.

    :ivar languages: the built-in lexicons to use (``"en"``, ``"ru"``).
    :ivar lexicons: JSON lexicon files, laid over the built-ins in order (see the docs).
    :ivar words: extra words and their weights (-4..4), laid over everything else.
    :ivar replace: use only ``lexicons`` and ``words``, none of the built-in words.
    :ivar positive_threshold: a score at or above this is positive.
    :ivar negative_threshold: a score at or below minus this is negative.
    :ivar mixed_ratio: the weaker side is at least this share of the stronger one...
    :ivar mixed_min: ...and at least this strong, for the label "mixed".
    """

    languages: tuple[str, ...] = ("en", "ru")
    lexicons: tuple[str, ...] = ()
    words: Mapping[str, float] = attrs.field(factory=dict)
    replace: bool = False
    positive_threshold: float = 0.05
    negative_threshold: float = 0.05
    mixed_ratio: float = 0.6
    mixed_min: float = 1.0


def _load_lexicon(path: str) -> dict[str, Any]:
    file = Path(path).expanduser()
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("no such lexicon file", path=str(file)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the lexicon: {exc}", path=str(file)) from None
    if not isinstance(data, dict):
        raise ConfigError("a lexicon is a JSON object", path=str(file))
    for key, value in data.items():
        weighted = _SECTIONS.get(key)
        if weighted is None:
            raise ConfigError(
                f"unknown section {key!r}",
                path=str(file),
                hint=f"a lexicon has {', '.join(_SECTIONS)}",
            )
        if weighted and isinstance(value, dict):
            _check_weights(value, str(file), key)
        elif weighted or not isinstance(value, list):
            shape = "an object of term: weight" if weighted else "an array of terms"
            raise ConfigError(f"{key!r} must be {shape}", path=str(file))
    return data


def _check_weights(weights: Mapping[str, Any], path: str | None, section: str) -> None:
    for term, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ConfigError(f"{section}.{term}: the weight must be a number", path=path)
        limit = 10 if section == "intensifiers" else 4
        if not -limit <= weight <= limit:
            raise ConfigError(
                f"{section}.{term}: weight {weight} is outside -{limit}..{limit}", path=path
            )


def build_analyzer(settings: KeywordSettings | None = None) -> KeywordAnalyzer:
    """An analyser for ``settings`` (the built-in English and Russian lexicons by default).

    :raises ConfigError: for an unknown language, or a lexicon file that cannot be used.
    """
    settings = settings or KeywordSettings()
    unknown = sorted(set(settings.languages) - set(BUILTIN))
    if unknown:
        raise ConfigError(
            f"no built-in lexicon for {', '.join(unknown)}",
            key="backends.keywords.languages",
            hint=f"built in: {', '.join(BUILTIN)}; add others with lexicons = [...]",
        )
    parts: list[Mapping[str, Any]] = []
    for language in settings.languages:
        builtin = BUILTIN[language]
        parts.append({**builtin, "words": {}, "stems": {}} if settings.replace else builtin)
    parts += [_load_lexicon(path) for path in settings.lexicons]
    _check_weights(settings.words, None, "backends.keywords.words")
    parts.append({"words": dict(settings.words)})
    thresholds = Thresholds(
        positive=settings.positive_threshold,
        negative=settings.negative_threshold,
        mixed_ratio=settings.mixed_ratio,
        mixed_min=settings.mixed_min,
    )
    return KeywordAnalyzer(Lexicon.merge(parts, EMOTICONS), thresholds)


def _build(context: BackendContext[KeywordSettings]) -> KeywordAnalyzer:
    return build_analyzer(context.settings)


@hookimpl
def modelport_register_backends(registry: BackendRegistry) -> None:
    """Offer ``keywords``, the default sentiment analyser."""
    registry.add(
        "keywords",
        _build,
        capabilities=["sentiment"],
        settings=KeywordSettings,
        default_for=["sentiment"],
        description="lexicon sentiment: English and Russian, negation, intensifiers, emoji",
    )
