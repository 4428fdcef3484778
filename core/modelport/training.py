"""Training data: check it, count its tokens, and build it from stored dialogues.

Files are read by :mod:`modelport.datasets` (CSV, JSONL, directories). :func:`check_dataset`
validates a dataset the way the big vendors' fine-tuning data guides do, counts its tokens and, when
the price is known, estimates the cost; every problem names the file and line (or the
dialogue and message). :func:`dataset_from_dialogues` turns stored dialogues into examples,
keeping only the exchanges wanted, and never one that an earlier job learnt already.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeAlias

import attrs

from ._text import invalid_unicode
from .datasets import (
    CsvColumns,
    dataset_to_jsonl,
    load_csv,
    load_dataset,
    load_jsonl,
)
from .errors import ConfigError
from .logs import get_logger
from .types import (
    Dialogue,
    ImagePart,
    Message,
    Part,
    SentimentLabel,
    TextPart,
    TrainingDataset,
    TrainingExample,
)

__all__ = [
    "CsvColumns",
    "DatasetReport",
    "Instructions",
    "Tokenizer",
    "check_dataset",
    "dataset_from_dialogues",
    "dataset_to_jsonl",
    "default_tokenizer",
    "example_exchanges",
    "exchange_key",
    "load_csv",
    "load_dataset",
    "load_jsonl",
    "validate_dataset",
]

#: The common vendor minimum; a trainer may say otherwise with a ``min_examples`` attribute.
MIN_EXAMPLES = 10
#: Tokens every message costs beyond its content, and every example beyond its messages.
MESSAGE_OVERHEAD = 4
EXAMPLE_OVERHEAD = 3


@attrs.frozen
class Tokenizer:
    """Counts the tokens of a text; ``name`` says which tokenizer (or estimate) it is."""

    name: str
    count: Callable[[str], int] = attrs.field(eq=False, repr=False)
    exact: bool = False


def _estimate(text: str) -> int:
    # about four characters per token for English; words count for the rest
    return max(math.ceil(len(text) / 4), math.ceil(len(text.split()) * 1.3)) if text else 0


@functools.cache
def default_tokenizer(encoding: str = "o200k_base") -> Tokenizer:
    """tiktoken's ``encoding`` when tiktoken is installed and has it; else an estimate."""
    try:
        import tiktoken  # type: ignore[import-not-found,unused-ignore]

        encoder = tiktoken.get_encoding(encoding)
    except Exception as exc:  # not installed, or its data cannot be fetched (offline)
        if not isinstance(exc, ImportError):
            get_logger().info("tokenizer_unavailable", encoding=encoding, error=str(exc))
        return Tokenizer("estimate (~4 characters per token)", _estimate)

    def count(text: str) -> int:
        return len(encoder.encode(text, disallowed_special=()))

    return Tokenizer(f"tiktoken {encoding}", count, exact=True)


def example_tokens(example: TrainingExample, tokenizer: Tokenizer) -> int:
    """Tokens one example costs: its messages' text plus the chat format's overhead."""
    text = sum(tokenizer.count(m.text) + MESSAGE_OVERHEAD for m in example.messages)
    return text + EXAMPLE_OVERHEAD


# --- exchanges ---------------------------------------------------------------------------------


def exchange_key(prompt: str, reply: str) -> str:
    """A short stable key for one exchange (the user's text and the assistant's reply)."""
    digest = hashlib.sha256(json.dumps([prompt.strip(), reply.strip()]).encode("utf-8"))
    return digest.hexdigest()[:20]


def _image_key(part: ImagePart) -> str:
    image = part.image
    what = image.data if image.data is not None else (image.url or "").encode("utf-8")
    return hashlib.sha256(what).hexdigest()[:16]


def prompt_text(message: Message) -> str:
    """A question as :func:`exchange_key` reads it: its text, and a digest of each image it
    shows (a text-only question is its text alone, so older keys stay valid)."""
    images = "".join(f"\n[image {_image_key(p)}]" for p in message.images)
    return message.text + images


def example_exchanges(example: TrainingExample) -> list[tuple[int, str]]:
    """``(index, key)`` of every assistant message the example teaches (not context)."""
    found: list[tuple[int, str]] = []
    prompt = ""
    for index, message in enumerate(example.messages):
        if message.role == "user":
            prompt = prompt_text(message)
        elif message.role == "assistant" and index not in example.context:
            found.append((index, exchange_key(prompt, message.text)))
    return found


def dataset_exchanges(dataset: TrainingDataset) -> tuple[str, ...]:
    """The keys of every exchange ``dataset`` teaches, in order, without repeats."""
    keys = (key for example in dataset.examples for _, key in example_exchanges(example))
    return tuple(dict.fromkeys(keys))


# --- validation --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DatasetReport:
    """What :func:`check_dataset` found. ``problems`` block an upload; ``warnings`` do not."""

    source: str
    examples: int
    messages: int
    tokens: int
    max_example_tokens: int
    tokenizer: str
    epochs: int
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: US dollars per million training tokens, when the training backend knows it.
    price_per_million: float | None = None
    #: The model a job would train (see :meth:`modelport.Hub.training_base_model`).
    base_model: str | None = None
    #: The training backend checked against (``None``: none was available).
    backend: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def billed_tokens(self) -> int:
        """Tokens trained on: every example once per epoch."""
        return self.tokens * self.epochs

    @property
    def estimated_cost(self) -> float | None:
        if self.price_per_million is None:
            return None
        return self.billed_tokens * self.price_per_million / 1_000_000


def _where(example: TrainingExample, number: int, source: str) -> str:
    return example.origin or f"{source}: example {number}"


def _shape_problems(example: TrainingExample, where: str) -> list[str]:
    if not example.messages:
        return [f"{where}: no messages"]
    problems: list[str] = []
    for index, message in enumerate(example.messages, start=1):
        if not message.text.strip() and not message.images:
            problems.append(f"{where}: message {index} ({message.role}) is empty")
        if message.images and message.role != "user":
            problems.append(
                f"{where}: message {index} ({message.role}) has images (only user messages may)"
            )
        bad_text = invalid_unicode(message.text, escaped_bytes=False)
        if bad_text:
            problems.append(f"{where}: message {index} ({message.role}) is not text: {bad_text}")
        if message.role == "system" and index > 1:
            problems.append(f"{where}: message {index} is a system message after the first")
    roles = [m.role for m in example.messages]
    if "assistant" not in roles:
        problems.append(f"{where}: no assistant message to learn from")
    elif roles[-1] != "assistant":
        problems.append(f"{where}: the last message must be the assistant's")
    if "user" not in roles:
        problems.append(f"{where}: no user message")
    if example.messages and len(example_exchanges(example)) == 0 and "assistant" in roles:
        problems.append(f"{where}: every assistant message has weight 0; nothing to learn")
    return problems


def check_dataset(
    dataset: TrainingDataset,
    *,
    min_examples: int = MIN_EXAMPLES,
    max_example_tokens: int | None = None,
    tokenizer: Tokenizer | None = None,
    epochs: int = 3,
    price_per_million: float | None = None,
) -> DatasetReport:
    """Validate ``dataset`` and count its tokens (nothing is uploaded).

    Problems: too few examples, empty messages, a system message after the first, no
    user message, an assistant message not last, nothing to learn, the same example twice.
    Warnings: what was left out while building the dataset (``dataset.warnings``), and
    examples over ``max_example_tokens`` (the backend would truncate them).
    """
    tokenizer = tokenizer or default_tokenizer()
    problems: list[str] = []
    warnings: list[str] = list(dataset.warnings)
    if len(dataset.examples) < min_examples:
        problems.append(
            f"{dataset.source}: {len(dataset.examples)} examples; at least {min_examples} needed"
        )
    seen: dict[tuple[tuple[str, str], ...], str] = {}
    total = biggest = messages = 0
    for number, example in enumerate(dataset.examples, start=1):
        where = _where(example, number, dataset.source)
        problems += _shape_problems(example, where)
        shape = tuple((m.role, prompt_text(m).strip()) for m in example.messages)
        if shape in seen:
            problems.append(f"{where}: the same example as {seen[shape]}")
        else:
            seen[shape] = where
        tokens = example_tokens(example, tokenizer)
        total += tokens
        biggest = max(biggest, tokens)
        messages += len(example.messages)
        if max_example_tokens is not None and tokens > max_example_tokens:
            warnings.append(
                f"{where}: about {tokens} tokens, over the limit of {max_example_tokens}; "
                "the backend will truncate it"
            )
    return DatasetReport(
        source=dataset.source,
        examples=len(dataset.examples),
        messages=messages,
        tokens=total,
        max_example_tokens=biggest,
        tokenizer=tokenizer.name,
        epochs=epochs,
        problems=tuple(problems),
        warnings=tuple(warnings),
        price_per_million=price_per_million,
    )


def validate_dataset(dataset: TrainingDataset, *, min_examples: int = 1) -> list[str]:
    """Every problem with ``dataset``, as ``"where: what"``; empty when it is fit to upload."""
    report = check_dataset(
        dataset, min_examples=min_examples, tokenizer=Tokenizer("none", lambda _: 0)
    )
    return list(report.problems)


# --- dialogues ---------------------------------------------------------------------------------

#: What gives a dialogue's system message: one text for all, or a function of the name of the
#: dialogue's assistant (``None`` for the default one) that raises
#: :class:`~modelport.errors.ConfigError` for an assistant no longer configured.
Instructions: TypeAlias = str | Callable[[str | None], str | None] | None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(text: str) -> str:
    """``text`` with any lone surrogate (not text, but a terminal can pass one) replaced by
    U+FFFD, so that it can be written as UTF-8."""
    return _SURROGATE.sub("\ufffd", text) if invalid_unicode(text) else text


def _ids(ids: list[str]) -> str:
    return ", ".join(ids) if len(ids) <= 5 else f"{', '.join(ids[:5])} and {len(ids) - 5} more"


@attrs.define
class _Notes:
    """What :func:`dataset_from_dialogues` leaves out, for the dataset's warnings."""

    images: dict[str, int] = attrs.field(factory=dict)
    #: the image types the training backend takes (empty: none)
    media_types: frozenset[str] = frozenset()
    #: assistants no longer configured -> the dialogues of theirs given the default's
    #: instructions
    unconfigured: dict[str | None, list[str]] = attrs.field(factory=dict)
    empty: list[str] = attrs.field(factory=list)
    dropped: list[str] = attrs.field(factory=list)

    def warnings(self) -> tuple[str, ...]:
        found: list[str] = []
        if self.images:
            count = sum(self.images.values())
            why = (
                f"the training backend takes only {', '.join(sorted(self.media_types))} images"
                if self.media_types
                else "training data holds text only"
            )
            found.append(
                f"{count} image(s) in {len(self.images)} dialogue(s) left out "
                f"({_ids(list(self.images))}): {why}, so replies to a message with images"
                f"{' left out' if self.media_types else ''} are kept as context and not learnt"
            )
        for name, ids in self.unconfigured.items():
            whose = (
                f"dialogue {ids[0]}: its"
                if len(ids) == 1
                else f"{len(ids)} dialogues ({_ids(ids)}): their"
            )
            found.append(
                f"{whose} assistant {name!r} is not configured any more; the default "
                "assistant's instructions were used"
            )
        found += self.empty + self.dropped
        return tuple(found)


def _instructions_for(
    instructions: Instructions, dialogue: Dialogue, notes: _Notes, cache: dict[str | None, str]
) -> str:
    if not callable(instructions):
        return (instructions or "").strip()
    name = dialogue.assistant
    if name not in cache:
        try:
            cache[name] = (instructions(name) or "").strip()
        except ConfigError:  # the assistant was renamed or removed since
            cache[name] = (instructions(None) or "").strip()
            notes.unconfigured[name] = []
    if name in notes.unconfigured:
        notes.unconfigured[name].append(dialogue.id)
    return cache[name]


def _dialogue_text(
    dialogue: Dialogue, wanted: set[SentimentLabel] | None, skip: set[str], notes: _Notes
) -> tuple[list[Message], list[bool]]:
    """The dialogue's messages as text, and whether each is a reply to learn (whose key then
    goes into ``skip``); what is left out goes into ``notes``."""
    kept: list[Message] = []
    learnt: list[bool] = []
    prompt: str | None = None  # the question being answered: None before the first
    pictured = skipping = False
    empty: list[int] = []
    dropped = 0
    for number, stored in enumerate(dialogue.messages, start=1):
        images = _kept_images(stored, notes.media_types)
        if len(images) < len(stored.images):
            left = len(stored.images) - len(images)
            notes.images[dialogue.id] = notes.images.get(dialogue.id, 0) + left
        text = _clean(stored.text)
        learn = False
        if stored.role == "user":
            skipping = not text.strip() and not images
            if skipping:  # an empty question (or only images left out): left out
                empty.append(number)
                continue
            message = Message("user", _parts(text, images))
            prompt, pictured = prompt_text(message), len(images) < len(stored.images)
            kept.append(message)
            learnt.append(False)
            continue
        elif stored.role == "system":
            if number > 1 or not text.strip():
                dropped += 1
                continue
        elif skipping:
            continue
        elif prompt is None or not text.strip():  # no question to answer, or no answer
            dropped += 1
            continue
        else:
            key = exchange_key(prompt, text)
            mood = stored.sentiment.label if stored.sentiment is not None else None
            learn = not pictured and (wanted is None or mood in wanted) and key not in skip
            if learn:
                skip.add(key)
        kept.append(Message(stored.role, text))
        learnt.append(learn)
    if empty:
        notes.empty.append(
            f"dialogue {dialogue.id}: {len(empty)} empty question(s) (message(s) "
            f"{', '.join(map(str, empty))}) left out, with their replies"
        )
    if dropped:
        notes.dropped.append(
            f"dialogue {dialogue.id}: {dropped} message(s) left out (empty replies, replies "
            "before any question, or system messages after the first)"
        )
    return kept, learnt


def _kept_images(message: Message, media_types: frozenset[str]) -> tuple[ImagePart, ...]:
    """The images of a user message that the training backend takes (an image by URL whose
    type is not known is kept: the backend fetches it)."""
    if message.role != "user" or not media_types:
        return ()
    return tuple(
        p
        for p in message.images
        if p.image.media_type in media_types
        or (p.image.media_type is None and p.image.url is not None)
    )


def _parts(text: str, images: tuple[ImagePart, ...]) -> tuple[Part, ...]:
    return ((TextPart(text),) if text.strip() or not images else ()) + images


def dataset_from_dialogues(
    dialogues: Iterable[Dialogue],
    *,
    instructions: Instructions = None,
    labels: Collection[SentimentLabel | str] | None = None,
    exclude: Collection[str] = (),
    media_types: Collection[str] = (),
) -> TrainingDataset:
    """Examples from stored dialogues (the original ``dynamic_train``): one per dialogue.

    An exchange (a user message and the assistant's reply) is *learnt* when the reply's
    sentiment label is in ``labels`` (``None``: any), its key is not in ``exclude`` (the
    exchanges earlier jobs learnt), and it did not already occur in this dataset. Other
    replies stay in as context only (``TrainingExample.context``), and each example ends at
    its last learnt reply; a dialogue with none is left out.

    Each example starts with the dialogue's own instructions: its first message when that is
    a system message, else ``instructions``.

    Images of user messages are kept when their type is in ``media_types`` (the image types
    the training backend takes, for vision fine-tuning; written as ``image_url`` parts by
    :func:`dataset_to_jsonl`). Other images are left out, and the replies to a message that
    had any left out stay as context only (learning them would teach the model to describe
    what it cannot see). An exchange whose question is empty (or was only images left out)
    is left out, as are empty replies, system messages after the first, and replies before
    the first question. What was left out is in the dataset's ``warnings``.

    :param instructions: the system message to put first when the dialogue has none: one
        text, or a function giving the instructions of the dialogue's own assistant from its
        name (see :data:`Instructions`; :meth:`modelport.Hub.dialogue_dataset` passes one).
    :param media_types: the image types to keep (empty: none; text only).
    """
    wanted = {SentimentLabel(label) for label in labels} if labels is not None else None
    skip = set(exclude)
    notes = _Notes(media_types=frozenset(media_types))
    cache: dict[str | None, str] = {}
    examples: list[TrainingExample] = []
    ids: list[str] = []
    for dialogue in dialogues:
        kept, learnt = _dialogue_text(dialogue, wanted, skip, notes)
        if True not in learnt:
            continue
        last = len(learnt) - 1 - learnt[::-1].index(True)
        kept, learnt = kept[: last + 1], learnt[: last + 1]
        if kept[0].role != "system":
            system = _instructions_for(instructions, dialogue, notes, cache)
            if system:
                kept.insert(0, Message("system", system))
                learnt.insert(0, False)
        context = [
            i for i, (m, learn) in enumerate(zip(kept, learnt, strict=True))
            if m.role == "assistant" and not learn
        ]  # fmt: skip
        examples.append(TrainingExample(kept, origin=f"dialogue {dialogue.id}", context=context))
        ids.append(dialogue.id)
    if not ids:
        source = "dialogues (none with an exchange to learn)"
    elif len(ids) <= 3:
        source = f"dialogues {', '.join(ids)}"
    else:
        source = f"{len(ids)} dialogues ({ids[0]} ... {ids[-1]})"
    warnings = notes.warnings()
    for warning in warnings:
        get_logger().warning("dialogue_data_left_out", detail=warning)
    return TrainingDataset(examples, source=source, warnings=warnings)


def describe_report(report: DatasetReport) -> dict[str, Any]:
    """The report as plain data (for ``--json``)."""
    return {
        "source": report.source,
        "ok": report.ok,
        "backend": report.backend,
        "base_model": report.base_model,
        "examples": report.examples,
        "messages": report.messages,
        "tokens": report.tokens,
        "max_example_tokens": report.max_example_tokens,
        "tokenizer": report.tokenizer,
        "epochs": report.epochs,
        "billed_tokens": report.billed_tokens,
        "price_per_million_tokens": report.price_per_million,
        "estimated_cost_usd": report.estimated_cost,
        "problems": list(report.problems),
        "warnings": list(report.warnings),
    }
