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
from collections.abc import Callable, Collection, Iterable
from typing import Any

import attrs

from .datasets import CsvColumns, dataset_to_jsonl, load_csv, load_dataset, load_jsonl
from .logs import get_logger
from .types import Dialogue, Message, SentimentLabel, TextPart, TrainingDataset, TrainingExample

__all__ = [
    "CsvColumns",
    "DatasetReport",
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


def example_exchanges(example: TrainingExample) -> list[tuple[int, str]]:
    """``(index, key)`` of every assistant message the example teaches (not context)."""
    found: list[tuple[int, str]] = []
    prompt = ""
    for index, message in enumerate(example.messages):
        if message.role == "user":
            prompt = message.text
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
        if not message.text.strip():
            problems.append(f"{where}: message {index} ({message.role}) is empty")
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
    Warnings: examples over ``max_example_tokens`` (the backend would truncate them).
    """
    tokenizer = tokenizer or default_tokenizer()
    problems: list[str] = []
    warnings: list[str] = []
    if len(dataset.examples) < min_examples:
        problems.append(
            f"{dataset.source}: {len(dataset.examples)} examples; at least {min_examples} needed"
        )
    seen: dict[tuple[tuple[str, str], ...], str] = {}
    total = biggest = messages = 0
    for number, example in enumerate(dataset.examples, start=1):
        where = _where(example, number, dataset.source)
        problems += _shape_problems(example, where)
        shape = tuple((m.role, m.text.strip()) for m in example.messages)
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


def _text_only(message: Message) -> Message:
    return Message(message.role, [p for p in message.parts if isinstance(p, TextPart)])


def dataset_from_dialogues(
    dialogues: Iterable[Dialogue],
    *,
    instructions: str | None = None,
    labels: Collection[SentimentLabel | str] | None = None,
    exclude: Collection[str] = (),
) -> TrainingDataset:
    """Examples from stored dialogues (the original ``dynamic_train``): one per dialogue.

    An exchange (a user message and the assistant's reply) is *learnt* when the reply's
    sentiment label is in ``labels`` (``None``: any), its key is not in ``exclude`` (the
    exchanges earlier jobs learnt), and it did not already occur in this dataset. Other
    replies stay in as context only (``TrainingExample.context``), and each example ends at
    its last learnt reply; a dialogue with none is left out.

    :param instructions: a system message to put first, when the dialogue has none.
    """
    wanted = {SentimentLabel(label) for label in labels} if labels is not None else None
    skip = set(exclude)
    examples: list[TrainingExample] = []
    ids: list[str] = []
    for dialogue in dialogues:
        messages = [_text_only(m) for m in dialogue.messages]
        offset = 1 if instructions and (not messages or messages[0].role != "system") else 0
        context: list[int] = []
        last = -1
        prompt = ""
        for index, (stored, message) in enumerate(zip(dialogue.messages, messages, strict=True)):
            if message.role == "user":
                prompt = message.text
            if message.role != "assistant":
                continue
            key = exchange_key(prompt, message.text)
            mood = stored.sentiment.label if stored.sentiment is not None else None
            if (wanted is None or mood in wanted) and key not in skip and message.text.strip():
                skip.add(key)
                last = index
            else:
                context.append(index + offset)
        if last < 0:
            continue
        kept = messages[: last + 1]
        if offset:
            kept.insert(0, Message("system", instructions or ""))
        examples.append(
            TrainingExample(
                kept,
                origin=f"dialogue {dialogue.id}",
                context=[i for i in context if i < last + 1 + offset],
            )
        )
        ids.append(dialogue.id)
    if not ids:
        source = "dialogues (none with an exchange to learn)"
    elif len(ids) <= 3:
        source = f"dialogues {', '.join(ids)}"
    else:
        source = f"{len(ids)} dialogues ({ids[0]} ... {ids[-1]})"
    return TrainingDataset(examples, source=source)


def describe_report(report: DatasetReport) -> dict[str, Any]:
    """The report as plain data (for ``--json``)."""
    return {
        "source": report.source,
        "ok": report.ok,
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
