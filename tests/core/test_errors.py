from __future__ import annotations

import pytest

from modelport import errors


def test_every_error_derives_from_the_root() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.ModelportError), name


def test_backend_error_carries_status_request_id_retry_after() -> None:
    exc = errors.RateLimitedError(
        "slow down", backend="acme", status=429, request_id="req_1", retry_after=2.0
    )
    assert exc.retryable
    assert exc.retry_after == 2.0
    assert exc.backend == "acme"
    assert str(exc) == "acme: slow down (status 429, request id req_1)"


@pytest.mark.parametrize(
    ("cls", "retryable"),
    [
        (errors.RateLimitedError, True),
        (errors.TransientError, True),
        (errors.BackendTimeoutError, True),
        (errors.BackendConnectionError, True),
        (errors.InvalidRequestError, False),
        (errors.AuthenticationError, False),
        (errors.UnsupportedError, False),
    ],
)
def test_default_retryability(cls: type[errors.BackendError], retryable: bool) -> None:
    assert cls("x", backend="b").retryable is retryable
    assert cls("x", backend="b", retryable=not retryable).retryable is not retryable


def test_messages_say_where_and_what_to_do() -> None:
    exc = errors.ConfigError("bad value", path="/etc/m.toml", key="retry.attempts", hint="use 3")
    assert str(exc) == "/etc/m.toml, key 'retry.attempts': bad value (use 3)"
    assert (
        str(errors.StorageError("torn record", path="d.jsonl", line=7)) == "d.jsonl:7: torn record"
    )
    secret = errors.MissingSecretError("ACME_API_KEY", backend="acme")
    assert "ACME_API_KEY" in str(secret)
    assert "export ACME_API_KEY=" in str(secret)
    data = errors.TrainingDataError(["a.jsonl:1: bad", "a.jsonl:3: worse"])
    assert str(data) == "invalid training data: a.jsonl:1: bad (and 1 more)"
    assert "\n" not in str(data)
