"""No credential in any output: logs, --json, errors and their chains, reprs, config show, stores.

One distinctive marker is planted in every secret a user can hand modelport: the API key in the
environment, keys in custom headers and query parameters, and a password in the base URL's
user-info. A fake OpenAI server (respx) answers, and in one case echoes the key back in its 401
body. Every output modelport produces is collected and searched for the marker.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import structlog
from click.testing import CliRunner, Result
from structlog.testing import capture_logs

from modelport import Hub, Message, TrainingDataset, TrainingExample
from modelport.cli import CliState, cli
from modelport.errors import (
    AuthenticationError,
    BackendConnectionError,
    ConfigError,
    ModelportError,
    RateLimitedError,
)
from modelport.training import dataset_to_jsonl

#: In every secret below; built at run time, so the repository holds no key-shaped literal.
MARK = "LEAK" + "CANARY"
API_KEY = f"sk-{MARK}0123456789"
HEADER_KEY = f"{MARK}-hdr-5e3c7a91"
SUBSCRIPTION_KEY = f"{MARK}-sub-77aa03"
QUERY_SIG = f"{MARK}sig4d2b"
URL_PASSWORD = f"{MARK}pw9f8e"

HOST = "https://api.test/v1"
BASE_URL = f"https://svc:{URL_PASSWORD}@api.test/v1"


def config_text(root: Path) -> str:
    return f"""
[capabilities]
chat = "openai"
vision = "openai"
training = "openai"
storage = "jsonfile"
sentiment = "keywords"

[backends.openai]
base_url = "{BASE_URL}"
query = {{ "api-version" = "2024-10-21", "sig" = "{QUERY_SIG}" }}

[backends.openai.headers]
"api-key" = "{HEADER_KEY}"
"Ocp-Apim-Subscription-Key" = "{SUBSCRIPTION_KEY}"
"X-Team" = "blue"

[backends.jsonfile]
root = "{root.as_posix()}"

[retry]
attempts = 2
jitter_s = 0
max_retry_after_s = 0
"""


def completion(text: str = "Hello!") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def echo_401() -> httpx.Response:
    """A server that repeats what it was sent, credentials included."""
    message = (
        f"Incorrect API key provided: {API_KEY}. You sent api-key: {HEADER_KEY}, "
        f"Authorization: Bearer {API_KEY}, url {BASE_URL}/chat/completions?sig={QUERY_SIG}"
    )
    body = {
        "error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
    }
    return httpx.Response(401, json=body, headers={"x-request-id": "req_401"})


def rate_limited() -> httpx.Response:
    body = {"error": {"message": f"slow down, {API_KEY}", "type": "rate_limit", "code": None}}
    return httpx.Response(429, json=body, headers={"retry-after": "0"})


JOB = {
    "id": "ftjob-1",
    "object": "fine_tuning.job",
    "model": "gpt-4o-mini-2024-07-18",
    "created_at": 1_721_764_800,
    "finished_at": None,
    "fine_tuned_model": None,
    "status": "validating_files",
    "training_file": "file-1",
    "validation_file": None,
    "error": None,
}
FILE = {"id": "file-1", "object": "file", "purpose": "fine-tune", "filename": "data.jsonl"}
DATASET = TrainingDataset(
    [
        TrainingExample([Message("user", f"{n}+{n}?"), Message("assistant", str(2 * n))])
        for n in range(12)
    ],
    source="data.jsonl",
)


@pytest.fixture(autouse=True)
def _forget_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no secret registered, so none passes thanks to an earlier one."""
    from modelport import _redact

    monkeypatch.setattr(_redact, "_known", _redact._Known())


# --- the collector ---------------------------------------------------------------------------


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception behind it (``__cause__`` and ``__context__``)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__]


def error_texts(exc: BaseException) -> list[str]:
    """Everything a host could print about ``exc``: the full traceback with its chain, and the
    str, repr, args and attributes of each exception in the chain."""
    texts = ["".join(traceback.format_exception(exc))]
    for item in chain(exc):
        texts += [str(item), repr(item), repr(item.args)]
        texts += [
            repr(v) for k, v in vars(item).items() if k not in ("request", "_request", "response")
        ]
    return texts


class Outputs:
    """Every text modelport produced during a test, by where it came from."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.texts: list[tuple[str, str]] = []
        self.caplog = caplog

    def add(self, where: str, *texts: object) -> None:
        self.texts += [(where, t if isinstance(t, str) else repr(t)) for t in texts]

    def add_error(self, where: str, exc: BaseException) -> None:
        self.add(where, *error_texts(exc))

    def add_files(self, root: Path) -> None:
        for path in root.rglob("*"):
            if path.is_file():
                self.add(f"file {path.relative_to(root)}", path.read_text(errors="replace"))

    def assert_clean(self) -> None:
        """No text holds the marker; stdlib logging (every logger, DEBUG) included."""
        self.add("stdlib logging", self.caplog.text, *(r.getMessage() for r in self.caplog.records))
        leaks = [
            f"{where}: ...{text[max(0, text.find(MARK) - 60) :][:140]}..."
            for where, text in self.texts
            if MARK in text
        ]
        assert not leaks, "credential leaked:\n" + "\n".join(leaks)


@pytest.fixture
def outputs(caplog: pytest.LogCaptureFixture) -> Outputs:
    caplog.set_level(logging.DEBUG)
    return Outputs(caplog)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def config(tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "modelport.toml"
    path.write_text(config_text(store))
    monkeypatch.setenv("MODELPORT_CONFIG", str(path))
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("MODELPORT_DISABLE_PLUGINS", "ollama-native")  # the example, if installed
    return path


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=HOST, assert_all_called=False) as router:
        yield router


@pytest.fixture
def hub(config: Path) -> Iterator[Hub]:
    with Hub.from_config() as hub:
        yield hub


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["-vv", *args], obj=CliState())


def cli_output(result: Result) -> list[str]:
    texts = [result.stdout, result.stderr]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        texts += error_texts(result.exception)
    return texts


# --- the paths -------------------------------------------------------------------------------


def test_the_secrets_are_really_used(api: respx.MockRouter, hub: Hub) -> None:
    """The test would prove nothing if the secrets never reached the server."""
    route = api.post("/chat/completions").mock(return_value=httpx.Response(200, json=completion()))
    hub.ask("hi")
    request = route.calls.last.request
    assert request.headers["api-key"] == HEADER_KEY
    assert request.url.params["sig"] == QUERY_SIG
    assert URL_PASSWORD in str(request.url) or "authorization" in request.headers


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_config_show(config: Path, outputs: Outputs, fmt: str) -> None:
    for args in (["config", "show"], ["config", "show", "--json"]):
        result = run("--log-format", fmt, *args)
        assert result.exit_code == 0, result.output
        outputs.add(" ".join(args), *cli_output(result))
    outputs.assert_clean()


def test_the_redacted_settings_mask_secrets_and_keep_the_rest(config: Path) -> None:
    from modelport import load_settings

    settings = load_settings()
    section = settings.redacted()["backends"]["openai"]
    assert section["headers"] == {
        "api-key": "***",
        "Ocp-Apim-Subscription-Key": "***",
        "X-Team": "blue",  # what is not secret stays readable
    }
    assert section["query"] == {"api-version": "2024-10-21", "sig": "***"}
    assert section["base_url"] == "https://***@api.test/v1"
    assert MARK not in repr(settings)


def test_cli_json_outputs_logs_and_stored_records(
    api: respx.MockRouter, config: Path, store: Path, tmp_path: Path, outputs: Outputs
) -> None:
    answers = iter([rate_limited()])  # then answers
    api.post("/chat/completions").mock(
        side_effect=lambda _request: next(answers, httpx.Response(200, json=completion()))
    )
    api.get("/models").mock(
        return_value=httpx.Response(200, json={"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "openai"}]})
    )  # fmt: skip
    api.post("/files").mock(return_value=httpx.Response(200, json=FILE))
    api.post("/fine_tuning/jobs").mock(return_value=httpx.Response(200, json=JOB))
    api.get("/fine_tuning/jobs/ftjob-1").mock(return_value=httpx.Response(200, json=JOB))
    api.get("/fine_tuning/jobs/ftjob-1/events").mock(
        return_value=httpx.Response(200, json={"object": "list", "data": [], "has_more": False})
    )
    data = tmp_path / "data.jsonl"
    data.write_text(dataset_to_jsonl(DATASET))
    commands = [
        ["--log-format", "json", "ask", "--json", "hi"],
        ["ask", "hi"],
        ["models", "--json"],
        ["dialogues", "list", "--json"],
        ["plugins", "--json"],
        ["--log-format", "json", "train", str(data), "-m", "gpt-4o-mini", "--yes", "--json"],
        ["jobs", "show", "ftjob-1", "--json"],
        ["jobs", "list", "--json"],
        ["config", "check"],
    ]
    for args in commands:
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
        outputs.add(" ".join(args), *cli_output(result))
    outputs.add_files(store)
    assert list((store / "dialogues").glob("*.jsonl"))  # a dialogue and a job record were stored
    assert list((store / "jobs").glob("*.json"))
    outputs.assert_clean()


def test_cli_error_from_a_server_that_echoes_the_key(
    api: respx.MockRouter, config: Path, outputs: Outputs
) -> None:
    api.post("/chat/completions").mock(return_value=echo_401())
    for fmt in ("console", "json"):
        result = run("--log-format", fmt, "ask", "--json", "hi")
        assert result.exit_code == 1
        assert result.stderr.startswith("error: openai: HTTP 401: Incorrect API key provided: ")
        outputs.add("ask (401)", *cli_output(result))
    outputs.assert_clean()


def test_errors_and_their_chains(api: respx.MockRouter, hub: Hub, outputs: Outputs) -> None:
    api.post("/chat/completions").mock(
        side_effect=[echo_401(), rate_limited(), rate_limited(), *[httpx.ConnectError("no")] * 2]
    )
    with capture_logs() as logs:
        with pytest.raises(AuthenticationError) as auth:
            hub.ask("hi")
        with pytest.raises(RateLimitedError) as limited:
            hub.ask("hi")
        with pytest.raises(BackendConnectionError) as connection:
            hub.ask("hi")
    assert "check the API key in $OPENAI_API_KEY for https://" in str(auth.value)
    for name, caught in (("401", auth), ("429", limited), ("connect", connection)):
        outputs.add_error(name, caught.value)
    outputs.add("structlog", repr(logs))
    assert any(e["event"] == "retrying" for e in logs)
    outputs.assert_clean()


async def test_async_errors_and_their_chains(
    api: respx.MockRouter, config: Path, outputs: Outputs
) -> None:
    from modelport import AsyncHub

    api.post("/chat/completions").mock(return_value=echo_401())
    async with AsyncHub.from_config() as hub:
        with pytest.raises(AuthenticationError) as caught:
            await hub.ask("hi")
    outputs.add_error("async 401", caught.value)
    outputs.assert_clean()


@pytest.mark.parametrize(
    "base_url",
    [
        f"ftp://svc:{URL_PASSWORD}@api.test/v1",
        f"api.test/v1?key={QUERY_SIG}",
        f"wss://api.test/v1?api-key={QUERY_SIG}&token={URL_PASSWORD}",
    ],
)
def test_a_rejected_base_url_is_not_repeated_with_its_credentials(
    config: Path, monkeypatch: pytest.MonkeyPatch, outputs: Outputs, base_url: str
) -> None:
    monkeypatch.setenv("MODELPORT_BACKENDS__OPENAI__BASE_URL", json.dumps(base_url))
    with Hub.from_config() as hub, pytest.raises(ConfigError) as caught:
        hub.backend_name("chat")
    assert "base_url" in str(caught.value)
    outputs.add_error("bad base_url", caught.value)
    result = run("config", "check")
    assert result.exit_code == 1
    outputs.add("config check", *cli_output(result))
    outputs.assert_clean()


def test_the_environment_is_in_no_repr(outputs: Outputs) -> None:
    from modelport.testing import make_test_hub

    hub = make_test_hub(env={"OPENAI_API_KEY": API_KEY, "TOKEN": URL_PASSWORD})
    outputs.add("repr", repr(hub._rt), repr(hub._rt.backends()))
    outputs.assert_clean()


def test_reprs(api: respx.MockRouter, hub: Hub, outputs: Outputs) -> None:
    api.post("/chat/completions").mock(return_value=httpx.Response(200, json=completion()))
    hub.ask("hi")
    backend = hub.backend("chat")
    runtime = hub._rt
    objects: list[Any] = [
        hub,
        runtime,
        hub.settings,
        hub.plugins,
        backend,
        vars(backend),
        backend.config,
        backend.config.settings,
        [vars(b) if hasattr(b, "__dict__") else b for b in runtime.backends()],
    ]
    from modelport import BackendContext

    objects.append(BackendContext("openai", backend.config.settings))
    outputs.add("repr", *map(repr, objects), *map(str, objects))
    outputs.assert_clean()


def test_log_events_carrying_secrets_are_masked(hub: Hub, outputs: Outputs) -> None:
    """A log call that is handed a secret (a plugin's, say) still never shows it."""
    from modelport.logs import get_logger

    with capture_logs() as logs:
        get_logger().debug("oops", detail=f"sent {API_KEY} and {HEADER_KEY}", url=BASE_URL)
        get_logger().warning("oops", error=ModelportError(f"bad {SUBSCRIPTION_KEY}"))
    assert [e["event"] for e in logs] == ["oops", "oops"]
    outputs.add("structlog", repr(logs))
    structlog.reset_defaults()  # unconfigured, as in a fresh process: stdlib logging
    get_logger().warning("stdlib", detail=f"sent {API_KEY}", url=BASE_URL)
    outputs.assert_clean()
