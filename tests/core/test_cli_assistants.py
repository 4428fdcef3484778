"""`modelport assistants`: list the profiles; import an OpenAI-style assistants.json."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from modelport import load_settings
from modelport.cli import CliState, cli
from modelport.testing import FakeBackends, make_test_hub

#: What the original class read: OpenAI assistant objects, as the Assistants API returns them.
OPENAI_ASSISTANTS: list[dict[str, Any]] = [
    {
        "id": "asst_abc123",
        "object": "assistant",
        "created_at": 1698984975,
        "name": "Math Tutor",
        "description": None,
        "model": "gpt-4o",
        "instructions": 'You are a personal math tutor.\nAnswer "briefly".',
        "tools": [{"type": "code_interpreter"}],
        "metadata": {},
        "top_p": 1.0,
        "temperature": 0.2,
        "response_format": "auto",
    },
    {
        "id": "asst_def456",
        "object": "assistant",
        "name": "Продажи",
        "description": "Sales, in Russian",
        "model": "gpt-4o-mini",
        "instructions": "Отвечай по-русски.",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": {"type": "object", "required": ["a"]}},
        },
    },
]

#: The first, without what a profile cannot hold (so that no note is printed).
MATH = {k: v for k, v in OPENAI_ASSISTANTS[0].items() if k != "tools"}


@pytest.fixture
def run(fakes: FakeBackends):  # type: ignore[no-untyped-def]
    hub = make_test_hub(
        fakes,
        overrides={
            "default_assistant": "support",
            "assistants": {
                "support": {"instructions": "Be kind.", "description": "Helpdesk"},
                "poet": {"model": "fake-model-large", "backend": "fake-chat"},
            },
        },
    )

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), obj=CliState(make_hub=lambda _s: hub))

    return invoke


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    return line


def test_assistants_lists_the_profiles_with_the_default_marked(run) -> None:  # type: ignore[no-untyped-def]
    result = run("assistants")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "* support\t-\tfake-chat\tHelpdesk",
        "  poet\tfake-model-large\tfake-chat\t",
    ]
    assert run("assistants", "list").stdout == result.stdout
    data = json.loads(run("assistants", "--json").stdout)
    assert [(a["name"], a["default"], a["model"], a["backend"]) for a in data] == [
        ("support", True, None, "fake-chat"),
        ("poet", False, "fake-model-large", "fake-chat"),
    ]
    assert data[0]["instructions"] == "Be kind."


def test_assistants_without_profiles_says_how_to_add_them() -> None:
    hub = make_test_hub()
    result = CliRunner().invoke(cli, ["assistants"], obj=CliState(make_hub=lambda _s: hub))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "modelport assistants import assistants.json --write" in result.stderr
    as_json = CliRunner().invoke(
        cli, ["assistants", "--json"], obj=CliState(make_hub=lambda _s: hub)
    )
    assert json.loads(as_json.stdout) == []


def test_the_model_a_profile_leaves_to_the_backend_is_shown(tmp_path: Path) -> None:
    config = tmp_path / "modelport.toml"
    config.write_text('[capabilities]\nchat = "ollama"\n\n[assistants.helper]\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "assistants"], obj=CliState())
    assert result.stdout == "  helper\tllama3.2 (backend default)\tollama\t\n"


FIRST = "entry 1 ('Math Tutor', 'asst_abc123')"


@pytest.mark.parametrize(
    ("shape", "where"),
    [
        (lambda items: items, FIRST),
        (lambda items: {"object": "list", "data": items, "has_more": False}, FIRST),
        (lambda items: {item["id"]: item for item in items}, "entry 'asst_abc123' ('Math Tutor')"),
    ],
    ids=["list", "api-list-response", "by-id"],
)
def test_import_prints_profiles_that_load(run, tmp_path: Path, shape: Any, where: str) -> None:  # type: ignore[no-untyped-def]
    source = write_json(tmp_path / "assistants.json", shape(OPENAI_ASSISTANTS))
    result = run("assistants", "import", str(source))
    assert result.exit_code == 0, result.output
    data = tomllib.loads(result.stdout)
    assert data["assistants"] == {
        "math-tutor": {
            "model": "gpt-4o",
            "instructions": 'You are a personal math tutor.\nAnswer "briefly".',
            "options": {"temperature": 0.2, "top_p": 1.0},
        },
        "продажи": {
            "model": "gpt-4o-mini",
            "instructions": "Отвечай по-русски.",
            "description": "Sales, in Russian",
            "options": {"json_schema": {"type": "object", "required": ["a"]}},
        },
    }
    assert "# imported from" in result.stdout
    assert "asst_abc123" in result.stdout
    settings = load_settings(overrides=data, env={}, search=False)
    assert settings.assistants["math-tutor"].options.temperature == 0.2
    # the API's bookkeeping (object, created_at) goes without a note
    assert (
        result.stderr == f"note: {where}: not imported: tools (a profile has no place for them)\n"
    )


def test_import_write_adds_to_the_config_atomically_and_refuses_to_overwrite(
    run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    source = write_json(tmp_path / "assistants.json", [MATH])
    config = tmp_path / "team.toml"
    original = '# our setup\n[capabilities]\nchat = "ollama"   # local\n\n[assistants.poet]\n'
    config.write_text(original)
    added = run("assistants", "import", str(source), "--config", str(config))
    assert added.exit_code == 0, added.output
    assert added.stderr == f"added [assistants.math-tutor] in {config}\n"
    text = config.read_text()
    assert text.startswith(original.rstrip("\n"))  # comments and all kept
    assert set(tomllib.loads(text)["assistants"]) == {"poet", "math-tutor"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    again = run("assistants", "import", str(source), "--config", str(config))
    assert one_error_line(again) == (
        f"error: {config} already defines [assistants.math-tutor] "
        "(pass --force to replace them; nothing was changed)"
    )
    assert config.read_text() == text

    changed = [{**MATH, "model": "gpt-4.1"}]
    write_json(source, changed)
    forced = run("assistants", "import", str(source), "--config", str(config), "--force")
    assert forced.exit_code == 0, forced.output
    assert forced.stderr == f"replaced [assistants.math-tutor] in {config}\n"
    data = tomllib.loads(config.read_text())
    assert data["assistants"]["math-tutor"]["model"] == "gpt-4.1"
    assert data["capabilities"] == {"chat": "ollama"}
    assert config.read_text().count("[assistants.math-tutor]") == 1


def test_import_write_uses_the_config_in_use_or_creates_modelport_toml(tmp_path: Path) -> None:
    source = write_json(tmp_path / "assistants.json", [MATH])
    result = CliRunner().invoke(cli, ["assistants", "import", str(source), "--write"])
    assert result.exit_code == 0, result.output
    created = Path("modelport.toml")  # the tests run in an empty directory
    assert "math-tutor" in tomllib.loads(created.read_text())["assistants"]
    listed = CliRunner().invoke(cli, ["assistants"])
    assert listed.stdout.startswith("  math-tutor\tgpt-4o\topenai\t")
    named = tmp_path / "named.toml"
    named.write_text("")
    CliRunner().invoke(
        cli, ["--config", str(named), "assistants", "import", str(source), "--write"]
    )
    assert "math-tutor" in tomllib.loads(named.read_text())["assistants"]


def test_import_refuses_to_edit_profiles_written_as_inline_tables(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = write_json(tmp_path / "assistants.json", [MATH])
    config = tmp_path / "modelport.toml"
    config.write_text('assistants = { math-tutor = { model = "x" } }\n')
    result = run("assistants", "import", str(source), "--config", str(config), "--force")
    assert "cannot add the profiles without touching other settings" in one_error_line(result)
    assert config.read_text() == 'assistants = { math-tutor = { model = "x" } }\n'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON: Expecting property name enclosed in double quotes at "
         "line 1, column 2"),
        ('"assistants"', "expected assistant objects: a list of them, an object with a "
         "'data' list, or one, not a string"),
        ("[]", "holds no assistants"),
        ('[{"name": "a"}, 5]', "entry 2: an assistant is a JSON object, not a number"),
        ('[{"name": "a", "model": 4}]', "entry 1: 'model' must be a string, not a number"),
        ('[{"name": "a", "temperature": "hot"}]',
         "entry 1: 'temperature' must be a number, not a string"),
        ('[{"name": "A b"}, {"name": "a-b"}]',
         "entry 1 ('A b') and entry 2 ('a-b') would both be [assistants.a-b]"),
        ('[{"name": "\\ud800"}]', "entry 1: holds a lone surrogate"),
        ('[{"model": "m"}]', "entry 1: has no name (nor an id) to name the profile after"),
        ('[{"name": "a", "reasoning_effort": "extreme"}]', "entry 1 ('a'): "),
        ('[{"name": "a", "response_format": {"type": "json_schema", "json_schema": {"schema": '
         '{"default": null}}}}]', "entry 1: its JSON schema holds null"),
        ('[{"name": "a", "temperature": NaN}]', "not valid JSON: NaN is not a JSON value"),
    ],
)  # fmt: skip
def test_import_names_the_file_and_the_entry_of_a_problem(
    run, tmp_path: Path, content: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "assistants.json"
    source.write_text(content, encoding="utf-8")
    result = run("assistants", "import", str(source))
    assert one_error_line(result).startswith(f"error: {source}: {message}")


def test_import_of_a_missing_file_is_one_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("assistants", "import", str(tmp_path / "nope.json"))
    assert one_error_line(result) == (
        f"error: {tmp_path / 'nope.json'}: cannot read the file (No such file or directory)"
    )


def test_import_to_a_config_whose_directory_cannot_be_made_is_one_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = write_json(tmp_path / "assistants.json", [MATH])
    blocker = tmp_path / "afile"
    blocker.write_text("a file, not a directory\n")
    for config in (blocker / "sub.toml", blocker / "deeper" / "sub.toml"):
        result = run("assistants", "import", str(source), "--config", str(config))
        assert one_error_line(result) == (
            f"error: {config}: cannot make its directory: {blocker} is not a directory (pick a "
            "config file in a directory that exists or can be made; nothing was changed)"
        )
    assert blocker.read_text() == "a file, not a directory\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "assistants.json"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_import_to_a_config_in_a_directory_the_system_refuses_is_one_line(
    run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    source = write_json(tmp_path / "assistants.json", [MATH])
    result = run("assistants", "import", str(source), "--config", "/proc/nope/x.toml")
    assert one_error_line(result) == (
        "error: /proc/nope/x.toml: cannot make its directory /proc/nope (No such file or "
        "directory) (pick a config file in a directory that exists or can be made; nothing was "
        "changed)"
    )
    written = run("assistants", "import", str(source), "--config", "/proc/x.toml")
    assert one_error_line(written).startswith("error: /proc/x.toml: cannot write the config file (")
