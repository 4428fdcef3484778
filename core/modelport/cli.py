"""The ``modelport`` command: a thin layer over the hub.

Every command that prints data takes ``--json``. A user error prints one line on stderr
(``error: what (how to fix)``) and exits 1; it never shows a traceback. Ctrl-C prints one line
and exits 130. Text arguments and options that are not valid Unicode (bytes that are not
UTF-8, which reach Python as lone surrogates) are refused before a command runs.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import attrs
import click

from ._assistants import add_to_config, read_assistants, to_toml, toml_key
from ._files import write_atomic
from ._json import json_kind, json_text, reject_constant
from ._progress import JobProgress, UploadDisplay
from ._settings_view import assistant_rows, effective_settings, source_text
from ._text import invalid_unicode
from .config import Settings, find_config_file, load_settings
from .errors import (
    _LINE_BREAKS,
    InvalidInputError,
    ModelportError,
    PluginError,
    ReplyNotStoredError,
    TrainingDataError,
    WaitTimeoutError,
)
from .hub import Hub
from .logs import configure_cli_logging, redact
from .plugins import Plugins, make_plugins
from .serialization import converter
from .training import (
    CsvColumns,
    DatasetReport,
    dataset_from_dialogues,
    dataset_to_jsonl,
    describe_report,
    load_dataset,
)
from .types import (
    Capability,
    Dialogue,
    JobRecord,
    JobStatus,
    TrainingDataset,
    TrainingJob,
    UsageTotal,
)

__all__ = ["CliState", "main"]


@attrs.define
class CliState:
    """What the commands share. Tests (and embedding hosts) may pass their own
    ``make_hub`` through ``main(obj=CliState(make_hub=...))``."""

    config: str | None = None
    make_hub: Callable[[CliState], Hub] | None = None
    _settings: Settings | None = None
    _hub: Hub | None = None
    _plugins: Plugins | None = None
    #: The commands plugins add (``modelport_cli_commands``), once looked for.
    _commands: dict[str, click.Command] | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings

    def hub(self) -> Hub:
        if self._hub is None:
            if self.make_hub:
                self._hub = self.make_hub(self)
            else:
                self._hub = Hub(self.settings(), plugins=self._plugins)
        return self._hub

    def plugins(self) -> Plugins:
        """The plugins, loaded as the hub loads them (without building one, unless a host
        supplied ``make_hub``)."""
        if self._hub is not None or self.make_hub is not None:
            return self.hub().plugins
        if self._plugins is None:
            loading = self.settings().plugins
            self._plugins = make_plugins(
                autoload=loading.autoload, blocked=loading.disable, load=loading.load
            )
        return self._plugins

    def close(self) -> None:
        if self._hub is not None:
            self._hub.close()


def _one_line(text: str) -> str:
    """``text`` as one printable line: line breaks shown as escapes, and what no encoding can
    write (lone surrogates, from bytes that were not UTF-8) as ``\\udcff``-style escapes."""
    text = text.translate(_LINE_BREAKS)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {_one_line(redact(message))}", err=True)
    sys.exit(code)


def _interrupted(what: str = "") -> NoReturn:
    """Ctrl-C: one line on stderr (after a line break, past the terminal's ``^C``), exit 130
    as shells expect."""
    click.echo(err=True)
    _fail(f"interrupted: {what}" if what else "interrupted", 130)


def _check_text(value: str, what: str) -> str:
    """``value``, unless it is not valid Unicode text.

    :raises InvalidInputError: naming ``what`` and the first bad character.
    """
    detail = invalid_unicode(value)
    if detail:
        raise InvalidInputError(
            f"{what} is not valid text: {detail}",
            hint="check that the terminal or the input uses UTF-8, e.g. LANG=C.UTF-8",
        )
    return value


def _check_params(ctx: click.Context) -> None:
    """Refuse text arguments and options that are not valid Unicode (paths may be any bytes)."""
    for param in ctx.command.params:
        if not isinstance(param.type, click.types.StringParamType):
            continue
        value = ctx.params.get(param.name or "")
        name = param.opts[-1] if isinstance(param, click.Option) else param.human_readable_name
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, str):
                _check_text(item, name)


def _read_stdin(what: str) -> str:
    """Standard input as text (for a ``-`` argument), refused when it is not valid text."""
    try:
        text = sys.stdin.read()
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise InvalidInputError(
            f"{what} on stdin is not valid text: byte 0x{byte:02x} (offset {exc.start}) is "
            f"not {exc.encoding}",
            hint="check that the input uses UTF-8, e.g. LANG=C.UTF-8",
        ) from None
    return _check_text(text, f"{what} on stdin")


def _tolerant_output() -> None:
    """Let stdout and stderr write any text: what their encoding cannot hold (a lone
    surrogate a server sent as ``\\ud800``, say) is written as an escape, not a crash."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


class _Command(click.Command):
    """Checks its text arguments and options before it runs."""

    def invoke(self, ctx: click.Context) -> Any:
        _check_params(ctx)
        return super().invoke(ctx)


class _Group(click.Group):
    """Turns modelport's errors into one line on stderr and exit code 1, and Ctrl-C into one
    line and exit code 130. Its commands and subgroups check their text parameters."""

    command_class = _Command
    group_class = type  # subgroups are _Group too

    def invoke(self, ctx: click.Context) -> Any:
        try:
            _check_params(ctx)
            return super().invoke(ctx)
        except TrainingDataError as exc:
            if len(exc.problems) == 1:
                _fail(str(exc))
            click.echo(f"error: invalid training data ({len(exc.problems)} problems):", err=True)
            for problem in exc.problems:
                click.echo(f"  {_one_line(str(problem))}", err=True)
            if exc.hint:
                click.echo(f"  ({_one_line(exc.hint)})", err=True)
            sys.exit(1)
        except ModelportError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _interrupted()


class _Root(_Group):
    """The ``modelport`` group: its built-in commands, and those plugins add through
    ``modelport_cli_commands``, looked for only when a name is not built in (or for the list
    of commands). A plugin command named like a built-in one is refused, and a plugin that
    cannot add its commands is one warning line: neither stops the command line."""

    group_class = _Group  # type: ignore[assignment]  # subgroups add no plugin commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_plugin_commands(self, ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        return _plugin_commands(self, ctx).get(cmd_name)


def _warn(message: str) -> None:
    click.echo(f"warning: {_one_line(redact(message))}", err=True)


def _plugin_commands(root: click.Group, ctx: click.Context) -> dict[str, click.Command]:
    """The commands plugins add, by name (looked for once per run)."""
    state = ctx.ensure_object(CliState)
    if state._commands is not None:
        return state._commands
    state._commands = {}
    state.config = state.config or ctx.find_root().params.get("config")
    try:
        found, problems = state.plugins().cli_commands()
    except ModelportError as exc:  # a bad config: the built-in commands still work
        _warn(f"plugin commands not loaded: {exc}")
        return state._commands
    for problem in problems:
        _warn(str(problem))
    for plugin, command in found:
        try:
            if not isinstance(command, click.Command) or not command.name:
                raise PluginError(
                    f"modelport_cli_commands returned {command!r}, not a named click command",
                    plugin=plugin,
                )
            if command.name in root.commands or command.name in state._commands:
                raise PluginError(
                    f"its command {command.name!r} clashes with "
                    + ("a built-in command" if command.name in root.commands else "another's"),
                    plugin=plugin,
                    hint="the plugin must name its command (or group) differently",
                )
        except PluginError as exc:
            _warn(str(exc))
            continue
        state._commands[command.name] = command
    return state._commands


def _emit(data: Any) -> None:
    click.echo(json.dumps(converter.unstructure(data), indent=2, ensure_ascii=False))


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else "-"


def _date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-01-31") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
pass_state = click.make_pass_decorator(CliState, ensure=True)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    envvar="MODELPORT_CONFIG",
    help="Config file (default: ./modelport.toml, then the user config dir).",
)
@click.option(
    "--log-format",
    type=click.Choice(["console", "json"]),
    default="console",
    show_default=True,
    help="How log events are written to stderr.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="modelport")
@click.pass_context
def cli(ctx: click.Context, config: str | None, log_format: str, verbose: int) -> None:
    """Talk to AI models through configurable backends."""
    _tolerant_output()
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    configure_cli_logging(log_format, level)  # type: ignore[arg-type]
    state = ctx.ensure_object(CliState)
    state.config = config or state.config
    ctx.call_on_close(state.close)


# --- ask, sentiment, describe, models ---------------------------------------------------------


@cli.command()
@click.argument("text")
@click.option("-a", "--assistant", help="Assistant profile from the config.")
@click.option("-d", "--dialogue", help="Continue this dialogue (default: a new one).")
@click.option("-m", "--model", help="Model (default: the assistant's or the backend's).")
@click.option(
    "-i",
    "--image",
    "images",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Attach an image (repeatable).",
)
@click.option("--stream", is_flag=True, help="Print the reply as it arrives.")
@json_option
@pass_state
def ask(
    state: CliState,
    text: str,
    assistant: str | None,
    dialogue: str | None,
    model: str | None,
    images: tuple[str, ...],
    stream: bool,
    as_json: bool,
) -> None:
    """Ask a question; the dialogue is kept (TEXT '-' reads stdin)."""
    if text == "-":
        text = _read_stdin("the question")
    if not text.strip() and not images:
        raise InvalidInputError(
            "the question is empty" if text == "" else "the question is only blank space",
            hint="give the text to ask, or '-' to read it from stdin; nothing was sent",
        )
    hub = state.hub()
    kwargs: dict[str, Any] = {
        "dialogue": dialogue,
        "assistant": assistant,
        "model": model,
        "images": images,
    }
    printed = False
    try:
        if stream:
            replies = hub.stream(text, **kwargs)
            try:
                for delta in replies:
                    if not as_json and delta.text:
                        click.echo(delta.text, nl=False)
                        printed = True
            except KeyboardInterrupt:
                replies.close()  # hang up; a partial reply is not stored
                raise
            answer = replies.answer
            assert answer is not None
            if not as_json:
                click.echo()
        else:
            answer = hub.ask(text, **kwargs)
            if not as_json:
                click.echo(answer.text)
    except KeyboardInterrupt:
        if printed:
            click.echo()  # end the partial reply's line
        _interrupted("nothing was stored for this question; ask it again to keep it")
    except ReplyNotStoredError as exc:  # the reply is paid for: show it, then the error
        if as_json:
            _emit(exc.reply)
        elif printed:
            click.echo()  # streamed already: end its line
        else:
            click.echo(getattr(exc.reply, "text", ""))
        raise
    if as_json:
        _emit(answer)
    else:
        mood = f", {answer.sentiment.label.value}" if answer.sentiment else ""
        click.echo(f"[dialogue {answer.dialogue_id}{mood}]", err=True)


@cli.command()
@click.argument("text")
@json_option
@pass_state
def sentiment(state: CliState, text: str, as_json: bool) -> None:
    """The sentiment of TEXT ('-' reads stdin)."""
    result = state.hub().analyze(_read_stdin("the text") if text == "-" else text)
    if as_json:
        _emit(result)
        return
    click.echo(f"{result.label.value} {result.score:+.2f}")
    for item in result.evidence:
        click.echo(f"  {item.weight:+.2f} {item.term}")


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("-p", "--prompt", help="What to ask about the images.")
@click.option(
    "--schema",
    type=click.Path(exists=True, dir_okay=False),
    help="A JSON schema file: answer with JSON matching it.",
)
@click.option("--detail", type=click.Choice(["auto", "low", "high"]), default="auto")
@click.option("-m", "--model", help="Model (default: the backend's).")
@json_option
@pass_state
def describe(
    state: CliState,
    images: tuple[str, ...],
    prompt: str | None,
    schema: str | None,
    detail: str,
    model: str | None,
    as_json: bool,
) -> None:
    """Describe one or several IMAGES (paths or URLs)."""
    schema_data = _read_schema(schema) if schema else None
    reply = state.hub().describe_image(
        *images, prompt=prompt, schema=schema_data, detail=detail, model=model
    )
    if as_json:
        _emit(reply)
    elif reply.data is not None:
        click.echo(json.dumps(reply.data, indent=2, ensure_ascii=False))
    else:
        click.echo(reply.text)


def _read_schema(path: str) -> dict[str, Any]:
    """The JSON schema in the file at ``path``.

    :raises InvalidInputError: naming the file, when it cannot be read or holds no JSON object.
    """
    hint = 'a schema is a JSON object, such as {"type": "object", "properties": {...}}'
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a BOM, as some editors write, is fine
    except OSError as exc:
        raise InvalidInputError(
            f"{path}: cannot read the schema file ({exc.strerror or exc})",
            hint="check the path and that the file is readable",
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{path}: not a JSON schema: byte {exc.start + 1} is not UTF-8", hint=hint
        ) from None
    try:
        data = json.loads(text, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        what = f"invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
        raise InvalidInputError(f"{path}: not a JSON schema: {what}", hint=hint) from None
    except RecursionError:
        raise InvalidInputError(
            f"{path}: not a JSON schema: nested too deeply", hint=hint
        ) from None
    except ValueError as exc:  # NaN, Infinity; an integer too long to read
        raise InvalidInputError(f"{path}: not a JSON schema: {exc}", hint=hint) from None
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"{path}: not a JSON schema: the file holds {json_kind(data)}, not an object",
            hint=hint,
        )
    return data


@cli.command()
@json_option
@pass_state
def models(state: CliState, as_json: bool) -> None:
    """The models the chat backend offers, with the day each shuts down when it has one."""
    found = state.hub().models()
    if as_json:
        _emit(list(found))
        return
    for info in found:
        shutdown = f"\tshuts down {info.shutdown_date.isoformat()}" if info.shutdown_date else ""
        click.echo(f"{info.id}\t{info.owned_by or ''}{shutdown}")


# --- dialogues --------------------------------------------------------------------------------


@cli.group()
def dialogues() -> None:
    """List, show, export and delete stored dialogues."""


@dialogues.command("list")
@click.option("-a", "--assistant", help="Only this assistant's dialogues.")
@click.option("--since", help="Only dialogues active since this date (ISO 8601).")
@click.option("--until", help="Only dialogues last active before this date.")
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--offset", default=0, type=click.IntRange(0))
@json_option
@pass_state
def dialogues_list(
    state: CliState,
    assistant: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Stored dialogues, newest first."""
    page = state.hub().dialogues(
        assistant=assistant, since=_date(since), until=_date(until), limit=limit, offset=offset
    )
    if as_json:
        _emit(page)
        return
    for info in page.items:
        click.echo(
            f"{info.id}\t{_when(info.updated_at)}\t{info.message_count:>4} msgs\t"
            f"{info.assistant or '-'}\t{info.title or ''}"
        )
    if page.next_offset is not None:
        click.echo(f"(more: --offset {page.next_offset})", err=True)


@dialogues.command("show")
@click.argument("dialogue_id")
@json_option
@pass_state
def dialogues_show(state: CliState, dialogue_id: str, as_json: bool) -> None:
    """One dialogue, message by message."""
    dialogue = state.hub().dialogue(dialogue_id)
    if as_json:
        _emit(dialogue)
        return
    click.echo(
        f"dialogue {dialogue.id} ({dialogue.assistant or 'no assistant'}), "
        f"started {_when(dialogue.created_at)}"
    )
    for message in dialogue.messages:
        mood = f" [{message.sentiment.label.value}]" if message.sentiment else ""
        click.echo(f"\n{message.role}{mood}: {message.text}")


@dialogues.command("export")
@click.argument("dialogue_ids", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "jsonl"]),
    default="json",
    show_default=True,
    help="json: full records; jsonl: chat fine-tuning format.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File (default: stdout).")
@pass_state
def dialogues_export(
    state: CliState, dialogue_ids: tuple[str, ...], fmt: str, output: str | None
) -> None:
    """Export dialogues as JSON records or as fine-tuning JSONL."""
    hub = state.hub()
    found: list[Dialogue] = [hub.dialogue(i) for i in dialogue_ids]
    if fmt == "jsonl":
        dataset = dataset_from_dialogues(
            found, instructions=lambda name: hub.assistant(name).instructions
        )
        text = dataset_to_jsonl(dataset)
    else:
        text = json_text(converter.unstructure(found), indent=2) + "\n"
    if output:
        _write_atomic(Path(output), text)
        click.echo(f"wrote {len(found)} dialogue(s) to {output}", err=True)
    else:
        click.echo(text, nl=False)


def _write_atomic(path: Path, text: str) -> None:
    try:
        write_atomic(path, text)
    except OSError as exc:
        _fail(f"{path}: cannot write ({exc.strerror or exc})")


@dialogues.command("delete")
@click.argument("dialogue_id")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def dialogues_delete(state: CliState, dialogue_id: str, yes: bool) -> None:
    """Delete a dialogue."""
    if not yes:
        click.confirm(f"Delete dialogue {dialogue_id}?", abort=True)
    state.hub().delete_dialogue(dialogue_id)
    click.echo(f"deleted {dialogue_id}", err=True)


# --- usage ------------------------------------------------------------------------------------


def _usage_cost(total: UsageTotal) -> str:
    if total.calls and total.unknown_cost_calls == total.calls:
        return "unknown"
    cost = _money(total.cost_usd) if total.cost_usd else "$0.00"
    if total.unknown_cost_calls:
        calls = total.unknown_cost_calls
        return f"{cost} + unknown ({calls} call{'s' if calls > 1 else ''})"
    return cost


@cli.command()
@click.option("--since", help="Only calls since this date (ISO 8601; UTC unless it says).")
@click.option("--until", help="Only calls before this date.")
@click.option(
    "--by",
    type=click.Choice(["day", "assistant", "model", "backend"]),
    default="day",
    show_default=True,
    help="How the totals are grouped (days in UTC).",
)
@json_option
@pass_state
def usage(state: CliState, since: str | None, until: str | None, by: str, as_json: bool) -> None:
    """Recorded usage of chat and vision calls: calls, tokens and cost, grouped.

    A cost is "unknown" for calls to models with no price (set one with
    [prices.<backend>."<model>"] in the config).
    """
    report = state.hub().usage_report(since=_date(since), until=_date(until), by=by)
    if as_json:
        _emit(report)
        return
    if not report.rows:
        click.echo("no usage recorded in this range", err=True)
        return
    width = max(len(by), *(len(row.key) for row in report.rows), len("total"))
    click.echo(f"{by:<{width}}  {'calls':>6}  {'tokens in':>10}  {'tokens out':>10}  cost")
    for row in (*report.rows, report.total):
        click.echo(
            f"{row.key:<{width}}  {row.calls:>6}  {row.prompt_tokens:>10}  "
            f"{row.completion_tokens:>10}  {_usage_cost(row)}"
        )


# --- training ---------------------------------------------------------------------------------


def _job_line(job: TrainingJob) -> str:
    model = f"\t{job.outcome}" if job.outcome else ""
    return f"{job.id}\t{job.status.value}\t{job.base_model}{model}"


#: Exit codes of ``train`` and ``jobs wait`` besides 0 (docs/cli.md lists them).
EXIT_NOT_SUCCEEDED = 1  # the job failed or was cancelled (and any other error)
EXIT_GAVE_UP = 3  # waiting stopped (timeout, or the backend unreachable); the job goes on
EXIT_INTERRUPTED = 130  # Ctrl-C


@contextmanager
def _resumable(job_id: str) -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        click.echo(
            f"\nstopped waiting; job {job_id} keeps running. "
            f"Resume with: modelport jobs wait {job_id} (or cancel it: modelport jobs cancel "
            f"{job_id})",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    except WaitTimeoutError as exc:  # its message says how to resume
        _fail(str(exc), EXIT_GAVE_UP)


def _wait(
    state: CliState, job_id: str, poll: float, timeout: float | None, as_json: bool
) -> TrainingJob:
    """Wait for the job, showing its status and events on stderr (unless ``--json``)."""
    hub = state.hub()
    with _resumable(job_id):
        if as_json:
            return hub.wait_job(job_id, poll_s=poll, timeout_s=timeout)
        with JobProgress(job_id, sys.stderr) as progress:
            return hub.wait_job(
                job_id,
                poll_s=poll,
                timeout_s=timeout,
                on_update=progress.on_update,
                on_event=progress.on_event,
                on_poll=progress.on_poll,
            )


def _exit_unless_succeeded(job: TrainingJob) -> None:
    """After waiting: exit non-zero, saying how the job ended, unless it succeeded."""
    if job.status is JobStatus.SUCCEEDED:
        return
    ended = "was cancelled" if job.status is JobStatus.CANCELLED else job.status.value
    because = f": {job.error}" if job.error else ""
    _fail(
        f"job {job.id} {ended}{because} (its events: modelport jobs show {job.id})",
        EXIT_NOT_SUCCEEDED,
    )


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 else f"${value:.4f}"


def _cost(report: DatasetReport, model: str | None) -> str:
    if report.estimated_cost is not None and report.price_per_million is not None:
        return (
            f"estimated cost {_money(report.estimated_cost)} at "
            f"{_money(report.price_per_million)} per 1M tokens ({model})"
        )
    if not model:
        return "cost unknown: no base model"
    return f"cost unknown: no price is known for {model}"


def _print_report(report: DatasetReport, model: str | None, *, err: bool = False) -> None:
    def echo(text: str) -> None:
        click.echo(text, err=err)

    echo(f"{report.source}: {report.examples} examples, {report.messages} messages")
    if report.backend is not None:
        echo(f"training backend: {report.backend}; base model: {report.base_model or '-'}")
    echo(
        f"tokens: {report.tokens:,} (largest example {report.max_example_tokens:,}; "
        f"counted with {report.tokenizer})"
    )
    echo(
        f"trained on: {report.billed_tokens:,} tokens over {report.epochs} epochs; "
        + _cost(report, model)
    )
    for title, items in (("problems", report.problems), ("warnings", report.warnings)):
        if items:
            echo(f"{title} ({len(items)}):")
            for item in items:
                echo(f"  {item}")
    echo("ok: ready to upload" if report.ok else "not ready: fix the problems above")


def _interactive() -> bool:
    """Whether someone can answer a question (tests replace this)."""
    return sys.stdin.isatty()


def _confirm_paid_job(report: DatasetReport, model: str | None) -> None:
    """Ask before a paid job starts; refuse when nobody can answer."""
    if not _interactive():
        _fail(
            "train starts a paid job and stdin is not a terminal to confirm it "
            "(pass --yes to start it without asking)"
        )
    cost = report.estimated_cost
    what = _cost(report, model) if cost is None else f"estimated cost {_money(cost)}"
    try:
        go = click.confirm(f"Start a fine-tuning job on {model} ({what})?", err=True)
    except click.Abort:  # Ctrl-C or end of input at the question
        _interrupted("nothing was uploaded")
    if not go:
        _fail("not started; nothing was uploaded")


def _train_interrupted(display: UploadDisplay) -> NoReturn:
    """Ctrl-C while ``train`` loaded, uploaded or started: say what is left where."""
    files = ", ".join(display.files)
    if display.starting:
        _interrupted(
            "while starting the job; one may have started (check: modelport jobs list "
            f"--remote); the uploaded data stays on the backend: {files}"
        )
    if files:
        _interrupted(f"no job was started; the uploaded data stays on the backend: {files}")
    if display.uploading:
        _interrupted("during the upload; no job was started")
    _interrupted("nothing was uploaded")


def _dataset_for(
    hub: Hub,
    data: str | None,
    columns: str | None,
    assistant: str | None,
    since: str | None,
    labels: tuple[str, ...],
    repeat: bool,
    backend: str | None = None,
) -> TrainingDataset:
    """The data to train on, loaded once (the check and the upload share it)."""
    if data is None:
        return hub.dialogue_dataset(
            assistant=assistant,
            since=_date(since),
            labels=labels or None,
            repeat=repeat,
            backend=backend,
        )
    csv = hub.settings.training.csv
    return load_dataset(data, columns=CsvColumns.parse(columns, csv) if columns else csv)


@cli.command()
@click.argument("data", required=False, type=click.Path(exists=True))
@click.option("--from-dialogues", is_flag=True, help="Train on stored dialogues instead.")
@click.option("-a", "--assistant", help="With --from-dialogues: only this assistant's.")
@click.option("--since", help="With --from-dialogues: only dialogues active since this date.")
@click.option(
    "--label",
    "labels",
    multiple=True,
    type=click.Choice(["positive", "negative", "neutral", "mixed"]),
    help="With --from-dialogues: learn only replies with this sentiment (repeatable).",
)
@click.option(
    "--repeat",
    is_flag=True,
    help="With --from-dialogues: also learn exchanges that earlier jobs learnt.",
)
@click.option(
    "--columns",
    metavar="KEY=NAME,...",
    help="CSV column names, e.g. prompt=question,response=answer (keys: prompt, response, "
    "system, role, content, conversation).",
)
@click.option(
    "-m",
    "--model",
    help="Base model to fine-tune (default: [training] base_model, else the training "
    "backend's own default, else the assistant's model).",
)
@click.option(
    "-b",
    "--backend",
    help="The training backend to run the job on (default: [capabilities] training); "
    "the job's record keeps it.",
)
@click.option("--suffix", help="Suffix for the fine-tuned model's name.")
@click.option("--epochs", type=click.IntRange(1, 50), help="Training epochs (n_epochs).")
@click.option(
    "--validation",
    type=click.Path(exists=True),
    help="Validation data (CSV, JSONL or a directory).",
)
@click.option("--description", default="", help="Kept with the job record.")
@click.option("--check", is_flag=True, help="Only validate the data and estimate; upload nothing.")
@click.option(
    "-y", "--yes", is_flag=True, help="Start the (paid) job without asking; needed without a TTY."
)
@click.option("--wait", "wait_", is_flag=True, help="Wait for the job; exit 0 only if it succeeds.")
@json_option
@pass_state
def train(
    state: CliState,
    data: str | None,
    from_dialogues: bool,
    assistant: str | None,
    since: str | None,
    labels: tuple[str, ...],
    repeat: bool,
    columns: str | None,
    model: str | None,
    backend: str | None,
    suffix: str | None,
    epochs: int | None,
    validation: str | None,
    description: str,
    check: bool,
    yes: bool,
    wait_: bool,
    as_json: bool,
) -> None:
    """Fine-tune a model on DATA (a CSV or JSONL file, or a directory of them) or on stored
    dialogues, after showing the check and the estimated cost and asking (--yes does not ask);
    with --check, only validate the data and estimate tokens and cost."""
    if bool(data) == from_dialogues:
        raise click.UsageError("give DATA (a file or directory) or --from-dialogues, not both")
    hub = state.hub()
    model = hub.training_base_model(
        model, backend=backend, assistant=assistant if from_dialogues else None
    )
    hyperparameters = {"n_epochs": epochs} if epochs else {}
    last = "validation" if validation else "training"
    display = UploadDisplay(sys.stderr, last=last, quiet=as_json)
    try:
        dataset = _dataset_for(hub, data, columns, assistant, since, labels, repeat, backend)
        report = hub.check_dataset(
            dataset, base_model=model, hyperparameters=hyperparameters, backend=backend
        )
        if check:
            if as_json:
                click.echo(json.dumps(describe_report(report), indent=2, ensure_ascii=False))
            else:
                _print_report(report, model)
            sys.exit(0 if report.ok else 1)
        _print_report(report, model, err=True)
        if not report.ok:
            _fail("not started: fix the problems above; nothing was uploaded")
        if not yes and report.price_per_million != 0:  # a free (local) job is not asked
            _confirm_paid_job(report, model)
        with display:
            job = hub.train(
                dataset,
                base_model=model,
                suffix=suffix,
                hyperparameters=hyperparameters,
                validation=validation,
                description=description,
                on_progress=display,
                backend=backend,
            )
    except KeyboardInterrupt:
        _train_interrupted(display)
    if not as_json:
        click.echo(_job_line(job))
        click.echo(f"follow it with: modelport jobs wait {job.id}", err=True)
    if wait_:
        job = _wait(state, job.id, 10.0, None, as_json)
        if not as_json:
            click.echo(_job_line(job))
    if as_json:
        _emit(job)
    if wait_:
        _exit_unless_succeeded(job)


@cli.group()
def jobs() -> None:
    """List, show, cancel and wait for training jobs."""


@jobs.command("list")
@click.option("--remote", is_flag=True, help="Ask the training backend, not the local records.")
@json_option
@pass_state
def jobs_list(state: CliState, remote: bool, as_json: bool) -> None:
    """Recorded training jobs (works offline), or the backend's with --remote."""
    hub = state.hub()
    if remote:
        found = hub.remote_jobs()
        if as_json:
            _emit(list(found))
        for job in () if as_json else found:
            click.echo(_job_line(job))
        return
    records: tuple[JobRecord, ...] = hub.jobs()
    if as_json:
        _emit(list(records))
        return
    for r in records:
        status = r.status.value if r.status else "-"
        click.echo(f"{r.job_id}\t{status}\t{r.backend}\t{r.base_model}\t{r.description}")


@jobs.command("show")
@click.argument("job_id")
@json_option
@pass_state
def jobs_show(state: CliState, job_id: str, as_json: bool) -> None:
    """A job's current state and its events."""
    hub = state.hub()
    job = hub.job(job_id)
    events = hub.job_events(job_id)
    try:
        record = hub.job_record(job_id)
    except ModelportError:  # no storage: the backend's view is still worth showing
        record = None
    serving = hub.serving_notes(job) if job.status is JobStatus.SUCCEEDED else ()
    if as_json:
        _emit({"job": job, "events": list(events), "record": record, "serving": list(serving)})
        return
    click.echo(_job_line(job))
    if job.error:
        click.echo(f"error: {job.error}")
    if progress := job.progress():
        click.echo(f"progress: {progress}")
    if record is not None:
        click.echo(f"backend: {record.backend}")
        click.echo(f"source: {record.source}")
        if record.description:
            click.echo(f"description: {record.description}")
        for change in record.history:
            click.echo(f"  {_when(change.at)} {change.status.value}")
    for event in events:
        click.echo(f"  {_when(event.created_at)} {event.message}")
    if job.outcome:
        click.echo(f"result: {job.outcome}")
    if serving:
        click.echo("to chat with it:")
        for line in serving:
            click.echo(f"  {line}" if line else "")


@jobs.command("cancel")
@click.argument("job_id")
@json_option
@pass_state
def jobs_cancel(state: CliState, job_id: str, as_json: bool) -> None:
    """Cancel a job."""
    job = state.hub().cancel_job(job_id)
    if as_json:
        _emit(job)
    else:
        click.echo(_job_line(job))


@jobs.command("wait")
@click.argument("job_id")
@click.option(
    "--poll",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds between the first polls (backs off to 60).",
)
@click.option("--timeout", type=click.FloatRange(0), help="Give up waiting after this long.")
@json_option
@pass_state
def jobs_wait(
    state: CliState, job_id: str, poll: float, timeout: float | None, as_json: bool
) -> None:
    """Wait for a job to finish; exit 0 only if it succeeded (Ctrl-C stops waiting; the job
    keeps running)."""
    job = _wait(state, job_id, poll, timeout, as_json)
    if as_json:
        _emit(job)
    else:
        click.echo(_job_line(job))
    _exit_unless_succeeded(job)


# --- store ---------------------------------------------------------------------------------------


@cli.group()
def store() -> None:
    """Copy records between stores, and bring a store's schema up to date."""


@store.command("copy")
@click.option("--from", "source", required=True, help="The storage backend to copy from.")
@click.option("--to", "target", required=True, help="The storage backend to copy into.")
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where ids are mapped when the target chooses its own (default: in the user data "
    "directory, one file per pair of stores).",
)
@json_option
@pass_state
def store_copy(
    state: CliState, source: str, target: str, journal: Path | None, as_json: bool
) -> None:
    """Copy every dialogue, job record and usage record from one store into another.

    Resumable: run it again after an interruption and it carries on, copying nothing twice.
    Both stores are backends configured as usual (``[backends.sql] url = ...``)."""
    import platformdirs

    from ._storecopy import copy_store

    if source == target:
        _fail(f"--from and --to are both {source!r}: name two different storage backends")
    hub = state.hub()
    from_store = hub.backend(Capability.STORAGE, source)
    to_store = hub.backend(Capability.STORAGE, target)
    if journal is None:
        copies = platformdirs.user_data_path("modelport") / "copies"
        journal = copies / f"{source}-to-{target}.jsonl"

    def progress(done: int, total: int) -> None:
        if not as_json and (done == total or done % 100 == 0):
            click.echo(f"dialogues: {done}/{total}", err=True)

    report = copy_store(from_store, to_store, journal=journal, on_dialogue=progress)
    if as_json:
        _emit(attrs.asdict(report))
    else:
        click.echo(
            f"dialogues: {report.dialogues_created} created, {report.dialogues_extended} "
            f"extended, {report.dialogues_unchanged} already there; messages: {report.messages}; "
            f"job records: {report.jobs} saved, {report.jobs_unchanged} already there; "
            f"usage records: {report.usage}"
        )
    if report.conflicts:
        _fail(
            f"{len(report.conflicts)} dialogue(s) differ in {target!r} from {source!r} and were "
            f"left alone: {', '.join(report.conflicts[:10])} (compare them with: modelport "
            "dialogues show ID)"
        )


@store.command("migrate")
@click.option(
    "--store", "name", help="The storage backend (default: the one [capabilities] storage names)."
)
@pass_state
def store_migrate(state: CliState, name: str | None) -> None:
    """Bring a store's schema up to date (for stores that have one, such as sql)."""
    hub = state.hub()
    backend = hub.backend(Capability.STORAGE, name)
    migrate = getattr(backend, "migrate", None)
    shown = name or hub.backend_name(Capability.STORAGE)
    if not callable(migrate):
        click.echo(f"{shown}: this store has no schema to migrate")
        return
    before, after = migrate()
    if before == after:
        click.echo(f"{shown}: the schema is up to date (revision {after})")
    else:
        click.echo(f"{shown}: schema migrated from revision {before or 'none'} to {after}")


# --- plugins and config -----------------------------------------------------------------------


@cli.command()
@json_option
@pass_state
def plugins(state: CliState, as_json: bool) -> None:
    """Installed plugins: distribution, version, backends (each with its capabilities and
    description), and any failure."""
    infos = state.hub().plugins.infos()
    if as_json:
        _emit(infos)
        return
    for info in infos:
        dist = f"{info.distribution} {info.version}" if info.distribution else "(not packaged)"
        backends = ", ".join(info.backends) or "-"
        click.echo(f"{info.name}\t{info.status}\t{dist}\tbackends: {backends}")
        for offer in info.offers:
            about = f": {offer.description}" if offer.description else ""
            line = f"  {offer.name} ({', '.join(offer.capabilities)}){about}"
            click.echo(_one_line(line))
        if info.docs:
            click.echo(_one_line(f"  docs: {info.docs}"))
        if info.error:
            click.echo(f"  {info.error}")


@cli.group()
def plugin() -> None:
    """Write a new plugin."""


@plugin.command("new")
@click.argument("name")
@click.option(
    "-c",
    "--capability",
    "capabilities",
    multiple=True,
    required=True,
    type=click.Choice(["chat", "vision", "sentiment", "storage"]),
    help="What the backend serves (repeat for several).",
)
@click.option(
    "--http/--no-http",
    default=None,
    help="Chat and vision on the HTTP backend kit (the default for them).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where to write the distribution (modelport-NAME/).",
)
def plugin_new(name: str, capabilities: tuple[str, ...], http: bool | None, directory: str) -> None:
    """Scaffold a plugin distribution: pyproject with the entry point, the backend and its
    settings class, a test module running the conformance suites, a README."""
    from ._scaffold import scaffold

    made = scaffold(name, capabilities, http=http, directory=Path(directory))
    for file in made.files:
        click.echo(_one_line(str(made.root / file)))
    click.echo(
        _one_line(
            f"next: cd {made.root} && pip install -e '.[test]' && modelport plugins && pytest"
        ),
        err=True,
    )


@cli.group()
def config() -> None:
    """Show or check the configuration."""


def _shown_value(value: Any) -> str:
    """A setting's value for ``config show``'s text: as in TOML, cut short when long
    (``--json`` has it whole)."""
    if value is None:
        return "(none)"
    text = _one_line(json.dumps(value, ensure_ascii=False))
    return text if len(text) <= 120 else f"{text[:116]} ..."


@config.command("show")
@json_option
@pass_state
def config_show(state: CliState, as_json: bool) -> None:
    """The settings in effect and where each comes from: default, the file, an environment
    variable. Shows each capability's backend, that backend's settings with its defaults (URL,
    model, the store's directory), and the assistants with the model each asks. Secrets are
    masked."""
    hub = state.hub()
    settings = hub.settings
    rows = effective_settings(settings, hub.plugins.registry, os.environ)
    file = str(Path(settings.path).absolute()) if settings.path else None
    if as_json:
        effective = {
            row.key: {"value": row.value, "source": row.source}
            | ({"error": row.error} if row.error else {})
            for row in rows
        }
        data = {"file": file, "effective": effective, "settings": settings.redacted()}
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(_one_line(f"# file: {file or '(none: defaults and environment only)'}"))
    for row in rows:
        line = f"{_one_line(row.key)} = {_shown_value(row.value)}"
        note = source_text(row.source) + (f"; ERROR: {row.error}" if row.error else "")
        click.echo(f"{line:<56}  # {_one_line(note)}")


#: What every ``ask`` uses, configured or not: the chat backend, the store, and (when one is
#: installed) the sentiment backend that labels each reply.
_ALWAYS_USED = frozenset({Capability.CHAT, Capability.STORAGE, Capability.SENTIMENT})


def _check_capability(hub: Hub, capability: Capability) -> tuple[str | None, bool]:
    """Build the backend of ``capability`` and say how it went: ``(name, problem)``."""
    chosen = hub.settings.capabilities.get(capability)
    used = chosen is not None or capability in _ALWAYS_USED
    registry = hub.plugins.registry
    if chosen is None and not registry.offering(capability):
        if capability is Capability.SENTIMENT or not used:
            click.echo(f"{capability.value}: - (no backend installed)")
            return None, False
        click.echo(f"{capability.value}: ERROR: no backend installed (install a plugin for it)")
        return None, True
    try:
        name = hub.backend_name(capability)
    except ModelportError as exc:
        if used:
            click.echo(f"{capability.value}: ERROR: {_one_line(str(exc))}")
            return None, True
        click.echo(
            f"{capability.value}: not configured (optional; the default backend is not usable: "
            f"{_one_line(str(exc))}; set [capabilities] {capability.value} to use one)"
        )
        return None, False
    click.echo(f"{capability.value}: {name} ok{'' if chosen else ' (default)'}")
    return name, False


@config.command("check")
@pass_state
def config_check(state: CliState) -> None:
    """Build the backends in use and report problems: every capability configured, the
    defaults every ask uses (chat, storage, sentiment), and the assistants' own backends. An
    unconfigured vision or training backend that cannot be built is reported as optional. Also
    warns of configured models that the chat backend's model list gives a shutdown date."""
    hub = state.hub()
    settings = hub.settings
    problems = 0
    chat: str | None = None
    for info in hub.plugins.infos():
        if info.status == "failed":
            problems += 1
            click.echo(f"plugin {info.name}: FAILED: {info.error}")
    for capability in Capability:
        name, problem = _check_capability(hub, capability)
        problems += problem
        chat = name if capability is Capability.CHAT else chat
    for assistant, profile in settings.assistants.items():
        if profile.backend is None:
            continue
        where = f"chat for assistant {assistant}"
        try:
            hub.backend(Capability.CHAT, profile.backend)
        except ModelportError as exc:
            problems += 1
            click.echo(f"{where}: ERROR: {_one_line(str(exc))}")
        else:
            click.echo(f"{where}: {profile.backend} ok")
    if chat is not None:
        try:
            found = hub.models()
        except ModelportError as exc:  # offline, say: the rest of the check still stands
            click.echo(f"chat: models not checked: {exc}")
        else:
            for notice in hub._shutdown_notices(chat, hub.backend(Capability.CHAT), found):
                click.echo(f"chat: WARNING: {notice}")
    if problems:
        _fail(f"{problems} problem(s) found in {settings.path or 'the configuration'}")
    click.echo("configuration ok", err=True)


# --- assistants -------------------------------------------------------------------------------


def _list_assistants(state: CliState, as_json: bool) -> None:
    hub = state.hub()
    rows = assistant_rows(hub.settings, hub.plugins.registry, os.environ)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo(
            "no assistants defined: add [assistants.<name>] to the config file, or import "
            "them with: modelport assistants import assistants.json --write",
            err=True,
        )
        return
    for row in rows:
        model = row["model"] or "-"
        if row["model_source"].startswith("default"):  # the profile names none
            known = row["model"] is not None
            model = f"{row['model'] or 'the first listed'} (backend default)" if known else "-"
        line = (
            f"{'*' if row['default'] else ' '} {row['name']}\t{model}\t{row['backend'] or '-'}"
            f"\t{row['description']}"
        )
        click.echo(_one_line(line))


@cli.group(invoke_without_command=True)
@json_option
@click.pass_context
def assistants(ctx: click.Context, as_json: bool) -> None:
    """The assistant profiles: name, model, backend, description; * marks the default.

    `assistants import` turns an assistants.json of the Assistants API into profiles."""
    if ctx.invoked_subcommand is None:
        _list_assistants(ctx.ensure_object(CliState), as_json)


@assistants.command("list")
@json_option
@pass_state
def assistants_list(state: CliState, as_json: bool) -> None:
    """The assistant profiles (the same as `modelport assistants`)."""
    _list_assistants(state, as_json)


def _config_target(state: CliState) -> Path:
    """The config file ``--write`` adds to: the one in use, else ./modelport.toml."""
    explicit = state.config or os.environ.get("MODELPORT_CONFIG") or None
    if explicit:
        return Path(explicit)
    return find_config_file(env={}) or Path("modelport.toml")


@assistants.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--write",
    is_flag=True,
    help="Add them to the config file in use (./modelport.toml when there is none).",
)
@click.option(
    "--config",
    "target",
    type=click.Path(dir_okay=False),
    help="Add them to this config file instead (created if missing).",
)
@click.option("--force", is_flag=True, help="Replace profiles the config file already has.")
@pass_state
def assistants_import(
    state: CliState, file: str, write: bool, target: str | None, force: bool
) -> None:
    """Turn an assistants.json of the Assistants API (a list of assistant objects, or the API's
    list response) into [assistants.<name>] profiles: print them as TOML, or with --write or
    --config add them to a config file, atomically."""
    found = read_assistants(file)
    for item in found:
        if item.dropped:
            click.echo(
                _one_line(
                    f"note: {item.origin}: not imported: {', '.join(item.dropped)} "
                    "(a profile has no place for them)"
                ),
                err=True,
            )
    if not (write or target):
        click.echo(to_toml(found, source=file), nl=False)
        return
    path = Path(target) if target else _config_target(state)
    added, replaced = add_to_config(path, found, source=file, force=force)
    for verb, names in (("added", added), ("replaced", replaced)):
        if names:
            tables = ", ".join(f"[assistants.{toml_key(n)}]" for n in names)
            click.echo(_one_line(f"{verb} {tables} in {path}"), err=True)


def main(argv: list[str] | None = None, obj: CliState | None = None) -> None:
    """Run the command line (``obj`` lets a host or a test supply its own hub)."""
    cli.main(args=argv, obj=obj, prog_name="modelport")
