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
