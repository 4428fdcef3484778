"""The ``modelport`` command: a thin layer over the hub.

Every command that prints data takes ``--json``. A user error prints one line on stderr
(``error: what (how to fix)``) and exits 1; it never shows a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import attrs
import click

from ._progress import JobProgress
from .config import Settings, load_settings
from .errors import ModelportError, TrainingDataError
from .hub import Hub
from .logs import configure_cli_logging
from .serialization import converter
from .training import (
    CsvColumns,
    DatasetReport,
    dataset_from_dialogues,
    dataset_to_jsonl,
    describe_report,
    load_dataset,
)
from .types import Capability, Dialogue, JobRecord, TrainingDataset, TrainingJob

__all__ = ["CliState", "main"]


@attrs.define
class CliState:
    """What the commands share. Tests (and embedding hosts) may pass their own
    ``make_hub`` through ``main(obj=CliState(make_hub=...))``."""

    config: str | None = None
    make_hub: Callable[[CliState], Hub] | None = None
    _settings: Settings | None = None
    _hub: Hub | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings

    def hub(self) -> Hub:
        if self._hub is None:
            self._hub = self.make_hub(self) if self.make_hub else Hub(self.settings())
        return self._hub

    def close(self) -> None:
        if self._hub is not None:
            self._hub.close()


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class _Group(click.Group):
    """Turns modelport's errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TrainingDataError as exc:
            if len(exc.problems) == 1:
                _fail(str(exc))
            click.echo(f"error: invalid training data ({len(exc.problems)} problems):", err=True)
            for problem in exc.problems:
                click.echo(f"  {problem}", err=True)
            if exc.hint:
                click.echo(f"  ({exc.hint})", err=True)
            sys.exit(1)
        except ModelportError as exc:
            _fail(str(exc))


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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
        text = sys.stdin.read()
    hub = state.hub()
    kwargs: dict[str, Any] = {
        "dialogue": dialogue,
        "assistant": assistant,
        "model": model,
        "images": images,
    }
    if stream:
        replies = hub.stream(text, **kwargs)
        for delta in replies:
            if not as_json:
                click.echo(delta.text, nl=False)
        answer = replies.answer
        assert answer is not None
        if not as_json:
            click.echo()
    else:
        answer = hub.ask(text, **kwargs)
        if not as_json:
            click.echo(answer.text)
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
    result = state.hub().analyze(sys.stdin.read() if text == "-" else text)
    if as_json:
        _emit(result)
        return
    click.echo(f"{result.label.value} {result.score:+.2f}")
    for item in result.evidence:
        click.echo(f"  {item.weight:+.2f} {item.term}")


@cli.command()
@click.argument("images", nargs=-1, required=True)
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
    schema_data = None
    if schema:
        try:
            schema_data = json.loads(Path(schema).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            _fail(f"{schema}: not a JSON schema ({exc})")
    reply = state.hub().describe_image(
        *images, prompt=prompt, schema=schema_data, detail=detail, model=model
    )
    if as_json:
        _emit(reply)
    elif reply.data is not None:
        click.echo(json.dumps(reply.data, indent=2, ensure_ascii=False))
    else:
        click.echo(reply.text)


@cli.command()
@json_option
@pass_state
def models(state: CliState, as_json: bool) -> None:
    """The models the chat backend offers."""
    found = state.hub().models()
    if as_json:
        _emit(list(found))
        return
    for info in found:
        click.echo(f"{info.id}\t{info.owned_by or ''}")


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
        text = dataset_to_jsonl(dataset_from_dialogues(found))
    else:
        text = json.dumps(converter.unstructure(found), indent=2, ensure_ascii=False) + "\n"
    if output:
        _write_atomic(Path(output), text)
        click.echo(f"wrote {len(found)} dialogue(s) to {output}", err=True)
    else:
        click.echo(text, nl=False)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        _fail(f"{path}: cannot write ({exc.strerror})")


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


# --- training ---------------------------------------------------------------------------------


def _job_line(job: TrainingJob) -> str:
    model = f"\t{job.fine_tuned_model}" if job.fine_tuned_model else ""
    return f"{job.id}\t{job.status.value}\t{job.base_model}{model}"


@contextmanager
def _resumable(job_id: str) -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        click.echo(
            f"\nstopped waiting; job {job_id} keeps running. "
            f"Resume with: modelport jobs wait {job_id}",
            err=True,
        )
        sys.exit(130)


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


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 else f"${value:.4f}"


def _print_report(report: DatasetReport, model: str | None) -> None:
    click.echo(f"{report.source}: {report.examples} examples, {report.messages} messages")
    click.echo(
        f"tokens: {report.tokens:,} (largest example {report.max_example_tokens:,}; "
        f"counted with {report.tokenizer})"
    )
    line = f"trained on: {report.billed_tokens:,} tokens over {report.epochs} epochs"
    if report.estimated_cost is not None and report.price_per_million is not None:
        line += (
            f"; estimated cost {_money(report.estimated_cost)} at "
            f"{_money(report.price_per_million)} per 1M tokens ({model})"
        )
    else:
        line += "; cost unknown (the training backend has no price for this model)"
    click.echo(line)
    for title, items in (("problems", report.problems), ("warnings", report.warnings)):
        if items:
            click.echo(f"{title} ({len(items)}):")
            for item in items:
                click.echo(f"  {item}")
    click.echo("ok: ready to upload" if report.ok else "not ready: fix the problems above")


def _dataset_for(
    hub: Hub,
    data: str | None,
    columns: str | None,
    assistant: str | None,
    since: str | None,
    labels: tuple[str, ...],
    repeat: bool,
) -> TrainingDataset | str:
    if data is None:
        return hub.dialogue_dataset(
            assistant=assistant, since=_date(since), labels=labels or None, repeat=repeat
        )
    if columns:
        csv = CsvColumns.parse(columns, hub.settings.training.csv)
        return load_dataset(data, columns=csv)
    return data


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
@click.option("-m", "--model", help="Base model to fine-tune.")
@click.option("--suffix", help="Suffix for the fine-tuned model's name.")
@click.option("--epochs", type=click.IntRange(1, 50), help="Training epochs (n_epochs).")
@click.option(
    "--validation",
    type=click.Path(exists=True),
    help="Validation data (CSV, JSONL or a directory).",
)
@click.option("--description", default="", help="Kept with the job record.")
@click.option("--check", is_flag=True, help="Only validate the data and estimate; upload nothing.")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the job to finish.")
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
    suffix: str | None,
    epochs: int | None,
    validation: str | None,
    description: str,
    check: bool,
    wait_: bool,
    as_json: bool,
) -> None:
    """Fine-tune a model on DATA (a CSV or JSONL file, or a directory of them) or on stored
    dialogues; with --check, only validate the data and estimate tokens and cost."""
    if bool(data) == from_dialogues:
        raise click.UsageError("give DATA (a file or directory) or --from-dialogues, not both")
    hub = state.hub()
    if from_dialogues:
        model = model or hub.assistant(assistant).model
    hyperparameters = {"n_epochs": epochs} if epochs else {}
    dataset = _dataset_for(hub, data, columns, assistant, since, labels, repeat)
    if check:
        report = hub.check_dataset(dataset, base_model=model, hyperparameters=hyperparameters)
        if as_json:
            click.echo(json.dumps(describe_report(report), indent=2, ensure_ascii=False))
        else:
            _print_report(report, model or hub.assistant().model)
        sys.exit(0 if report.ok else 1)
    job = hub.train(
        dataset,
        base_model=model,
        suffix=suffix,
        hyperparameters=hyperparameters,
        validation=validation,
        description=description,
    )
    if not as_json:
        click.echo(_job_line(job))
        click.echo(f"follow it with: modelport jobs wait {job.id}", err=True)
    if wait_:
        job = _wait(state, job.id, 10.0, None, as_json)
        if not as_json:
            click.echo(_job_line(job))
    if as_json:
        _emit(job)


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
        record = next((r for r in hub.jobs() if r.job_id == job_id), None)
    except ModelportError:  # no storage: the backend's view is still worth showing
        record = None
    if as_json:
        _emit({"job": job, "events": list(events), "record": record})
        return
    click.echo(_job_line(job))
    if job.error:
        click.echo(f"error: {job.error}")
    if record is not None:
        click.echo(f"source: {record.source}")
        if record.description:
            click.echo(f"description: {record.description}")
        for change in record.history:
            click.echo(f"  {_when(change.at)} {change.status.value}")
    for event in events:
        click.echo(f"  {_when(event.created_at)} {event.message}")


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
    """Wait for a job to finish (Ctrl-C stops waiting; the job keeps running)."""
    job = _wait(state, job_id, poll, timeout, as_json)
    if as_json:
        _emit(job)
    else:
        click.echo(_job_line(job))


# --- plugins and config -----------------------------------------------------------------------


@cli.command()
@json_option
@pass_state
def plugins(state: CliState, as_json: bool) -> None:
    """Installed plugins: distribution, version, backends, and any failure."""
    infos = state.hub().plugins.infos()
    if as_json:
        _emit(infos)
        return
    for info in infos:
        dist = f"{info.distribution} {info.version}" if info.distribution else "(not packaged)"
        backends = ", ".join(info.backends) or "-"
        click.echo(f"{info.name}\t{info.status}\t{dist}\tbackends: {backends}")
        if info.error:
            click.echo(f"  {info.error}")


@cli.group()
def config() -> None:
    """Show or check the configuration."""


@config.command("show")
@json_option
@pass_state
def config_show(state: CliState, as_json: bool) -> None:
    """The effective settings (file + environment), secrets redacted."""
    settings = state.settings()
    data = settings.redacted()
    if as_json:
        click.echo(json.dumps({"file": settings.path, "settings": data}, indent=2))
        return
    click.echo(f"# file: {settings.path or '(none: defaults and environment only)'}")
    click.echo(json.dumps(data, indent=2))


@config.command("check")
@pass_state
def config_check(state: CliState) -> None:
    """Load the config, and build the backend of every capability (checks API keys)."""
    settings = state.settings()
    hub = state.hub()
    problems = 0
    for info in hub.plugins.infos():
        if info.status == "failed":
            problems += 1
            click.echo(f"plugin {info.name}: FAILED: {info.error}")
    for capability in Capability:
        try:
            name = hub.backend_name(capability)
        except ModelportError as exc:
            if settings.capabilities.get(capability) is None and not hub.plugins.registry.offering(
                capability
            ):
                click.echo(f"{capability.value}: - (no backend installed)")
                continue
            problems += 1
            click.echo(f"{capability.value}: ERROR: {exc}")
        else:
            click.echo(f"{capability.value}: {name} ok")
    if problems:
        _fail(f"{problems} problem(s) found in {settings.path or 'the configuration'}")
    click.echo("configuration ok", err=True)


def main(argv: list[str] | None = None, obj: CliState | None = None) -> None:
    """Run the command line (``obj`` lets a host or a test supply its own hub)."""
    cli.main(args=argv, obj=obj, prog_name="modelport")
