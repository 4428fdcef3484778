"""Training data: loaders, a corpus of bad files, the check report, dialogue datasets."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelport import (
    Image,
    ImagePart,
    Message,
    Sentiment,
    SentimentLabel,
    TextPart,
    TrainingDataset,
    TrainingExample,
)
from modelport.cli import CliState, cli
from modelport.errors import ConfigError, TrainingDataError
from modelport.testing import TINY_PNG, FakeBackends, make_test_async_hub, make_test_hub
from modelport.training import (
    CsvColumns,
    Tokenizer,
    check_dataset,
    dataset_to_jsonl,
    default_tokenizer,
    exchange_key,
    load_csv,
    load_dataset,
    load_jsonl,
)

WORDS = Tokenizer("words", lambda text: len(text.split()))


def example(prompt: str, reply: str, origin: str | None = None) -> TrainingExample:
    return TrainingExample([Message("user", prompt), Message("assistant", reply)], origin=origin)


# --- loaders -----------------------------------------------------------------------------------


def test_csv_prompt_response_pairs_with_optional_system(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(
        'prompt,response,system\n2+2?,4,\n"Say ""hi""\nplease","Hi, there",Be brief.\n',
        encoding="utf-8",
    )
    dataset = load_csv(path)
    assert [e.origin for e in dataset.examples] == [f"{path}:2", f"{path}:3"]
    second = dataset.examples[1].messages
    assert [(m.role, m.text) for m in second] == [
        ("system", "Be brief."),
        ("user", 'Say "hi"\nplease'),
        ("assistant", "Hi, there"),
    ]


def test_csv_columns_are_configurable(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\nWhy?,Because.\n")
    columns = CsvColumns.parse("prompt=question, response=answer")
    assert load_csv(path, columns).examples[0].messages[1].text == "Because."
    with pytest.raises(ConfigError, match="bad column mapping 'prompt'"):
        CsvColumns.parse("prompt")
    with pytest.raises(ConfigError, match="bad column mapping 'colour=red'"):
        CsvColumns.parse("colour=red")


def test_csv_role_content_rows_grouped_by_conversation_or_by_turns(tmp_path: Path) -> None:
    grouped = tmp_path / "grouped.csv"
    grouped.write_text(
        "conversation,role,content\n"
        "a,user,hi\na,assistant,hello\na,user,bye\na,assistant,ciao\n"
        "b,system,terse\nb,user,2+2\nb,assistant,4\n"
    )
    dataset = load_csv(grouped)
    assert [len(e.messages) for e in dataset.examples] == [4, 3]
    assert dataset.examples[1].origin == f"{grouped}:6"
    plain = tmp_path / "plain.csv"
    plain.write_text("role,content\nuser,hi\nassistant,hello\nUser,bye\nassistant,ciao\n")
    assert [len(e.messages) for e in load_csv(plain).examples] == [2, 2]


def test_jsonl_weights_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b", "weight": 0},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
    ]
    path.write_text(json.dumps({"messages": messages}) + "\n")
    dataset = load_jsonl(path)
    assert dataset.examples[0].context == (1,)
    assert json.loads(dataset_to_jsonl(dataset)) == {"messages": messages}


def test_a_directory_reads_every_csv_and_jsonl_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.jsonl").write_text(
        json.dumps({"messages": [{"role": "user", "content": "q2"},
                                 {"role": "assistant", "content": "a2"}]}) + "\n"
    )  # fmt: skip
    (tmp_path / "a.csv").write_text("prompt,response\nq1,a1\n")
    (tmp_path / "notes.txt").write_text("ignored")
    dataset = load_dataset(tmp_path)
    assert [e.messages[0].text for e in dataset.examples] == ["q1", "q2"]
    assert dataset.source == str(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrainingDataError, match=r"no \.csv or \.jsonl files"):
        load_dataset(empty)
    with pytest.raises(TrainingDataError, match=r"notes\.txt: not a \.csv or \.jsonl file"):
        load_dataset(tmp_path / "notes.txt")


def test_jsonl_lines_end_at_newline_only(tmp_path: Path) -> None:
    """U+2028, U+0085, form feed and the like are text inside a JSON string, not line breaks:
    str.splitlines() would split there and misnumber every later line."""
    path = tmp_path / "odd.jsonl"
    awkward = "a\u2028b\u2029c\x85d\x0ce\x0bf\x1cg\x1dh\x1ei\0j"
    good = json.dumps(
        {"messages": [{"role": "user", "content": awkward}, {"role": "assistant", "content": "k"}]},
        ensure_ascii=False,
    )
    path.write_text(f"{good}\r\n\n{good}\n{{broken\n", encoding="utf-8")
    with pytest.raises(TrainingDataError) as caught:
        load_jsonl(path)
    assert caught.value.problems == (
        f"{path}:4: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
    )
    path.write_text(f"{good}\r\n\n{good}\n\ufeff{good}", encoding="utf-8")
    dataset = load_jsonl(path)
    assert [e.origin for e in dataset.examples] == [f"{path}:1", f"{path}:3", f"{path}:4"]
    assert dataset.examples[0].messages[0].text == awkward


def test_csv_fields_over_128_kib_are_read(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    long = "word " * 60_000  # 300 KB, over the csv module's default field limit
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([["prompt", "response"], ["summarise this", long]])
    (example,) = load_csv(path).examples
    assert example.messages[1].text == long


def test_paths_that_are_not_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="not a usable file name"):
        load_dataset(str(tmp_path / "a\0b.csv"))
    with pytest.raises(TrainingDataError, match="not a usable file name"):
        load_jsonl(str(tmp_path / "a\0b.jsonl"))
    with pytest.raises(TrainingDataError, match="cannot read"):
        load_dataset(tmp_path / ("x" * 5000 + ".csv"))
    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    with pytest.raises(TrainingDataError, match="not a regular file"):
        load_dataset(pipe)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("prompt,response\nq,a\n")
    os.symlink(tmp_path / "data", tmp_path / "data" / "loop")  # a link back up the tree
    assert len(load_dataset(tmp_path / "data").examples) == 1


# --- the bad-file corpus: every problem says what and where ------------------------------------

BAD_FILES: dict[str, tuple[bytes, list[str]]] = {
    "wrong_columns.csv": (
        b"question,answer\nq,a\n",
        [
            ":1: expected columns 'prompt' and 'response', or 'role' and 'content'; "
            "found 'question', 'answer'"
        ],
    ),
    "empty_cells.csv": (
        b"prompt,response\nq1,\n,a2\nq3,a3\n",
        [":2: empty 'response'", ":3: empty 'prompt'"],
    ),
    "ragged.csv": (b"prompt,response\nq1,a1,extra\n", [":2: 3 cells, but the header has 2"]),
    "broken_quoting.csv": (
        b'prompt,response\nq1,a1\n"q2,a2\nq3,a3\n',
        [":3: broken CSV quoting"],
    ),
    "bad_role.csv": (b"role,content\nuser,hi\nwizard,abracadabra\n", [":3: unknown role 'wizard'"]),
    "latin1.csv": (
        "prompt,response\ncaf\u00e9,ok\n".encode("latin-1"),
        [":2: not valid UTF-8 (byte 0xe9 at column 4)"],
    ),
    "latin1.jsonl": (
        b'{"messages": []}\n' + '{"x": "\u00e9"}\n'.encode("latin-1"),
        [":2: not valid UTF-8"],
    ),
    "broken_line.jsonl": (
        b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
        b'{"messages": [{"role": "user", "content": "q2"}\n'
        b'["not", "an", "object"]\n'
        b'{"messages": [{"role": "user", "content": 5}]}\n'
        b'{"messages": [{"role": "user", "content": "q", "colour": "red"}]}\n'
        b'{"messages": [{"role": "assistant", "content": "a", "weight": 2}]}\n',
        [
            ":2: not valid JSON",
            ":3: expected an object with a 'messages' list",
            ":4: message 1 (user) needs a string 'content'",
            ":5: message 1 has unknown key(s) colour",
            ":6: message 1: 'weight' must be 0 or 1",
        ],
    ),
    "empty.csv": (b"", [":1: the file is empty (expected a header row)"]),
    "broken_header.csv": (b'"prompt,response\nq,a\n', [":1: broken CSV quoting"]),
    "header_after_blank_lines.csv": (b"\n\nquestion,answer\n", [":3: expected columns"]),
    # valid JSON that crashed the loader with a traceback, and JSON it cannot take
    "odd_json.jsonl": (
        b'{"messages": [{"role": ["user"], "content": "q"}]}\n'
        b'{"messages": [{"role": {"a": 1}, "content": "q"}]}\n'
        + b'{"messages": [], "deep": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}\n"
        + b'{"messages": [], "n": '
        + b"9" * 5000
        + b"}\n"
        + b'{"messages": [{"role": "user", "content": "\\ud800 lone"}]}\n',
        [
            ":1: message 1 has unknown role ['user']",
            ":2: message 1 has unknown role {'a': 1}",
            ":3: JSON nested too deeply to read",
            ":4: a number too long to read (over 4300 digits)",
            ":5: message 1 (user): the content is not text: character 1 is a lone surrogate "
            "(U+D800)",
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_training_files_name_file_line_and_what(name: str, tmp_path: Path) -> None:
    content, expected = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(TrainingDataError) as caught:
        load_dataset(path)
    problems = caught.value.problems
    assert len(problems) == len(expected), problems
    for problem, part in zip(problems, expected, strict=True):
        assert problem.startswith(str(path) + ":")
        assert f"{path}{part}" in problem or part in problem, (problem, part)


def test_a_directory_reports_the_problems_of_every_file_at_once(tmp_path: Path) -> None:
    for name in ("empty_cells.csv", "broken_line.jsonl"):
        (tmp_path / name).write_bytes(BAD_FILES[name][0])
    with pytest.raises(TrainingDataError) as caught:
        load_dataset(tmp_path)
    assert len(caught.value.problems) == 2 + 5


# --- the check report ----------------------------------------------------------------------


def test_check_finds_every_shape_problem_and_duplicates() -> None:
    dataset = TrainingDataset(
        [
            example("q", "a", "f:1"),
            TrainingExample([Message("user", "q")], origin="f:2"),
            TrainingExample(
                [Message("user", "q"), Message("assistant", "a"), Message("user", "more?")],
                origin="f:3",
            ),
            TrainingExample([Message("user", " "), Message("assistant", "a")], origin="f:4"),
            TrainingExample(
                [Message("user", "q"), Message("system", "late"), Message("assistant", "x")],
                origin="f:5",
            ),
            example("q", "a", "f:6"),
            TrainingExample([Message("system", "s"), Message("assistant", "a")], origin="f:7"),
        ],
        source="f",
    )
    report = check_dataset(dataset, min_examples=10, tokenizer=WORDS)
    assert list(report.problems) == [
        "f: 7 examples; at least 10 needed",
        "f:2: no assistant message to learn from",
        "f:3: the last message must be the assistant's",
        "f:4: message 1 (user) is empty",
        "f:5: message 2 is a system message after the first",
        "f:6: the same example as f:1",
        "f:7: no user message",
    ]
    assert not report.ok


def test_check_counts_tokens_and_estimates_cost() -> None:
    dataset = TrainingDataset([example("one two three", "four five")] * 1, source="d")
    report = check_dataset(
        dataset, min_examples=1, tokenizer=WORDS, epochs=4, price_per_million=2.0,
        max_example_tokens=10,
    )  # fmt: skip
    # 3 + 2 words, 4 overhead per message, 3 per example
    assert report.tokens == 5 + 2 * 4 + 3 == report.max_example_tokens
    assert report.billed_tokens == 64
    assert report.estimated_cost == pytest.approx(64 * 2.0 / 1e6)
    assert report.warnings == ("d: example 1: about 16 tokens, over the limit of 10; "
                               "the backend will truncate it",)  # fmt: skip
    assert report.ok


def test_the_default_tokenizer_is_tiktoken_or_a_stated_estimate() -> None:
    tokenizer = default_tokenizer()
    if tokenizer.exact:
        assert tokenizer.name.startswith("tiktoken")
    else:
        assert tokenizer.name.startswith("estimate")
        assert tokenizer.count("") == 0
        assert tokenizer.count("word " * 100) == 130
    assert 1 <= tokenizer.count("Hello, world!") <= 6


# --- datasets from dialogues -----------------------------------------------------------------


def _mood(label: str) -> Sentiment:
    return Sentiment(SentimentLabel(label), 0.5 if label == "positive" else -0.5)


def test_only_happy_exchanges_are_learnt_and_never_twice_across_jobs(fakes: FakeBackends) -> None:
    hub = make_test_hub(fakes)
    store = fakes.store
    first = store.create_dialogue(assistant=None).id
    store.append(first, Message("user", "hi"))
    store.append(first, Message("assistant", "hello!", sentiment=_mood("positive")))
    store.append(first, Message("user", "price?"))
    store.append(first, Message("assistant", "no idea", sentiment=_mood("negative")))
    store.append(first, Message("user", "thanks"))
    store.append(first, Message("assistant", "glad to help", sentiment=_mood("positive")))

    dataset = hub.dialogue_dataset(labels={"positive"})
    (only,) = dataset.examples
    assert only.context == (3,)  # the unhappy reply stays as context, weight 0
    assert '"weight": 0' in dataset_to_jsonl(dataset)
    hub.train(dataset, base_model="base")
    (record,) = hub.jobs()
    assert set(record.exchanges) == {
        exchange_key("hi", "hello!"),
        exchange_key("thanks", "glad to help"),
    }

    # the dialogue goes on; the next job learns only what is new
    store.append(first, Message("user", "bye"))
    store.append(first, Message("assistant", "see you", sentiment=_mood("positive")))
    (again,) = hub.dialogue_dataset(labels={"positive"}).examples
    assert again.context == (1, 3, 5)
    assert len(again.messages) == 8
    # nothing new: no example at all; unless a repeat is asked for
    second = hub.train(hub.dialogue_dataset(labels={"positive"}), base_model="base")
    assert hub.dialogue_dataset(labels={"positive"}).examples == ()
    assert len(hub.dialogue_dataset(labels={"positive"}, repeat=True).examples) == 1
    # a cancelled job learnt nothing, so its exchanges are free again
    hub.cancel_job(second.id)
    (freed,) = hub.dialogue_dataset(labels={"positive"}).examples
    assert freed.context == (1, 3, 5)  # "see you" is free again


def test_the_same_exchange_in_two_dialogues_is_learnt_once(fakes: FakeBackends) -> None:
    hub = make_test_hub(fakes)
    for _ in range(2):
        dialogue = fakes.store.create_dialogue(assistant=None).id
        fakes.store.append(dialogue, Message("user", "hi"))
        fakes.store.append(dialogue, Message("assistant", "hello!"))
    assert len(hub.dialogue_dataset().examples) == 1


def test_check_dataset_through_the_hub_uses_the_trainer_s_needs(
    fakes: FakeBackends, tmp_path: Path
) -> None:
    path = tmp_path / "d.csv"
    path.write_text("prompt,response\nq,a\n")
    hub = make_test_hub(fakes)
    report = hub.check_dataset(path, base_model="base", hyperparameters={"n_epochs": 2})
    assert (report.examples, report.epochs, report.ok) == (1, 2, True)
    fakes.trainer.min_examples = 5
    assert hub.check_dataset(path, base_model="base").problems == (
        f"{path}: 1 examples; at least 5 needed",
    )
    strict = make_test_hub(fakes, overrides={"training": {"min_examples": 1}})
    assert strict.check_dataset(path, base_model="base").ok


def _dialogue(fakes: FakeBackends, assistant: str | None, *messages: Message) -> str:
    dialogue = fakes.store.create_dialogue(assistant=assistant).id
    for message in messages:
        fakes.store.append(dialogue, message)
    return dialogue


ASSISTANTS = {
    "default_assistant": "helper",
    "assistants": {
        "helper": {"instructions": "Be helpful."},
        "support": {"instructions": "Be kind.\u2028Always."},
        "terse": {},
    },
}


def test_each_dialogue_is_taught_with_its_own_assistant_s_instructions(
    fakes: FakeBackends,
) -> None:
    ids = {
        name: _dialogue(fakes, name, Message("user", f"q {name}"), Message("assistant", "a"))
        for name in ("support", "terse", None, "renamed")
    }
    hub = make_test_hub(fakes, overrides=ASSISTANTS)
    dataset = hub.dialogue_dataset(repeat=True)
    systems = {
        e.origin: e.messages[0].text if e.messages[0].role == "system" else None
        for e in dataset.examples
    }
    assert systems == {
        f"dialogue {ids['support']}": "Be kind.\u2028Always.",
        f"dialogue {ids['terse']}": None,  # an assistant without instructions
        f"dialogue {ids[None]}": "Be helpful.",  # no assistant: the default one
        f"dialogue {ids['renamed']}": "Be helpful.",  # no longer configured: the default
    }
    assert dataset.warnings == (
        f"dialogue {ids['renamed']}: its assistant 'renamed' is not configured any more; "
        "the default assistant's instructions were used",
    )
    assert hub.check_dataset(dataset).warnings == dataset.warnings


def test_one_warning_per_removed_assistant_names_all_its_dialogues(fakes: FakeBackends) -> None:
    gone = [
        _dialogue(fakes, "gone", Message("user", f"q {n}"), Message("assistant", f"a {n}"))
        for n in range(7)
    ]
    old = _dialogue(fakes, "old", Message("user", "q old"), Message("assistant", "a old"))
    _dialogue(fakes, "support", Message("user", "q s"), Message("assistant", "a s"))
    hub = make_test_hub(fakes, overrides=ASSISTANTS)
    dataset = hub.dialogue_dataset(repeat=True)
    systems = {e.origin: e.messages[0].text for e in dataset.examples}
    assert [systems[f"dialogue {i}"] for i in [*gone, old]] == ["Be helpful."] * 8
    (many,) = [w for w in dataset.warnings if "'gone'" in w]
    (one,) = [w for w in dataset.warnings if "'old'" in w]
    assert len(dataset.warnings) == 2
    assert many.startswith("7 dialogues (")
    assert many.endswith(
        " and 2 more): their assistant 'gone' is not configured any more; the default "
        "assistant's instructions were used"
    )
    assert sum(i in many for i in gone) == 5  # the first few, and a count of the rest
    assert one == (
        f"dialogue {old}: its assistant 'old' is not configured any more; "
        "the default assistant's instructions were used"
    )


async def test_the_async_hub_uses_each_dialogue_s_instructions(fakes: FakeBackends) -> None:
    _dialogue(fakes, "support", Message("user", "q"), Message("assistant", "a"))
    hub = make_test_async_hub(fakes, overrides=ASSISTANTS)
    (example,) = (await hub.dialogue_dataset()).examples
    assert example.messages[0] == Message("system", "Be kind.\u2028Always.")


def test_images_and_empty_questions_are_left_out_with_warnings(fakes: FakeBackends) -> None:
    picture = ImagePart(Image.from_bytes(TINY_PNG))
    pictured = _dialogue(
        fakes,
        None,
        Message("user", [TextPart("what is this?"), picture, picture]),
        Message("assistant", "a cat"),  # about an image the model will not see: context
        Message("user", "and its name?"),
        Message("assistant", "Tom"),
    )
    blank = _dialogue(
        fakes,
        None,
        Message("user", "  "),  # an empty question: the exchange is left out
        Message("assistant", "pardon?"),
        Message("user", [picture]),  # only an image: empty as text, left out too
        Message("assistant", "a dog"),
        Message("user", "hi"),
        Message("assistant", "hello"),
        Message("assistant", " "),  # an empty reply
    )
    only_images = _dialogue(fakes, None, Message("user", [picture]), Message("assistant", "x"))
    hub = make_test_hub(fakes)
    dataset = hub.dialogue_dataset()
    by_origin = {e.origin: e for e in dataset.examples}
    assert set(by_origin) == {f"dialogue {pictured}", f"dialogue {blank}"}
    first, second = by_origin[f"dialogue {pictured}"], by_origin[f"dialogue {blank}"]
    assert [(m.role, m.text) for m in first.messages] == [
        ("user", "what is this?"), ("assistant", "a cat"),
        ("user", "and its name?"), ("assistant", "Tom"),
    ]  # fmt: skip
    assert first.context == (1,)
    assert [(m.role, m.text) for m in second.messages] == [("user", "hi"), ("assistant", "hello")]
    images, *others = dataset.warnings
    listed = images.split("left out (", 1)[1].split(")", 1)[0]
    assert images == (
        f"4 image(s) in 3 dialogue(s) left out ({listed}): training data holds text only, so "
        "replies to a message with images are kept as context and not learnt"
    )
    assert set(listed.split(", ")) == {pictured, blank, only_images}
    assert sorted(others) == sorted([
        f"dialogue {blank}: 2 empty question(s) (message(s) 1, 3) left out, with their replies",
        f"dialogue {only_images}: 1 empty question(s) (message(s) 1) left out, with their "
        "replies",
        f"dialogue {blank}: 1 message(s) left out (empty replies, replies before any "
        "question, or system messages after the first)",
    ])  # fmt: skip
    report = hub.check_dataset(dataset, base_model="base")
    assert report.problems == ()
    assert report.warnings == dataset.warnings


def test_exported_dialogues_pass_train_check(fakes: FakeBackends, tmp_path: Path) -> None:
    """``dialogues export --format jsonl`` writes what ``train --check`` accepts: text with
    U+2028 and the like, each dialogue's instructions, images and empty questions left out."""
    awkward = "line\u2028separator, NEL\x85, form feed\x0c, NUL\0, \U0001f600"
    ids = [
        _dialogue(
            fakes,
            "support" if i % 2 else None,
            Message("user", f"question {i}: {awkward}"),
            Message("assistant", f"answer {i}\u2029{awkward}"),
            Message("user", [ImagePart(Image.from_bytes(TINY_PNG))]),
            Message("assistant", "an image"),
            Message("user", "lone \udcff surrogate from a terminal"),
            Message("assistant", "ok"),
        )
        for i in range(3)
    ]
    hub = make_test_hub(fakes, overrides=ASSISTANTS)
    out = tmp_path / "export.jsonl"
    runner = CliRunner()
    state = CliState(make_hub=lambda _state: hub)
    exported = runner.invoke(
        cli, ["dialogues", "export", *ids, "--format", "jsonl", "-o", str(out)], obj=state
    )
    assert exported.exit_code == 0, exported.output
    assert "\u2028" in out.read_text(encoding="utf-8")  # written as it is, not escaped
    dataset = load_jsonl(out)
    assert [e.origin for e in dataset.examples] == [f"{out}:1", f"{out}:2", f"{out}:3"]
    assert dataset.examples[1].messages[0] == Message("system", "Be kind.\u2028Always.")
    assert dataset.examples[0].messages[1].text == f"question 0: {awkward}"
    assert dataset.examples[0].messages[-1].text == "ok"
    assert "lone \ufffd surrogate" in dataset.examples[0].messages[-2].text
    assert check_dataset(dataset, min_examples=1, tokenizer=WORDS).ok
    checked = runner.invoke(cli, ["train", str(out), "--check", "--model", "base"], obj=state)
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.splitlines()[-1] == "ok: ready to upload"
