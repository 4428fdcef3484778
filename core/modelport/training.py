"""Training data: load it, check it, and turn stored dialogues into examples.

The file format is the chat fine-tuning format: JSON lines, each ``{"messages": [{"role": ...,
"content": ...}, ...]}``. Every problem names the file and line (or dialogue and message).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable
from pathlib import Path

from .errors import TrainingDataError
from .types import (
    ROLES,
    Dialogue,
    Message,
    SentimentLabel,
    TextPart,
    TrainingDataset,
    TrainingExample,
)

__all__ = ["dataset_from_dialogues", "dataset_to_jsonl", "load_jsonl", "validate_dataset"]


def load_jsonl(path: str | os.PathLike[str]) -> TrainingDataset:
    """Read a chat-format JSONL file.

    :raises TrainingDataError: listing every bad line as ``file:line: what``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrainingDataError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise TrainingDataError(
            [f"{path}:{line}: not valid UTF-8 (byte {exc.start})"], hint="save the file as UTF-8"
        ) from None
    examples: list[TrainingExample] = []
    problems: list[str] = []
    for number, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(content)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list):
            problems.append(f"{where}: expected an object with a 'messages' list")
            continue
        parsed: list[Message] = []
        for index, item in enumerate(messages, start=1):
            if not isinstance(item, dict) or not isinstance(item.get("content"), str):
                problems.append(f"{where}: message {index} needs a string 'content'")
                break
            if item.get("role") not in ROLES:
                problems.append(f"{where}: message {index} has unknown role {item.get('role')!r}")
                break
            parsed.append(Message(item["role"], item["content"]))
        else:
            examples.append(TrainingExample(parsed, origin=where))
    if problems:
        raise TrainingDataError(problems)
    return TrainingDataset(examples, source=str(path))


def validate_dataset(dataset: TrainingDataset, *, min_examples: int = 1) -> list[str]:
    """Every problem with ``dataset``, as ``"where: what"``; empty when it is fit to upload."""
    problems: list[str] = []
    if len(dataset.examples) < min_examples:
        problems.append(
            f"{dataset.source}: {len(dataset.examples)} examples, at least {min_examples} needed"
        )
    for number, example in enumerate(dataset.examples, start=1):
        where = example.origin or f"{dataset.source}: example {number}"
        if not example.messages:
            problems.append(f"{where}: no messages")
            continue
        for index, message in enumerate(example.messages, start=1):
            if not message.text.strip():
                problems.append(f"{where}: message {index} ({message.role}) is empty")
        if example.messages[-1].role != "assistant":
            problems.append(f"{where}: the last message must be the assistant's")
    return problems


def dataset_from_dialogues(
    dialogues: Iterable[Dialogue],
    *,
    instructions: str | None = None,
    labels: Collection[SentimentLabel | str] | None = None,
) -> TrainingDataset:
    """One example per stored dialogue (the original ``dynamic_train``).

    :param instructions: a system message to put first, when the dialogue has none.
    :param labels: keep only dialogues whose every assistant reply has one of these sentiment
        labels (e.g. ``{"positive"}``); ``None`` keeps all.
    """
    wanted = {SentimentLabel(label) for label in labels} if labels is not None else None
    examples: list[TrainingExample] = []
    ids: list[str] = []
    for dialogue in dialogues:
        messages = [
            Message(m.role, [p for p in m.parts if isinstance(p, TextPart)])
            for m in dialogue.messages
        ]
        while messages and messages[-1].role != "assistant":
            messages.pop()
        if not messages:
            continue
        if wanted is not None and any(
            m.role == "assistant" and (m.sentiment is None or m.sentiment.label not in wanted)
            for m in dialogue.messages
        ):
            continue
        if instructions and messages[0].role != "system":
            messages.insert(0, Message("system", instructions))
        examples.append(TrainingExample(messages, origin=f"dialogue {dialogue.id}"))
        ids.append(dialogue.id)
    source = f"dialogues {', '.join(ids)}" if ids else "dialogues (none matched)"
    return TrainingDataset(examples, source=source)


def dataset_to_jsonl(dataset: TrainingDataset) -> str:
    """The dataset in the chat fine-tuning JSONL format (text parts only)."""
    lines = (
        json.dumps(
            {"messages": [{"role": m.role, "content": m.text} for m in example.messages]},
            ensure_ascii=False,
        )
        for example in dataset.examples
    )
    return "".join(f"{line}\n" for line in lines)
