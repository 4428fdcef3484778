"""The command line: every command, --json, and one-line errors without tracebacks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from modelport import JobStatus
from modelport.cli import CliState, cli
from modelport.errors import BackendConnectionError, RateLimitedError, UnsupportedError
from modelport.testing import TINY_PNG, FakeBackends, make_test_hub

PNG = TINY_PNG


@pytest.fixture
def run(fakes: FakeBackends):  # type: ignore[no-untyped-def]
    hub = make_test_hub(fakes, overrides={"assistants": {"support": {"instructions": "Be kind."}}})

    def invoke(*args: str, input: str | None = None) -> Result:
        state = CliState(make_hub=lambda _state: hub)
        return CliRunner().invoke(cli, list(args), obj=state, input=input)

    return invoke


def test_ask_prints_the_reply_and_the_dialogue(run, fakes: FakeBackends) -> None:  # type: ignore[no-untyped-def]
    fakes.chat.script("Hello!")
    result = run("ask", "hi", "--assistant", "support")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Hello!\n"
    assert "[dialogue " in result.stderr
    dialogue = result.stderr.split()[1].rstrip(",]")
    again = run("ask", "--dialogue", dialogue, "--json", "more")
    data = json.loads(again.stdout)
    assert data["dialogue_id"] == dialogue
    assert data["reply"]["text"] == "echo: more"


def test_ask_stream_and_stdin(run) -> None:  # type: ignore[no-untyped-def]
    result = run("ask", "--stream", "-", input="from stdin")
    assert result.exit_code == 0
    assert result.stdout == "echo: from stdin\n"


@pytest.mark.parametrize("flags", [(), ("--stream",), ("--json",)])
def test_a_reply_the_store_cannot_keep_is_printed_before_the_error(  # type: ignore[no-untyped-def]
    run, fakes: FakeBackends, flags: tuple[str, ...]
) -> None:
    from modelport.errors import StorageError

    def full(dialogue_id: str, *messages: object) -> None:
        raise StorageError(
            "cannot append to the dialogue: No space left on device",
            path="/store/dialogues/d.jsonl",
            hint="free some disk space and try again; nothing was written",
        )

    fakes.store.append = full  # type: ignore[method-assign]
    fakes.chat.script("The paid answer.")
    result = run("ask", *flags, "question")
    assert result.exit_code == 1
    if "--json" in flags:
        assert json.loads(result.stdout)["text"] == "The paid answer."
    else:
        assert result.stdout == "The paid answer.\n"
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: the reply was received but not stored: /store/dialogues/d")
    assert "No space left on device" in line
    assert "Traceback" not in result.output


def test_sentiment(run) -> None:  # type: ignore[no-untyped-def]
    result = run("sentiment", "great, thank you")
    assert result.stdout.splitlines() == ["positive +1.00", "  +0.50 great", "  +0.50 thank"]
    assert json.loads(run("sentiment", "--json", "meh").stdout)["label"] == "neutral"


def test_describe_with_schema(run, fakes: FakeBackends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    assert run("describe", str(image)).stdout.startswith("1 image(s)")
    schema = tmp_path / "s.json"
    schema.write_text('{"type": "object"}')
    fakes.vision.script({"animal": "cat"})
    result = run("describe", str(image), "--schema", str(schema), "--prompt", "Which?")
    assert json.loads(result.stdout) == {"animal": "cat"}
    assert fakes.vision.calls[-1].options.json_schema == {"type": "object"}


def test_describe_a_non_image_is_a_one_line_error(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = tmp_path / "notes.jpg"
    fake.write_text("just text")
    result = run("describe", str(fake))
    assert result.exit_code == 1
    assert (
        result.stderr == f"error: {fake}: not an image (starts with text 'just text') "
        "(check the file is an image and not, say, text or HTML with an image name)\n"
    )


def test_dialogues_commands(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = json.loads(run("ask", "--json", "one").stdout)["dialogue_id"]
    run("ask", "--json", "two")
    listing = run("dialogues", "list")
    assert listing.exit_code == 0
    assert len(listing.stdout.splitlines()) == 2
    page = json.loads(run("dialogues", "list", "--json", "--limit", "1").stdout)
    assert len(page["items"]) == 1
    assert page["total"] == 2
    assert "(more: --offset 1)" in run("dialogues", "list", "--limit", "1").stderr
    shown = run("dialogues", "show", first).stdout
    assert "user: one" in shown
    assert "assistant [neutral]: echo: one" in shown
    assert json.loads(run("dialogues", "show", "--json", first).stdout)["id"] == first
    out = tmp_path / "export.jsonl"
    assert run("dialogues", "export", first, "--format", "jsonl", "-o", str(out)).exit_code == 0
    assert json.loads(out.read_text()) == {
        "messages": [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "echo: one"},
        ]
    }
    assert json.loads(run("dialogues", "export", first).stdout)[0]["id"] == first
    assert run("dialogues", "delete", first, "--yes").exit_code == 0
    missing = run("dialogues", "show", first)
    assert missing.exit_code == 1
    assert missing.stderr.startswith(f"error: no dialogue '{first}'")
    assert run("dialogues", "list", "--since", "yesterday").exit_code == 2


def test_train_check_train_and_jobs(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "train.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": f"a{i}"},
            ]
        }
        for i in range(3)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    check = run("train", str(data), "--check", "--model", "base")
    assert check.exit_code == 0
    assert check.stdout.splitlines()[0] == f"{data}: 3 examples, 6 messages"
    assert check.stdout.splitlines()[-1] == "ok: ready to upload"
    assert "cost unknown: no price is known for base" in check.stdout
    started = run("train", str(data), "--model", "base", "--description", "demo", "--yes")
    assert started.exit_code == 0, started.output
    job_id = started.stdout.split()[0]
    assert "modelport jobs wait" in started.stderr
    assert run("jobs", "list").stdout.startswith(f"{job_id}\tqueued\tfake-training\tbase\tdemo")
    waited = run("jobs", "wait", job_id, "--poll", "0.1")
    assert waited.stdout == f"{job_id}\tsucceeded\tbase\tbase:ft-{job_id}\n"
    # not a terminal: status changes and each event once, as plain lines, nothing redrawn
    progress = [line.split(maxsplit=1)[-1] for line in waited.stderr.splitlines()]
    assert progress == [
        "status: queued",
        "status: running",
        f"0s] {job_id} running",
        "status: succeeded",
        f"0s] {job_id} succeeded -> base:ft-{job_id}",
    ]
    assert "\r" not in waited.stderr
    rewaited = run("jobs", "wait", job_id, "--poll", "0.1", "--json")
    assert json.loads(rewaited.stdout)["status"] == "succeeded"
    shown = json.loads(run("jobs", "show", job_id, "--json").stdout)
    assert shown["job"]["status"] == "succeeded"
    assert len(shown["events"]) == 3
    assert shown["record"]["description"] == "demo"
    assert [h["status"] for h in shown["record"]["history"]] == ["queued", "running", "succeeded"]
    assert f"source: {data}\ndescription: demo\n" in run("jobs", "show", job_id).stdout
    assert json.loads(run("jobs", "list", "--json").stdout)[0]["job_id"] == job_id
    assert job_id in run("jobs", "list", "--remote").stdout
    second = run("train", str(data), "--model", "base", "--json", "-y")
    second_id = json.loads(second.stdout)["id"]
    assert "cancelled" in run("jobs", "cancel", second_id).stdout


def test_train_reports_bad_rows_with_file_and_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "bad.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "q"}]}\n'
        '{"messages": [{"role": "wizard", "content": "x"}]}\n'
    )
    result = run("train", str(data), "--model", "base")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: invalid training data: {data}:2: message 1 has unknown role 'wizard' "
        "(fix these; nothing was uploaded)\n"
    )
    check = run("train", str(data), "--check")
    assert check.exit_code == 1
    assert "unknown role" in check.stderr
    assert run("train").exit_code == 2


def test_train_from_dialogues(run, fakes: FakeBackends) -> None:  # type: ignore[no-untyped-def]
    run("ask", "hi", "--assistant", "support")
    result = run(
        "train", "--from-dialogues", "--assistant", "support", "--model", "base", "--json", "-y"
    )
    assert result.exit_code == 0, result.output
    (dataset,) = fakes.trainer.uploads.values()
    assert [m.role for m in dataset.examples[0].messages] == ["system", "user", "assistant"]


def test_models_plugins_and_config(run) -> None:  # type: ignore[no-untyped-def]
    assert run("models").stdout.splitlines()[0] == "fake-model\tmodelport"
    assert json.loads(run("models", "--json").stdout)[1]["id"] == "fake-model-large"
    plugins = run("plugins").stdout
    assert "fakes\tloaded\t(not packaged)\tbackends: fake-chat, fake-vision" in plugins
    assert json.loads(run("plugins", "--json").stdout)[0]["name"] == "fakes"
    check = run("config", "check")
    assert check.exit_code == 0
    assert "chat: fake-chat ok" in check.stdout
    assert json.loads(run("config", "show", "--json").stdout)["file"] is None


def test_ctrl_c_while_waiting_leaves_the_job_and_says_how_to_resume(
    run, fakes: FakeBackends
) -> None:  # type: ignore[no-untyped-def]
    job = run("train", "--from-dialogues", "--model", "base", "--json", "--yes")
    assert job.exit_code == 1  # no dialogues yet: nothing to train on
    run("ask", "hi")
    started = run("train", "--from-dialogues", "--model", "base", "--json", "--yes")
    job_id = json.loads(started.stdout)["id"]
    fakes.trainer.script(KeyboardInterrupt())
    result = run("jobs", "wait", job_id)
    assert result.exit_code == 130
    assert f"job {job_id} keeps running. Resume with: modelport jobs wait {job_id}" in result.stderr
    assert "Traceback" not in result.stderr


def test_backend_errors_are_one_line(run, fakes: FakeBackends) -> None:  # type: ignore[no-untyped-def]
    fakes.chat.script(
        *[RateLimitedError("quota exceeded", backend="fake-chat", status=429, retry_after=0)] * 4
    )
    result = run("ask", "hi")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "error: fake-chat: quota exceeded (status 429)"


# --- real processes: what a user at a terminal sees -------------------------------------------


def modelport(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    return subprocess.run(
        [sys.executable, "-m", "modelport", *args],
        capture_output=True, text=True, env={**base, **(env or {})}, cwd=cwd, check=False,
    )  # fmt: skip


def test_main_job_with_the_fake_plugin(tmp_path: Path) -> None:
    env = {"MODELPORT_PLUGINS": "modelport.testing", "MODELPORT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = modelport("ask", "hello", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "echo: hello\n"


VENDOR_PLUGIN = """
import attrs
from modelport import hookimpl

@attrs.frozen
class Settings:
    api_key_env: str = "VENDOR_API_KEY"

class Chat:
    def __init__(self, context):
        self.key = context.secret(context.settings.api_key_env)

@hookimpl
def modelport_register_backends(registry):
    registry.add("vendor", Chat, capabilities=["chat"], settings=Settings)
"""


def test_a_missing_api_key_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    (tmp_path / "vendor_plugin.py").write_text(VENDOR_PLUGIN)
    env = {
        "MODELPORT_PLUGINS": "vendor_plugin,modelport.testing",
        "PYTHONPATH": str(tmp_path),
        "MODELPORT_CAPABILITIES__CHAT": "vendor",
        "MODELPORT_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    result = modelport("ask", "hi", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "error: backend 'vendor' needs the environment variable VENDOR_API_KEY (an API key), "
        "which is not set (export VENDOR_API_KEY=... before running; keys are never read "
        "from config files)\n"
    )
    check = modelport("config", "check", env=env, cwd=tmp_path)
    assert check.returncode == 1
    assert (
        "chat: ERROR: backend 'vendor' needs the environment variable VENDOR_API_KEY"
        in check.stdout
    )


@pytest.mark.parametrize(
    ("config", "env", "expected"),
    [
        ("[retry\n", {}, "invalid TOML"),
        ("[retry]\nattempst = 3\n", {}, "key 'retry.attempst': unknown key 'attempst'"),
        (
            '[capabilities]\nchat = "gpt"\n',
            {"MODELPORT_PLUGINS": "modelport.testing"},
            "no chat backend named 'gpt' (set [capabilities] chat = one of: fake-chat)",
        ),
        (
            '[capabilities]\nchat = "modelport.testing"\n',
            {
                "MODELPORT_PLUGINS": "modelport.testing",
                "MODELPORT_DISABLE_PLUGINS": "modelport.testing",
            },
            "remove it from MODELPORT_DISABLE_PLUGINS",
        ),
    ],
)
def test_user_errors_are_one_line_with_a_fix_and_no_traceback(
    tmp_path: Path, config: str, env: dict[str, str], expected: str
) -> None:
    path = tmp_path / "modelport.toml"
    path.write_text(config)
    result = modelport(
        "ask", "hi", env={"MODELPORT_DISABLE_PLUGIN_AUTOLOAD": "1", **env}, cwd=tmp_path
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_describe_several_images_with_a_schema_as_json(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(PNG)
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "object"}')
    result = run(
        "describe", str(tmp_path / "a.png"), str(tmp_path / "b.png"),
        "--prompt", "Compare them.", "--schema", str(schema), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["text"].startswith("2 image(s)")
    schema.write_text("{not json")
    bad = run("describe", str(tmp_path / "a.png"), "--schema", str(schema))
    assert bad.exit_code == 1
    assert bad.stderr.startswith(f"error: {schema}: not a JSON schema")


def test_describe_bad_images_name_the_file_in_one_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cut = tmp_path / "cut.png"
    cut.write_bytes(PNG[:40])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.png"
    for path, what in (
        (cut, "starts like image/png but its header is damaged or cut short (40 bytes)"),
        (empty, "the image is empty (0 bytes)"),
        (missing, "no such file"),
    ):
        result = run("describe", str(path))
        assert result.exit_code == 1
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"error: {path}: {what}")


def test_train_check_lists_every_problem_of_a_directory(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.csv").write_text("question,answer\nq,a\n")
    (tmp_path / "b.jsonl").write_text("{broken\n")
    result = run("train", str(tmp_path), "--check")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "error: invalid training data (2 problems):"
    assert lines[1].startswith(f"  {tmp_path / 'a.csv'}:1: expected columns")
    assert lines[2].startswith(f"  {tmp_path / 'b.jsonl'}:1: not valid JSON")
    mapped = run("train", str(tmp_path / "a.csv"), "--check", "--json", "--model", "base",
                 "--columns", "prompt=question,response=answer")  # fmt: skip
    report = json.loads(mapped.stdout)
    assert (report["ok"], report["examples"], report["estimated_cost_usd"]) == (True, 1, None)


def test_the_live_progress_line_is_redrawn_on_a_terminal_and_cleared() -> None:
    import io
    import time

    from modelport import JobEvent, JobStatus, TrainingJob
    from modelport._progress import JobProgress
    from modelport.types import utcnow

    stream = io.StringIO()
    job = TrainingJob("ftjob-9", "fake", "base", JobStatus.RUNNING)
    with JobProgress("ftjob-9", stream, live=True) as progress:
        progress.on_update(job)
        progress.on_event(JobEvent(utcnow(), "Step 1/10: loss 1.2"))
        progress.on_poll(job, 30)
        time.sleep(0.6)  # the redraw thread ticks every 0.5 s; nothing below depends on it
    out = stream.getvalue()
    assert "\r\x1b[2K" in out
    assert re.search(r"\r\x1b\[2K[|/\\-] running, \d+s elapsed, next check in \d+s", out)
    assert "Ctrl-C stops waiting; the job keeps running" in out
    assert out.endswith("\r\x1b[2K")  # the line is cleared on the way out
    assert "Step 1/10: loss 1.2\n" in out


# --- train: confirmation, progress, orphans, exit codes ----------------------------------------


def _training_file(tmp_path: Path, n: int = 3) -> Path:
    data = tmp_path / "train.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(n)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


@pytest.fixture
def interactive(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if stdin were a terminal (CliRunner's never is)."""
    monkeypatch.setattr("modelport.cli._interactive", lambda: True)


@pytest.mark.usefixtures("interactive")
def test_train_shows_the_cost_and_asks_before_the_paid_job_starts(
    run, fakes: FakeBackends, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    data = _training_file(tmp_path)
    fakes.trainer.training_price = lambda model: 200_000.0  # type: ignore[attr-defined]
    declined = run("train", str(data), "--model", "base", input="n\n")
    assert declined.exit_code == 1
    assert "; estimated cost $27.00 at $200,000.00 per 1M tokens (base)\n" in declined.stderr
    assert declined.stderr.endswith(
        "ok: ready to upload\n"
        "Start a fine-tuning job on base (estimated cost $27.00)? [y/N]: n\n"
        "error: not started; nothing was uploaded\n"
    )
    assert fakes.trainer.calls == []
    accepted = run("train", str(data), "--model", "base", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout.startswith("ftjob-2\tqueued\tbase")
    assert [call[0] for call in fakes.trainer.calls] == ["upload", "start"]


@pytest.mark.usefixtures("interactive")
def test_train_says_plainly_when_it_cannot_estimate_the_cost_and_still_asks(
    run, fakes: FakeBackends, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    result = run("train", str(_training_file(tmp_path)), "--model", "base", input="n\n")
    assert "cost unknown: no price is known for base" in result.stderr
    assert "Start a fine-tuning job on base (cost unknown: no price is known for base)? [y/N]" in (
        result.stderr
    )
    assert fakes.trainer.calls == []
    no_answer = run("train", str(_training_file(tmp_path)), "--model", "base", input="")
    assert no_answer.exit_code == 130  # Ctrl-C (or end of input) at the question
    assert no_answer.stderr.endswith("interrupted: nothing was uploaded\n")
    assert "Aborted!" not in no_answer.output


def test_train_without_a_terminal_needs_yes(run, fakes: FakeBackends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("train", str(_training_file(tmp_path)), "--model", "base")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "error: train starts a paid job and stdin is not a terminal to confirm it "
        "(pass --yes to start it without asking)"
    )
    assert fakes.trainer.calls == []
    assert run("train", str(_training_file(tmp_path)), "--model", "base", "-y").exit_code == 0


def test_train_without_a_base_model_is_not_ready(run, fakes: FakeBackends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = _training_file(tmp_path)
    check = run("train", str(data), "--check")
    assert check.exit_code == 1
    assert "cost unknown: no base model" in check.stdout
    assert check.stdout.splitlines()[-3:] == [
        "problems (1):",
        "  no base model to train: pass base_model (CLI: --model), set [training] "
        "base_model, or give the default assistant a model",
        "not ready: fix the problems above",
    ]
    started = run("train", str(data), "--yes")
    assert started.exit_code == 1
    assert started.stderr.splitlines()[-1] == (
        "error: not started: fix the problems above; nothing was uploaded"
    )
    assert fakes.trainer.calls == []


def test_train_shows_each_upload_and_the_start(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = _training_file(tmp_path)
    result = run("train", str(data), "--model", "base", "--validation", str(data), "-y")
    assert result.exit_code == 0, result.output
    size = len(data.read_bytes())
    lines = result.stderr.splitlines()
    start = lines.index("uploading the training data")
    assert lines[start : start + 5] == [
        "uploading the training data",
        f"uploaded the training data ({size} B): file-1",
        "uploading the validation data",
        f"uploaded the validation data ({size} B): file-2",
        "starting the job",
    ]
    assert "\r" not in result.stderr  # not a terminal: nothing redrawn


def test_the_upload_line_is_redrawn_with_the_bytes_sent_on_a_terminal() -> None:
    import io

    from modelport._progress import UploadDisplay
    from modelport.types import UploadProgress

    stream = io.StringIO()
    with UploadDisplay(stream, live=True) as display:
        display(UploadProgress("training"))
        for sent in (0, 1_000_000, 1_000_001, 20_000_000, 39_200_000):
            display(UploadProgress("training", sent, 39_200_000))
        display(UploadProgress("training", 39_200_000, 39_200_000, file_id="file-9"))
    out = stream.getvalue()
    assert "\r\x1b[2K  1.0 MB of 39.2 MB (2%)" in out
    assert "1.0 MB of 39.2 MB (2%)" not in out.split("(2%)", 1)[1]  # same percent: not redrawn
    assert "\r\x1b[2K  39.2 MB of 39.2 MB (100%)" in out
    assert out.endswith("\r\x1b[2Kuploaded the training data (39.2 MB): file-9\nstarting the job\n")
    assert display.files == ["file-9"]


def test_a_job_that_cannot_start_leaves_no_orphan_and_names_the_file(
    run, fakes: FakeBackends, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    refusal = UnsupportedError("no new jobs", backend="fake-training", status=403)
    fakes.trainer.script(None, refusal)
    result = run("train", str(_training_file(tmp_path)), "--model", "base", "-y")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "error: fake-training: no new jobs (status 403) (deleted the uploaded file file-1)"
    )
    assert ("delete_file", "file-1") in fakes.trainer.calls


@pytest.mark.parametrize(
    ("progression", "message"),
    [
        (("queued", "failed"), "failed"),
        (("queued", "cancelled"), "was cancelled"),
    ],
)
def test_waiting_exits_1_unless_the_job_succeeded(
    run, fakes: FakeBackends, tmp_path: Path, progression: tuple[str, ...], message: str
) -> None:  # type: ignore[no-untyped-def]
    fakes.trainer.progression = tuple(JobStatus(s) for s in progression)
    data = _training_file(tmp_path)
    trained = run("train", str(data), "--model", "base", "-y", "--wait")
    assert trained.exit_code == 1  # so `train --wait && deploy` stops here
    job_id = trained.stdout.split()[0]
    assert trained.stdout.splitlines()[-1].startswith(f"{job_id}\t{progression[-1]}")
    assert trained.stderr.splitlines()[-1] == (
        f"error: job {job_id} {message} (its events: modelport jobs show {job_id})"
    )
    waited = run("jobs", "wait", job_id, "--json")
    assert waited.exit_code == 1
    assert json.loads(waited.stdout)["status"] == progression[-1]


def test_waiting_rides_out_a_short_outage(run, fakes: FakeBackends, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fakes.trainer.progression = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED)
    started = run("train", str(_training_file(tmp_path)), "--model", "base", "-y", "--json")
    job_id = json.loads(started.stdout)["id"]
    down = BackendConnectionError("connection refused", backend="fake-training")
    fakes.trainer.script(*[down] * 8)  # two polls, each after every retry the policy makes
    result = run("jobs", "wait", job_id, "--poll", "0.1")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{job_id}\tsucceeded\tbase\tbase:ft-{job_id}\n"
    assert result.stderr.count("job_poll_failed") == 2


def test_giving_up_waiting_exits_3_with_the_resume_hint(
    run, fakes: FakeBackends, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    fakes.trainer.progression = (JobStatus.QUEUED, JobStatus.RUNNING)
    started = run("train", str(_training_file(tmp_path)), "--model", "base", "-y", "--json")
    job_id = json.loads(started.stdout)["id"]
    result = run("jobs", "wait", job_id, "--timeout", "0")
    assert result.exit_code == 3
    assert result.stderr.splitlines()[-1].endswith(
        f"(it keeps running; resume with: modelport jobs wait {job_id})"
    )


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ((KeyboardInterrupt(),), "during the upload; no job was started"),
        (
            (None, KeyboardInterrupt()),
            "while starting the job; one may have started (check: "
            "modelport jobs list --remote); the uploaded data stays on the backend: file-1",
        ),
    ],
)
def test_ctrl_c_during_train_exits_130_saying_what_is_left(
    run, fakes: FakeBackends, tmp_path: Path, script: tuple[object, ...], message: str
) -> None:  # type: ignore[no-untyped-def]
    fakes.trainer.script(*script)
    result = run("train", str(_training_file(tmp_path)), "--model", "base", "-y")
    assert result.exit_code == 130
    assert result.stderr.splitlines()[-1].endswith(f"interrupted: {message}")
    assert "Aborted!" not in result.output
    assert "Traceback" not in result.output
