"""What a new user runs into: bad schema files, a llama.cpp-only setup, what `config show`
says, a misspelt variable, Ctrl-C, an empty question (issue 11)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner, Result

from modelport.cli import CliState, cli
from modelport.testing import TINY_PNG, FakeBackends, make_test_hub

LLAMACPP_ONLY = """\
[capabilities]
chat = "llamacpp"

[backends.llamacpp]
model = ""
stream_usage = false
"""


@pytest.fixture
def run(fakes: FakeBackends):  # type: ignore[no-untyped-def]
    hub = make_test_hub(fakes, overrides={"assistants": {"support": {"instructions": "Be kind."}}})

    def invoke(*args: str, input: str | bytes | None = None) -> Result:
        return CliRunner().invoke(
            cli, list(args), obj=CliState(make_hub=lambda _s: hub), input=input
        )

    return invoke


def real(*args: str, env: dict[str, str] | None = None) -> Result:
    """The command with the installed plugins and the config the arguments name."""
    return CliRunner().invoke(cli, list(args), obj=CliState(), env=env)


def one_error_line(result: Result) -> str:
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip("\n").splitlines()
    assert line.startswith("error: ")
    return line


# --- 1. describe --schema --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "what"),
    [
        ("[1, 2]", "not a JSON schema: the file holds an array, not an object"),
        ('"object"', "not a JSON schema: the file holds a string, not an object"),
        ("42", "not a JSON schema: the file holds a number, not an object"),
        ("null", "not a JSON schema: the file holds null, not an object"),
        ("{not json", "not a JSON schema: invalid JSON at line 1, column 2"),
        ('{"type": NaN}', "not a JSON schema: NaN is not a JSON value"),
        ("[" * 100_000, "not a JSON schema: nested too deeply"),
    ],
)
def test_a_schema_that_is_no_json_object_is_one_line_naming_the_file(
    run, tmp_path: Path, content: str, what: str
) -> None:  # type: ignore[no-untyped-def]
    image = tmp_path / "a.png"
    image.write_bytes(TINY_PNG)
    schema = tmp_path / "schema.json"
    schema.write_text(content)
    result = run("describe", str(image), "--schema", str(schema))
    assert result.exit_code == 1
    assert one_error_line(result).startswith(f"error: {schema}: {what}")


def test_an_unreadable_or_binary_schema_file_is_one_line_naming_the_file(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    image = tmp_path / "a.png"
    image.write_bytes(TINY_PNG)
    schema = tmp_path / "schema.json"
    schema.write_bytes(b'{"type": "\xff"}')
    binary = run("describe", str(image), "--schema", str(schema))
    assert one_error_line(binary) == (
        f"error: {schema}: not a JSON schema: byte 11 is not UTF-8 (a schema is a JSON object, "
        'such as {"type": "object", "properties": {...}})'
    )

    def denied(*_args: object, **_kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", denied)
    unreadable = run("describe", str(image), "--schema", str(schema))
    assert unreadable.exit_code == 1
    assert one_error_line(unreadable).startswith(
        f"error: {schema}: cannot read the schema file (Permission denied)"
    )


# --- 2. config check checks what is in use ---------------------------------------------------


def llamacpp_models(router: respx.MockRouter) -> None:
    router.get("http://localhost:8080/v1/models").mock(
        return_value=httpx.Response(200, json={"object": "list", "data": [{"id": "qwen"}]})
    )


def test_a_llamacpp_only_setup_from_the_docs_passes_config_check(tmp_path: Path) -> None:
    config = tmp_path / "modelport.toml"
    config.write_text(LLAMACPP_ONLY)
    with respx.mock(assert_all_called=False) as router:
        llamacpp_models(router)
        result = real("--config", str(config), "config", "check")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "chat: llamacpp ok" in lines
    assert "sentiment: keywords ok (default)" in lines
    assert "storage: jsonfile ok (default)" in lines
    for optional in ("vision", "training"):
        (line,) = [x for x in lines if x.startswith(f"{optional}:")]
        assert line.startswith(f"{optional}: not configured (optional; the default backend")
        assert "OPENAI_API_KEY" in line
        assert f"set [capabilities] {optional} to use one" in line
    assert result.stderr.endswith("configuration ok\n")


def test_config_check_fails_on_what_was_chosen_or_is_always_used(tmp_path: Path) -> None:
    config = tmp_path / "modelport.toml"
    config.write_text(LLAMACPP_ONLY.replace("[backends", 'training = "openai"\n\n[backends'))
    with respx.mock(assert_all_called=False) as router:
        llamacpp_models(router)
        chosen = real("--config", str(config), "config", "check")
    assert chosen.exit_code == 1
    assert "training: ERROR: backend 'openai' needs the environment variable OPENAI_API_KEY" in (
        chosen.stdout
    )
    assert "vision: not configured (optional" in chosen.stdout
    # nothing configured: every ask would use the default chat backend, so it must work
    (tmp_path / "empty.toml").write_text("")
    bare = real("--config", str(tmp_path / "empty.toml"), "config", "check")
    assert bare.exit_code == 1
    assert "chat: ERROR: backend 'openai' needs the environment variable OPENAI_API_KEY" in (
        bare.stdout
    )


def test_config_check_builds_the_backends_assistants_name(tmp_path: Path) -> None:
    config = tmp_path / "modelport.toml"
    config.write_text(LLAMACPP_ONLY + '\n[assistants.cloud]\nbackend = "azure"\n')
    with respx.mock(assert_all_called=False) as router:
        llamacpp_models(router)
        result = real("--config", str(config), "config", "check")
    assert result.exit_code == 1
    assert "chat for assistant cloud: ERROR: " in result.stdout


# --- 3. config show shows what is in effect, and where it comes from ------------------------


def test_config_show_prints_the_effective_settings_and_their_sources(tmp_path: Path) -> None:
    config = tmp_path / "modelport.toml"
    config.write_text(
        'default_assistant = "support"\n'
        + LLAMACPP_ONLY
        + 'headers = { X-Team = "support", Authorization = "Bearer sk-abcdefghijklmnop" }\n'
        + '\n[assistants.support]\ndescription = "Helpdesk"\n'
    )
    env = {"MODELPORT_RETRY__ATTEMPTS": "2", "XDG_DATA_HOME": str(tmp_path / "data")}
    result = real("--config", str(config), "config", "show", env=env)
    assert result.exit_code == 0, result.output
    shown = {}
    for line in result.stdout.splitlines()[1:]:
        key, _, rest = line.partition(" = ")
        value, _, source = rest.partition("  # ")
        shown[key] = (value.strip(), source)
    assert result.stdout.splitlines()[0] == f"# file: {config}"
    assert shown["capabilities.chat"] == ('"llamacpp"', str(config))
    assert shown["capabilities.storage"] == ('"jsonfile"', "default")
    assert shown["backends.llamacpp.base_url"] == ('"http://localhost:8080/v1"', "default")
    assert shown["backends.llamacpp.model"] == ('""', str(config))
    assert shown["backends.llamacpp.headers.Authorization"] == ('"***"', str(config))
    store = tmp_path / "data" / "modelport" / "store"
    assert shown["backends.jsonfile.root"] == (json.dumps(str(store)), "default")
    assert shown["default_assistant"] == ('"support"', str(config))
    assert shown["assistants.support.model"] == ('""', "default (backends.llamacpp.model)")
    assert shown["retry.attempts"] == ("2", "env MODELPORT_RETRY__ATTEMPTS")
    assert shown["retry.max_s"] == ("30.0", "default")
    assert "sk-abcdefghijklmnop" not in result.output

    data = json.loads(real("--config", str(config), "config", "show", "--json", env=env).stdout)
    effective = data["effective"]
    assert data["file"] == str(config)
    assert effective["backends.llamacpp.base_url"] == {
        "value": "http://localhost:8080/v1",
        "source": "default",
    }
    assert effective["retry.attempts"] == {"value": 2, "source": "env:MODELPORT_RETRY__ATTEMPTS"}
    assert effective["capabilities.chat"]["source"] == f"file:{config}"
    assert effective["backends.jsonfile.root"]["value"] == str(store)
    assert "sk-abcdefghijklmnop" not in json.dumps(data)


def test_config_show_names_an_environment_variable_a_preset_reads(tmp_path: Path) -> None:
    config = tmp_path / "modelport.toml"
    config.write_text("")
    env = {"OPENAI_BASE_URL": "https://proxy.example/v1"}
    data = json.loads(real("--config", str(config), "config", "show", "--json", env=env).stdout)
    assert data["effective"]["backends.openai.base_url"] == {
        "value": "https://proxy.example/v1",
        "source": "env:OPENAI_BASE_URL",
    }
    assert data["effective"]["backends.openai.model"]["source"] == "default"


# --- 6. a misspelt variable is blamed, not the file -----------------------------------------


def test_a_misspelt_variable_is_named_not_the_file(tmp_path: Path) -> None:
    config = tmp_path / "modelport.toml"
    config.write_text(LLAMACPP_ONLY)
    result = real("--config", str(config), "ask", "hi", env={"MODELPORT_CAPABILITES__CHAT": "x"})
    assert result.exit_code == 1
    assert one_error_line(result) == (
        "error: environment variable MODELPORT_CAPABILITES__CHAT: unknown key 'capabilites' "
        "(did you mean MODELPORT_CAPABILITIES__CHAT? variables are named "
        "MODELPORT_<SECTION>__<KEY> after the configuration reference)"
    )
    assert str(config) not in result.stderr
    wrong = real("--config", str(config), "ask", "hi", env={"MODELPORT_RETRY__ATTEMPTS": "x"})
    assert one_error_line(wrong).startswith(
        "error: environment variable MODELPORT_RETRY__ATTEMPTS: "
    )
    section = real(
        "--config", str(config), "ask", "hi", env={"MODELPORT_BACKENDS__LLAMACPP__MODLE": "x"}
    )
    assert one_error_line(section).startswith(
        "error: environment variable MODELPORT_BACKENDS__LLAMACPP__MODLE: unknown key 'modle' "
        "(did you mean MODELPORT_BACKENDS__LLAMACPP__MODEL?"
    )


def test_a_misspelt_key_in_the_file_still_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "modelport.toml"
    config.write_text("[capabilites]\nchat = 'llamacpp'\n")
    result = real("--config", str(config), "ask", "hi")
    assert one_error_line(result).startswith(
        f"error: {config}, key 'capabilites': unknown key 'capabilites'"
    )


# --- 7. Ctrl-C --------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_ctrl_c_in_ask_exits_130_with_one_line(run, fakes: FakeBackends, stream: bool) -> None:  # type: ignore[no-untyped-def]
    fakes.chat.script(["Hel", KeyboardInterrupt()] if stream else KeyboardInterrupt())
    result = run("ask", *(["--stream"] if stream else []), "hi")
    assert result.exit_code == 130
    assert "Aborted!" not in result.output
    assert one_error_line(result) == (
        "error: interrupted: nothing was stored for this question; ask it again to keep it"
    )
    assert result.stdout == ("Hel\n" if stream else "")
    assert json.loads(run("dialogues", "list", "--json").stdout)["items"] == []


def test_ctrl_c_anywhere_else_exits_130_with_one_line(run, fakes: FakeBackends) -> None:  # type: ignore[no-untyped-def]
    fakes.sentiment.script(KeyboardInterrupt())
    result = run("sentiment", "hi")
    assert result.exit_code == 130
    assert one_error_line(result) == "error: interrupted"


# --- 8. an empty question ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "stdin", "what"),
    [
        (("",), None, "the question is empty"),
        (("   ",), None, "the question is only blank space"),
        (("\n\t\u2028",), None, "the question is only blank space"),
        (("-",), "  \n", "the question is only blank space"),
        (("--stream", ""), None, "the question is empty"),
    ],
)
def test_an_empty_question_is_refused_before_anything_is_sent(
    run, fakes: FakeBackends, args: tuple[str, ...], stdin: str | None, what: str
) -> None:  # type: ignore[no-untyped-def]
    result = run("ask", *args, input=stdin)
    assert result.exit_code == 1
    assert one_error_line(result) == (
        f"error: {what} (give the text to ask, or '-' to read it from stdin; nothing was sent)"
    )
    assert fakes.chat.calls == []


def test_an_empty_question_with_an_image_is_asked(run, fakes: FakeBackends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image = tmp_path / "a.png"
    image.write_bytes(TINY_PNG)
    result = run("ask", "", "--image", str(image))
    assert result.exit_code == 0, result.output
    assert len(fakes.chat.calls) == 1


# --- 10 (the crashes the fuzzing found) -------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("ask", "caf\udce9"), "TEXT"),
        (("ask", "--stream", "\ud800"), "TEXT"),
        (("sentiment", "\udcff"), "TEXT"),
        (("ask", "hi", "--assistant", "\udcff"), "--assistant"),
        (("ask", "hi", "--dialogue", "\udcff"), "--dialogue"),
        (("dialogues", "show", "\udcff"), "DIALOGUE_ID"),
        (("jobs", "show", "\udcff"), "JOB_ID"),
    ],
)
def test_text_that_is_not_utf8_is_refused_in_one_line(
    run, args: tuple[str, ...], name: str
) -> None:  # type: ignore[no-untyped-def]
    result = run(*args)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.startswith(f"error: {name} is not valid text: ")
    assert "check that the terminal or the input uses UTF-8" in line


def test_stdin_that_is_not_utf8_is_refused_in_one_line(run) -> None:  # type: ignore[no-untyped-def]
    for command in ("ask", "sentiment"):
        result = run(command, "-", input=b"caf\xe9")
        assert result.exit_code == 1
        assert "on stdin is not valid text: byte 0xe9 (offset 3) is not utf-8" in one_error_line(
            result
        )


def test_an_error_that_quotes_odd_text_stays_one_printable_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "caf\udce9\u2028.png"  # a file name need not be UTF-8
    result = run("describe", str(missing))
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "\\udce9\\u2028.png" in line


def test_a_reply_holding_a_lone_surrogate_is_printed_escaped(run, fakes: FakeBackends) -> None:  # type: ignore[no-untyped-def]
    fakes.chat.script("a server sent \ud800 as JSON")  # "\ud800" is valid JSON, not text
    result = run("ask", "hi")
    assert result.exit_code == 0, result.output
    assert result.stdout == "a server sent \\ud800 as JSON\n"


def test_a_reply_holding_a_lone_surrogate_is_exported_to_a_file_escaped(  # type: ignore[no-untyped-def]
    run, fakes: FakeBackends, tmp_path: Path
) -> None:
    fakes.chat.script("a server sent \ud800 as JSON")
    dialogue = json.loads(run("ask", "--json", "hi").stdout)["dialogue_id"]
    out = tmp_path / "export.json"
    result = run("dialogues", "export", dialogue, "-o", str(out))
    assert result.exit_code == 0, result.output
    (exported,) = json.loads(out.read_text(encoding="utf-8"))
    assert exported["messages"][1]["parts"][0]["text"] == "a server sent \ud800 as JSON"
    assert os.listdir(tmp_path) == ["export.json"]


def test_argv_bytes_that_are_not_utf8_are_refused_by_the_real_command(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    env |= {"MODELPORT_PLUGINS": "modelport.testing", "MODELPORT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env |= {"LC_ALL": "C.UTF-8", "PYTHONUTF8": "1"}
    result = subprocess.run(
        [sys.executable.encode(), b"-m", b"modelport", b"ask", b"caf\xe9"],
        capture_output=True, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "error: TEXT is not valid text: byte 0xe9 (character 4) is not UTF-8 (check that the "
        "terminal or the input uses UTF-8, e.g. LANG=C.UTF-8)\n"
    )
