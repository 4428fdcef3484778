"""The one converter: value objects round-trip, stored records carry a schema version."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import attrs
import pytest

from modelport import (
    ChatOptions,
    Dialogue,
    Evidence,
    Image,
    ImagePart,
    JobRecord,
    JobStatus,
    Message,
    Sentiment,
    TextPart,
    TrainingJob,
)
from modelport.errors import CorruptRecordError, ImageError
from modelport.serialization import (
    converter,
    dump_record,
    dumps_record,
    load_record,
    loads_record,
    make_modelport_converter,
)
from modelport.testing import TINY_PNG

PNG = TINY_PNG
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _message() -> Message:
    return Message(
        "assistant",
        [TextPart("a cat"), ImagePart(Image.from_bytes(PNG), detail="low")],
        created_at=NOW,
        model="m",
        sentiment=Sentiment("positive", 0.5, [Evidence("cat", 0.5)], analyzer="k"),
    )


def test_message_round_trips_with_tagged_parts_and_base64_images() -> None:
    data = converter.unstructure(_message())
    assert [p["type"] for p in data["parts"]] == ["text", "image"]
    assert data["parts"][1]["image"]["data"] == base64.b64encode(PNG).decode()
    assert data["created_at"] == "2026-11-24T12:00:00+00:00"
    assert converter.structure(json.loads(json.dumps(data)), Message) == _message()


def test_records_carry_a_schema_version_and_are_one_line() -> None:
    line = dumps_record(_message())
    assert "\n" not in line
    assert json.loads(line)["schema"] == "message/1"
    assert loads_record(line, Message) == _message()


def test_job_record_round_trips() -> None:
    job = TrainingJob(id="j1", backend="b", base_model="m", status="running", created_at=NOW)
    record = JobRecord("j1", "b", "m", source="data.jsonl").with_status(job, at=NOW)
    assert record.status is JobStatus.RUNNING
    assert load_record(dump_record(record), JobRecord) == record


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "not valid JSON"),
        ('{"role": "user", "parts": []}', "no valid 'schema'"),
        ('{"schema": "job/1", "role": "user", "parts": []}', "expected a 'message' record"),
        ('{"schema": "message/99", "role": "user", "parts": []}', "newer than this modelport"),
        ('{"schema": "message/1", "role": "user", "parts": [], "colour": 1}', "colour"),
        ('{"schema": "message/1", "role": "robot", "parts": []}', "role"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_damaged_records_name_file_and_line(text: str, needle: str) -> None:
    with pytest.raises(CorruptRecordError) as info:
        loads_record(text, Message, path="d/1.jsonl", line=3)
    assert str(info.value).startswith("d/1.jsonl:3: ")
    assert needle in str(info.value)


def test_dialogue_and_options_round_trip() -> None:
    dialogue = Dialogue("d1", NOW, [Message("user", "hi", created_at=NOW)], assistant="helper")
    assert load_record(dump_record(dialogue), Dialogue) == dialogue
    options = ChatOptions(temperature=0.2, stop=["\n"], json_schema={"type": "object"})
    assert converter.structure(converter.unstructure(options), ChatOptions) == options


def test_a_fresh_converter_matches_the_shared_one_and_global_cattrs_is_untouched() -> None:
    import cattrs

    assert make_modelport_converter().unstructure(_message()) == converter.unstructure(_message())
    assert cattrs.global_converter.unstructure(TextPart("x")) == {"text": "x"}


def test_image_validation_and_repr() -> None:
    image = Image.from_bytes(PNG, source="cat.png")
    assert image.media_type == "image/png"
    assert repr(image) == "Image(image/png, 79 bytes, cat.png)"
    with pytest.raises(ImageError, match="empty"):
        Image.from_bytes(b"", source="e.jpg")
    with pytest.raises(ImageError, match="not a recognised image"):
        Image.from_bytes(b"<html>", source="page.jpg")
    with pytest.raises(ImageError, match="must start with"):
        Image.from_url("ftp://x/y.png")


def test_values_are_frozen_and_validated() -> None:
    message = Message("user", "hi")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        message.role = "assistant"  # type: ignore[misc]
    with pytest.raises(ValueError, match="role"):
        Message("robot", "hi")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        Sentiment("positive", 1.5)
    assert message.parts == (TextPart("hi"),)


def test_options_merge_lays_the_second_over_the_first() -> None:
    base = ChatOptions(temperature=0.1, max_tokens=50, extra={"a": 1})
    merged = base.merged(ChatOptions(max_tokens=10, extra={"b": 2}))
    assert (merged.temperature, merged.max_tokens, merged.extra) == (0.1, 10, {"a": 1, "b": 2})
