"""The one error tree.

Everything modelport raises on purpose derives from :class:`ModelportError`, so a host
application can ``except modelport.ModelportError`` and show ``str(exc)``: one line saying what
was wrong, where, and what to do. This module imports nothing from the rest of modelport (and no
third-party package), so any module can import it without an import cycle.

::

    ModelportError
    ├── ConfigError                  a setting is wrong (file, key)
    │   ├── MissingSecretError       an API key variable is not set
    │   └── BackendNotFoundError     config names a backend no plugin offers
    ├── PluginError                  a plugin failed to import, validate or register
    │   └── PluginBlockedError       the backend's plugin is on the block list
    ├── BackendError                 a backend call failed (backend, status, request id, ...)
    │   ├── AuthenticationError      401: bad or missing credentials
    │   │   └── PermissionDeniedError  403
    │   ├── RateLimitedError         429: retryable, honours retry-after
    │   ├── TransientError           5xx, timeouts, dropped connections: retryable
    │   │   ├── BackendTimeoutError
    │   │   ├── BackendConnectionError
    │   │   └── CircuitOpenError     not called: it failed too often in a row (circuit open)
    │   ├── InvalidRequestError      400, 404, 409, 422: fix the request, do not retry
    │   │   └── NotFoundError        404
    │   ├── UnsupportedError         the backend cannot do this, or the vendor refuses to
    │   └── ResponseError            the backend answered something unusable
    ├── StorageError                 a store could not read or write (path, line)
    │   ├── CorruptRecordError       a stored record is damaged
    │   ├── RecordNotFoundError      no dialogue or job with that id
    │   └── ReplyNotStoredError      a reply came back but could not be kept: it is on the error
    ├── InvalidInputError            what the caller passed cannot be used (an empty question)
    ├── BudgetExceededError          an assistant spent its budget: the call was not sent
    ├── LimiterUnavailableError      a shared rate limit's Redis cannot be reached (url)
    ├── ImageError                   an image cannot be used (source)
    ├── TrainingDataError            training data is invalid (one or more problems)
    └── WaitTimeoutError             a training job did not finish in the time given
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AuthenticationError",
    "BackendConnectionError",
    "BackendError",
    "BackendNotFoundError",
    "BackendTimeoutError",
    "CircuitOpenError",
    "BudgetExceededError",
    "ConfigError",
    "CorruptRecordError",
    "ImageError",
    "InvalidInputError",
    "InvalidRequestError",
    "LimiterUnavailableError",
    "MissingSecretError",
    "ModelportError",
    "NotFoundError",
    "PermissionDeniedError",
    "PluginBlockedError",
    "PluginError",
    "RateLimitedError",
    "RecordNotFoundError",
    "ReplyNotStoredError",
    "ResponseError",
    "StorageError",
    "TrainingDataError",
    "TransientError",
    "UnsupportedError",
    "WaitTimeoutError",
]


#: Characters that end a line (for ``str.splitlines`` or a terminal), shown as escapes.
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


class ModelportError(Exception):
    """Root of every error modelport raises on purpose.

    :param message: what went wrong, one line.
    :param hint: what the user can do about it; appended to ``str(exc)``.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.message} ({self.hint})" if self.hint else self.message
        return text.translate(_LINE_BREAKS)  # one line, whatever a record or a server held


# --- configuration and plugins --------------------------------------------------------------


class ConfigError(ModelportError):
    """A setting is missing or wrong.

    :param path: the config file, when the problem is in one.
    :param key: the dotted key, e.g. ``backends.acme.timeout``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ", ".join(p for p in (path, f"key {key!r}" if key else None) if p)
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.path = path
        self.key = key


class MissingSecretError(ConfigError):
    """An API key (or other secret) variable is not set in the environment."""

    def __init__(self, variable: str, *, backend: str | None = None) -> None:
        who = f"backend {backend!r} needs " if backend else ""
        super().__init__(
            f"{who}the environment variable {variable} (an API key), which is not set",
            hint=f"export {variable}=... before running; keys are never read from config files",
        )
        self.variable = variable
        self.backend = backend


class BackendNotFoundError(ConfigError):
    """Config (or an argument) names a backend that no loaded plugin offers."""

    def __init__(
        self,
        capability: str,
        name: str | None,
        available: Sequence[str],
        *,
        reason: str | None = None,
    ) -> None:
        choices = ", ".join(sorted(available)) or "none installed"
        if name is None:
            message = f"no {capability} backend is configured"
        else:
            message = f"no {capability} backend named {name!r}"
        if reason:
            message = f"{message}: {reason}"
        super().__init__(
            message,
            key=f"capabilities.{capability}",
            hint=f"set [capabilities] {capability} = one of: {choices}"
            if available
            else f"install a plugin that offers a {capability} backend",
        )
        self.capability = capability
        self.name = name
        self.available = tuple(available)


class PluginError(ModelportError):
    """A plugin failed to import, validate or register.

    :param plugin: the plugin's name (its entry-point name).
    """

    def __init__(self, message: str, *, plugin: str, hint: str | None = None) -> None:
        super().__init__(f"plugin {plugin!r}: {message}", hint=hint)
        self.plugin = plugin


class PluginBlockedError(PluginError):
    """The plugin that would serve a request is on the block list."""


# --- backends --------------------------------------------------------------------------------


class BackendError(ModelportError):
    """A backend call failed.

    :param backend: the backend's name, e.g. ``"acme"``.
    :param status: the HTTP status (or ``None`` when there was no response).
    :param request_id: the vendor's request id, for support tickets.
    :param retryable: whether the same call may succeed if repeated.
    :param retry_after: seconds the vendor asked us to wait, when it said.
    """

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        backend: str,
        status: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        details = ", ".join(
            p
            for p in (
                f"status {status}" if status is not None else None,
                f"request id {request_id}" if request_id else None,
            )
            if p
        )
        text = f"{backend}: {message}" + (f" ({details})" if details else "")
        super().__init__(text, hint=hint)
        self.backend = backend
        self.status = status
        self.request_id = request_id
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after


class AuthenticationError(BackendError):
    """The backend rejected the credentials (401)."""


class PermissionDeniedError(AuthenticationError):
    """The credentials are valid but not allowed to do this (403)."""


class RateLimitedError(BackendError):
    """The backend is rate limiting us (429). Retryable; honours ``retry_after``."""

    default_retryable = True


class TransientError(BackendError):
    """A failure that may pass: 5xx, timeouts, dropped connections. Retryable."""

    default_retryable = True


class BackendTimeoutError(TransientError):
    """The backend did not answer in time."""


class BackendConnectionError(TransientError):
    """The backend could not be reached, or the connection dropped."""


class CircuitOpenError(TransientError):
    """The backend was not called: its last calls failed too often in a row, and its circuit
    breaker (``[circuit]``) lets no call through until ``retry_after`` seconds from now, when
    one trial call may go. Not retried (``retryable`` is false): nothing was sent.

    :param failures: the failed calls in a row that opened the circuit.
    """

    def __init__(self, backend: str, *, failures: int, retry_after: float) -> None:
        wait = f"{retry_after:.1f}".removesuffix(".0")
        super().__init__(
            f"not called: its last {failures} calls failed, so its circuit is open",
            backend=backend,
            retryable=False,
            retry_after=retry_after,
            hint=f"it is tried again in {wait}s; give the assistant fallbacks to be served "
            "meanwhile, or see [circuit]",
        )
        self.failures = failures


class InvalidRequestError(BackendError):
    """The backend refused the request as sent (400, 409, 422): fix it, do not retry."""


class NotFoundError(InvalidRequestError):
    """The model, file or job asked for does not exist (404)."""


class UnsupportedError(BackendError):
    """The backend cannot do this, or the vendor refuses to (e.g. no new fine-tuning jobs)."""


class ResponseError(BackendError):
    """The backend answered, but with something that cannot be used (bad JSON, no choices)."""


# --- data ------------------------------------------------------------------------------------


class StorageError(ModelportError):
    """A store could not read or write.

    :param path: the file (or other location) involved.
    :param line: the 1-based line, when the problem is in one record of a file.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = path or ""
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.path = path
        self.line = line


class CorruptRecordError(StorageError):
    """A stored record is damaged or was written by an unknown, newer schema."""


class RecordNotFoundError(StorageError):
    """No dialogue or job record with that id."""


class ReplyNotStoredError(StorageError):
    """The backend answered, but the store could not keep the turn.

    The reply is not lost: it is on the error, so the caller can still show it (the CLI prints
    it before the error). Raised from the store's own error, which is its ``__cause__``.

    :param reply: the :class:`modelport.Reply` that was paid for.
    :param sentiment: its :class:`modelport.Sentiment`, when one was analysed.
    :param dialogue_id: the dialogue the turn was for (``None`` for a new one not created).
    """

    def __init__(
        self,
        cause: BaseException,
        *,
        reply: object,
        sentiment: object = None,
        dialogue_id: str | None = None,
    ) -> None:
        if isinstance(cause, ModelportError):
            message, hint = cause.message, cause.hint
        else:
            message, hint = f"{type(cause).__name__}: {cause}", None
        super().__init__(  # the cause's message names its path and line already
            f"the reply was received but not stored: {message}",
            hint=hint
            or "fix the store, then ask again to keep the turn (the reply is kept on this error)",
        )
        self.path = getattr(cause, "path", None)
        self.line = getattr(cause, "line", None)
        self.reply = reply
        self.sentiment = sentiment
        self.dialogue_id = dialogue_id


class InvalidInputError(ModelportError):
    """What the caller passed cannot be used: an empty question, a schema that is not a JSON
    object. Nothing was sent."""


class BudgetExceededError(ModelportError):
    """An assistant has spent its budget (``[assistants.<name>] budget_usd``) for the period
    (``budget_period``): the chat call is refused before anything is sent.

    :param assistant: the assistant's name.
    :param spent_usd: what its recorded calls cost in the period (unknown costs count as 0).
    :param budget_usd: its budget for the period.
    :param period: ``"day"``, ``"month"`` or ``"total"``.
    """

    def __init__(
        self,
        assistant: str,
        *,
        spent_usd: float,
        budget_usd: float,
        period: str,
        hint: str | None = None,
    ) -> None:
        per = {"day": " daily", "month": " monthly"}.get(period, "")
        super().__init__(
            f"assistant {assistant!r} has spent ${spent_usd:.2f} of its{per} budget of "
            f"${budget_usd:.2f}",
            hint=hint,
        )
        self.assistant = assistant
        self.spent_usd = spent_usd
        self.budget_usd = budget_usd
        self.period = period


class LimiterUnavailableError(ModelportError):
    """The Redis server that holds a shared rate limit is down, too slow, or refused the
    check, and the limit says to refuse calls then (``on_redis_down = "refuse"``). Nothing was
    sent to the backend.

    :param backend: the backend whose limit it is.
    :param url: the Redis URL, its credentials masked.
    :param reason: what went wrong (the Redis client's error, masked).
    """

    def __init__(self, backend: str, url: str, reason: str) -> None:
        super().__init__(
            f"{backend}: the shared rate limit's Redis at {url} cannot be used: {reason}",
            hint=f"check that Redis is running and reachable at that URL, or set "
            f'[limits.{backend}] on_redis_down = "local" to fall back to a per-process '
            "limit while it is down",
        )
        self.backend = backend
        self.url = url
        self.reason = reason


class ImageError(ModelportError):
    """An image cannot be used.

    :param source: where the image came from (a path, a URL, ``"<bytes>"``).
    """

    def __init__(self, message: str, *, source: str, hint: str | None = None) -> None:
        super().__init__(f"{source}: {message}", hint=hint)
        self.source = source


class TrainingDataError(ModelportError):
    """Training data is invalid.

    :param problems: each problem as ``"where: what"`` (file and line, or dialogue and
        message); ``str(exc)`` shows the first and says how many more there are.
    """

    def __init__(self, problems: Sequence[str], *, hint: str | None = None) -> None:
        problems = tuple(problems) or ("no problems given",)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"invalid training data: {problems[0]}{more}", hint=hint)
        self.problems = problems


class WaitTimeoutError(ModelportError):
    """A training job did not finish within the time allowed, or its backend stayed
    unreachable for too long while waiting; the job goes on running.

    :param reason: why waiting stopped early (the last error), when it was not the time limit.
    """

    def __init__(
        self, job_id: str, status: str, waited_s: float, *, reason: str | None = None
    ) -> None:
        message = f"job {job_id} is still {status} after {waited_s:.0f}s"
        if reason:
            message = f"gave up waiting for job {job_id} after {waited_s:.0f}s: {reason}"
        super().__init__(
            message, hint=f"it keeps running; resume with: modelport jobs wait {job_id}"
        )
        self.job_id = job_id
        self.status = status
