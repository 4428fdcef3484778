"""Logging: bound per call, never configured globally by the library, secrets masked."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from modelport.logs import redact_secrets


def test_unconfigured_host_gets_stdlib_logging_and_nothing_on_stdout() -> None:
    code = """
import structlog
from modelport.errors import RateLimitedError
from modelport.testing import FakeBackends, make_test_hub
fakes = FakeBackends()
fakes.chat.script(RateLimitedError("slow", backend="fake-chat", status=429, retry_after=0), "ok")
make_test_hub(fakes).ask("hi")
assert not structlog.is_configured()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == ""
    # stdlib's last-resort handler prints warnings on stderr, bound to the call
    assert "event='retrying'" in out.stderr
    assert "backend='fake-chat'" in out.stderr
    assert "attempt=1" in out.stderr
    assert "status=429" in out.stderr


def test_host_logging_config_is_followed(caplog: pytest.LogCaptureFixture) -> None:
    from modelport.errors import TransientError
    from modelport.testing import FakeBackends, make_test_hub

    fakes = FakeBackends()
    fakes.chat.script(TransientError("503", backend="fake-chat", status=503), "ok")
    with caplog.at_level(logging.WARNING, logger="modelport"):
        make_test_hub(fakes).ask("hi")
    (record,) = caplog.records
    assert record.name == "modelport"
    assert "operation='complete'" in record.getMessage()


def test_cli_json_logs_go_to_stderr_and_mask_secrets() -> None:
    code = """
from modelport.logs import configure_cli_logging, get_logger
configure_cli_logging("json")
fake_key = "sk-" + "a1" * 12  # built at run time: no key-shaped literal in the repo
get_logger().warning("calling", api_key=fake_key, url="Bearer " + "b2" * 6)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == ""
    event = json.loads(out.stderr)
    assert event["event"] == "calling"
    assert event["level"] == "warning"
    assert event["api_key"] == "***"
    assert event["url"] == "Bearer ***"


def test_redaction_masks_key_like_strings_anywhere() -> None:
    key = "sk-proj-" + "c3" * 10
    event = redact_secrets(None, "warning", {"error": f"bad key {key}", "n": 3})
    assert event == {"error": "bad key sk-proj***", "n": 3}


# --- the one redaction helper ------------------------------------------------------------------

SECRET = "s3cr3t-" + "Vq9" * 4  # built at run time: no key-shaped literal in the repo


@pytest.fixture(autouse=True)
def _forget_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelport import _redact

    monkeypatch.setattr(_redact, "_known", _redact._Known())


def test_registered_values_are_masked_anywhere_also_url_encoded() -> None:
    from urllib.parse import quote

    from modelport.logs import redact, register_secret

    value = SECRET + "/+="
    assert redact(f"got {value}!") == f"got {value}!"
    register_secret(value)
    assert redact(f"got {value}! and {quote(value, safe='')}") == "got ***! and ***"
    register_secret("short")  # too short to mask safely: ignored
    assert redact("a short word") == "a short word"


def test_a_secret_object_registers_itself() -> None:
    from modelport import read_secret
    from modelport.logs import redact

    read_secret("ACME_API_KEY", env={"ACME_API_KEY": SECRET})
    assert redact(f"server said: bad key {SECRET}") == "server said: bad key ***"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://u:pw@host.test/v1", "https://***@host.test/v1"),
        ("https://token@host.test/v1/", "https://***@host.test/v1/"),
        (
            "GET https://h.test/a?api-version=1&key=abc&api-key=d&sig=e%2Bf&code=x#frag done",
            "GET https://h.test/a?api-version=1&key=***&api-key=***&sig=***&code=***#frag done",
        ),
        ("url 'wss://h.test/?access_token=abc'.", "url 'wss://h.test/?access_token=***'."),
        ("no url: h.test/v1?token=abc", "no url: h.test/v1?token=***"),
        ("Authorization: Bearer abcdefgh123", "Authorization: ***"),
        ("sent {'x-api-key': 'abc123'}", "sent {'x-api-key': '***'}"),
        ("password=hunter2 user=bob", "password=*** user=bob"),
        ("Bearer abcdefgh123 was sent", "Bearer *** was sent"),
        # not secrets: stays as it is
        ("max_tokens=100 total_tokens: 7 api_key_env=ACME_API_KEY", None),
        ("https://h.test/v1?api-version=2024-10-21", None),
        ("key 'backends.acme.timeout': must be a number", None),
    ],
)
def test_redact_masks_url_credentials_pairs_and_shapes(text: str, shown: str | None) -> None:
    from modelport.logs import redact

    assert redact(text) == (text if shown is None else shown)


def test_redact_data_judges_headers_by_header_names_and_the_rest_by_key_names() -> None:
    from modelport.logs import redact_data

    data = {
        "headers": {
            "Authorization": "Bearer x",
            "api-key": "a",
            "X-Api-Key": "b",
            "Ocp-Apim-Subscription-Key": "c",
            "X-Auth-Token": "d",
            "Cookie": "e",
            "X-Team": "blue",
        },
        "query": {"api-version": "1", "sig": "f"},
        "base_url": "https://u:p@h.test/v1",
        "api_key_env": "ACME_API_KEY",
        "max_tokens_param": "max_tokens",
        "tokens_per_minute": 1000,
        "client_secret": "g",
        "list": ["https://u:p@h.test", 3],
    }
    assert redact_data(data) == {
        "headers": {
            "Authorization": "***",
            "api-key": "***",
            "X-Api-Key": "***",
            "Ocp-Apim-Subscription-Key": "***",
            "X-Auth-Token": "***",
            "Cookie": "***",
            "X-Team": "blue",
        },
        "query": {"api-version": "1", "sig": "***"},
        "base_url": "https://***@h.test/v1",
        "api_key_env": "ACME_API_KEY",
        "max_tokens_param": "max_tokens",
        "tokens_per_minute": 1000,
        "client_secret": "***",
        "list": ["https://***@h.test", 3],
    }


def test_secrets_in_settings_data_are_registered() -> None:
    from modelport.logs import redact, register_secrets_in

    header, password, sig = (f"{SECRET}-{n}" for n in ("h", "p", "s"))
    register_secrets_in(
        {
            "acme": {
                "headers": {"x-api-key": header, "X-Team": "blue-team-1"},
                "base_url": f"https://svc:{password}@h.test/v1?sig={sig}",
                "query": {"api-version": "2024-10-21"},
            }
        }
    )
    assert redact(f"{header} {password} {sig} blue-team-1 2024-10-21") == (
        "*** *** *** blue-team-1 2024-10-21"
    )


def test_redact_exception_scrubs_the_whole_chain_in_place() -> None:
    import traceback

    from modelport.errors import AuthenticationError
    from modelport.logs import redact_exception, register_secret

    register_secret(SECRET)

    class VendorError(Exception):
        def __init__(self, message: str) -> None:
            super().__init__(message)
            self.message = message
            self.body = {"error": {"message": message}}

    try:
        try:
            raise ValueError(f"underneath: {SECRET}")
        except ValueError:
            raise VendorError(f"Incorrect API key provided: {SECRET}") from None
    except VendorError as vendor:
        vendor.__suppress_context__ = False
        try:
            raise AuthenticationError(f"bad {SECRET}", backend="acme") from vendor
        except AuthenticationError as exc:
            error = exc
    assert redact_exception(error) is error
    text = "".join(traceback.format_exception(error))
    assert SECRET not in text
    assert "Incorrect API key provided: ***" in text
    cause = error.__cause__
    assert isinstance(cause, VendorError)
    assert SECRET not in repr((cause.args, cause.message, cause.body, error.message))


def test_library_events_are_redacted_even_when_the_host_captures_them() -> None:
    from structlog.testing import capture_logs

    from modelport.logs import get_logger, register_secret

    register_secret(SECRET)
    with capture_logs() as logs:
        get_logger().debug(
            "calling",
            url="https://u:pw@h.test/?key=abc",
            detail=f"key {SECRET}",
            api_key="plain",
            tokens=15,
            error=ValueError(f"no {SECRET}"),
        )
    (event,) = logs
    assert event["url"] == "https://***@h.test/?key=***"
    assert event["detail"] == "key ***"
    assert event["api_key"] == "***"
    assert event["tokens"] == 15
    assert str(event["error"]) == "no ***"


def test_httpx_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    import modelport.logs  # noqa: F401  (importing it protects the logger)

    with caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info(
            'HTTP Request: %s %s "%s %d"', "GET", "https://u:pw@h.test/v1?sig=abc", "HTTP/1.1", 200
        )
    assert caplog.messages == ['HTTP Request: GET https://***@h.test/v1?sig=*** "HTTP/1.1 200"']


def test_protected_loggers_get_one_filter() -> None:
    from modelport.logs import RedactingFilter, protect_loggers

    protect_loggers("modelport.test.vendor", "modelport.test.vendor")
    protect_loggers("modelport.test.vendor")
    filters = logging.getLogger("modelport.test.vendor").filters
    assert [type(f) for f in filters] == [RedactingFilter]
