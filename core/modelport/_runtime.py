"""What the sync and async hubs share: backend resolution and the guarded call.

Every backend call goes through :meth:`Runtime.guarded`, a flow (see :mod:`modelport.flows`)
that both hubs drive: the rate limiter, the retry policy, structured logs bound to the call,
and the observer hooks.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import inspect
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar, cast

import attrs

from ._circuit import CircuitBreaker
from ._usage import RECORDED, UsageLedger
from .backends import (
    AsyncChatBackend,
    AsyncTrainer,
    AsyncVisionBackend,
    BackendContext,
    ChatBackend,
    ChatCaller,
    SentimentAnalyzer,
    Store,
    Trainer,
    VisionBackend,
)
from .config import Settings
from .errors import (
    BackendError,
    BackendNotFoundError,
    ConfigError,
    ModelportError,
    PluginBlockedError,
    PluginError,
    StorageError,
)
from .flows import Blocking, Flow, Sleep, Step, drive
from .logs import get_logger, redact, redact_exception
from .plugins import Plugins
from .registry import BackendSpec
from .resilience import Limiter, RetryPolicy, make_limiter
from .types import (
    CallFailure,
    Capability,
    ChatRequest,
    Dialogue,
    DialogueInfo,
    Exchange,
    JobEvent,
    JobRecord,
    ModelInfo,
    Page,
    Reply,
    Sentiment,
    TrainingJob,
    Usage,
    UsageRecord,
)

T = TypeVar("T")
B = TypeVar("B")
A = TypeVar("A")


PROTOCOLS: dict[Capability, type[Any]] = {
    Capability.CHAT: ChatBackend,
    Capability.VISION: VisionBackend,
    Capability.SENTIMENT: SentimentAnalyzer,
    Capability.STORAGE: Store,
    Capability.TRAINING: Trainer,
}
ASYNC_PROTOCOLS: dict[Capability, type[Any]] = {
    Capability.CHAT: AsyncChatBackend,
    Capability.VISION: AsyncVisionBackend,
    Capability.TRAINING: AsyncTrainer,
}


def _parameters(method: Any) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):  # unreadable: given the benefit of the doubt
        return None


def _takes_more(method: Any) -> bool:
    """Whether ``method`` takes any number of positional arguments (``*args``)."""
    parameters = _parameters(method)
    return parameters is None or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def _takes_keyword(method: Any, name: str) -> bool:
    """Whether ``method`` can be called with the keyword argument ``name``."""
    parameters = _parameters(method)
    return parameters is None or any(
        p.kind is p.VAR_KEYWORD
        or (p.name == name and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        for p in parameters
    )


def _outdated(capability: Capability, backend: object) -> list[str]:
    """What a backend's methods lack that the current protocol asks of them (signatures the
    ``isinstance`` check of a runtime protocol cannot see)."""
    if capability is not Capability.STORAGE:
        return []
    store: Any = backend
    problems = []
    if not _takes_more(store.append):
        problems.append("append(dialogue_id, *messages) must take a whole turn")
    if not _takes_keyword(store.load_dialogue, "last"):
        problems.append("load_dialogue(dialogue_id, *, last=None) must take last=")
    return problems


#: What each guarded backend call must return, by capability and operation: a type (or
#: types), or ``(Sequence, T)`` for a sequence of ``T``. Checked after every call (a few
#: ``isinstance`` checks); an operation not listed (one that returns nothing) is not checked.
RETURNS: dict[tuple[Capability, str], type[Any] | tuple[type[Any], type[Any]]] = {
    (Capability.CHAT, "complete"): Reply,
    (Capability.CHAT, "models"): (Sequence, ModelInfo),
    (Capability.VISION, "describe"): Reply,
    (Capability.SENTIMENT, "analyze"): Sentiment,
    (Capability.SENTIMENT, "analyze_many"): (Sequence, Sentiment),
    (Capability.STORAGE, "create_dialogue"): DialogueInfo,
    (Capability.STORAGE, "load_dialogue"): Dialogue,
    (Capability.STORAGE, "list_dialogues"): Page,
    (Capability.STORAGE, "load_job"): JobRecord,
    (Capability.STORAGE, "list_jobs"): (Sequence, JobRecord),
    (Capability.STORAGE, "list_usage"): (Sequence, UsageRecord),
    (Capability.TRAINING, "upload"): str,
    (Capability.TRAINING, "start"): TrainingJob,
    (Capability.TRAINING, "get_job"): TrainingJob,
    (Capability.TRAINING, "cancel_job"): TrainingJob,
    (Capability.TRAINING, "list_jobs"): (Sequence, TrainingJob),
    (Capability.TRAINING, "job_events"): (Sequence, JobEvent),
}


def _a(kind: type[Any]) -> str:
    name = kind.__name__
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


def got(value: object) -> str:
    """What a backend returned, for an error: its type only (never its content)."""
    return "None" if value is None else _a(type(value))


def misfit(result: object, expected: type[Any] | tuple[type[Any], type[Any]]) -> str | None:
    """Why ``result`` is not what ``expected`` (an entry of :data:`RETURNS`) asks, or
    ``None`` when it is."""
    if not isinstance(expected, tuple):
        return None if isinstance(result, expected) else f"{got(result)}, not {_a(expected)}"
    _, item = expected
    if not isinstance(result, Sequence) or isinstance(result, str | bytes):
        return f"{got(result)}, not a sequence of {item.__name__}"
    for index, value in enumerate(result):
        if not isinstance(value, item):
            return f"a sequence holding {got(value)} at [{index}], not only {item.__name__}"
    return None


def _bug_hint(plugin: str) -> str:
    return (
        f"a bug in the plugin {plugin!r}, which its conformance suite catches: report it to "
        "its authors"
    )


def _plugin_docs_hint(hint: str | None, spec: BackendSpec, docs: str) -> str:
    """A config error's hint for a plugin's own section: its documentation, not modelport's
    configuration reference."""
    where = f"the {spec.name!r} backend's documentation ({docs}) for the keys it takes"
    if hint is None or "configuration reference" in hint:
        return f"see {where}"
    return f"{hint}; see {where}"


def _install_hint(module: str, distribution: str | None) -> str:
    """``pip install ...`` for a missing module: the requirement (with its extra) of the
    plugin's distribution that provides it when one does, else the module's own name."""
    top = module.partition(".")[0]
    wanted = re.sub(r"[-_.]+", "-", top).lower()
    if distribution is not None:
        try:
            requires = importlib.metadata.requires(distribution) or []
        except importlib.metadata.PackageNotFoundError:
            requires = []
        for requirement in requires:
            found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
            if found is None or re.sub(r"[-_.]+", "-", found[1]).lower() != wanted:
                continue
            extra = re.search(r"extra\s*==\s*[\"']([^\"']+)[\"']", requirement)
            if extra:
                return f"pip install '{distribution}[{extra[1]}]'"
            return f"pip install {found[1]}"
    return f"pip install {top}"


@attrs.frozen
class Call:
    """One backend call, as logs and observers see it."""

    capability: Capability
    backend: str
    operation: str
    model: str | None = None
    dialogue_id: str | None = None
    tokens: int = 0
    idempotent: bool = True
    assistant: str | None = None


@attrs.frozen
class Bound(Generic[B, A]):
    """A resolved backend, typed by its capability's protocols.

    :ivar name: the backend's name.
    :ivar sync: the backend, as its capability's protocol.
    :ivar async_: the same object as the capability's ``Async*`` protocol when it implements
        it, else ``None`` (the async hub then runs the sync methods in a worker thread).
    """

    name: str
    sync: B
    async_: A | None = None


@attrs.define
class Runtime:
    settings: Settings
    plugins: Plugins
    sleep: Callable[[float], None] = time.sleep
    asleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    env: Mapping[str, str] = attrs.field(factory=lambda: os.environ, repr=False)  # secrets
    clock: Callable[[], float] = time.monotonic  # for the circuit breakers
    policy: RetryPolicy = attrs.field(init=False)
    _backends: dict[str, object] = attrs.field(init=False, factory=dict)
    _resolved: dict[tuple[Capability, str | None], tuple[str, Any]] = attrs.field(
        init=False, factory=dict
    )
    _async: dict[tuple[str, Capability], bool] = attrs.field(init=False, factory=dict)
    _limiters: dict[str, Limiter | None] = attrs.field(init=False, factory=dict)
    _circuits: dict[tuple[str, str | None], CircuitBreaker] = attrs.field(init=False, factory=dict)
    # Reentrant: a backend's factory may resolve another backend (``context.chat()``).
    _lock: threading.RLock = attrs.field(init=False, factory=threading.RLock)
    usage: UsageLedger = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.policy = RetryPolicy.from_settings(self.settings.retry)
        self.usage = UsageLedger(self.settings)
        self.plugins.configure(self.settings)
        for name, error in self.plugins.failures.items():
            get_logger().warning(
                "plugin_unavailable", plugin=name, error=str(error.__cause__ or error)
            )

    # --- backends ----------------------------------------------------------------------------

    def spec(self, capability: Capability, name: str | None = None) -> BackendSpec:
        """The backend that serves ``capability`` (``name``, else config, else the default)."""
        name = name or self.settings.capabilities.get(capability)
        try:
            return self.plugins.registry.select(capability, name)
        except BackendNotFoundError as exc:
            if name is not None and name in self.plugins.blocked:
                raise PluginBlockedError(
                    f"backend {name!r} is not available because the plugin is blocked",
                    plugin=name,
                    hint="remove it from MODELPORT_DISABLE_PLUGINS / [plugins] disable",
                ) from None
            if self.plugins.failures:
                failed = "; ".join(str(e) for e in self.plugins.failures.values())
                exc.message = f"{exc.message} (plugins that failed to load: {failed})"
            raise

    def available(self, capability: Capability) -> bool:
        """Whether some backend serves ``capability`` (configured or by default)."""
        if self.settings.capabilities.get(capability) is not None:
            return True
        return bool(self.plugins.registry.offering(capability))

    def backend(self, capability: Capability, name: str | None = None) -> tuple[str, Any]:
        """The backend object for ``capability``, built once per hub; with its name.

        Settings and plugins do not change during a hub's life, so the resolution (and the
        protocol check, which is slow) is done once per capability and name.
        """
        try:
            return self._resolved[capability, name]
        except KeyError:
            resolved = self._resolve(capability, name)
            self._resolved[capability, name] = resolved
            return resolved

    def _resolve(self, capability: Capability, name: str | None) -> tuple[str, Any]:
        spec = self.spec(capability, name)
        with self._lock:
            backend = self._backends.get(spec.name)
            if backend is None:
                backend = self._build(spec)
                self._backends[spec.name] = backend
        if not isinstance(backend, PROTOCOLS[capability]):
            missing = [
                m for m in _protocol_methods(PROTOCOLS[capability]) if not hasattr(backend, m)
            ]
            raise PluginError(
                f"backend {spec.name!r} claims {capability.value} but lacks {', '.join(missing)}",
                plugin=spec.plugin,
            )
        if outdated := _outdated(capability, backend):
            raise PluginError(
                f"backend {spec.name!r} implements an older {capability.value} protocol: "
                f"{'; '.join(outdated)}",
                plugin=spec.plugin,
                hint="update the plugin (see modelport.backends and its conformance suite)",
            )
        return spec.name, backend

    def _bound(self, capability: Capability, name: str | None) -> Bound[Any, Any]:
        resolved, backend = self.backend(capability, name)
        native = self.has_async(resolved, capability, backend)
        return Bound(resolved, backend, backend if native else None)

    def chat(self, name: str | None = None) -> Bound[ChatBackend, AsyncChatBackend]:
        """The chat backend ``name`` (else the configured one), typed."""
        return self._bound(Capability.CHAT, name)

    def vision(self, name: str | None = None) -> Bound[VisionBackend, AsyncVisionBackend]:
        """The vision backend ``name`` (else the configured one), typed."""
        return self._bound(Capability.VISION, name)

    def trainer(self, name: str | None = None) -> Bound[Trainer, AsyncTrainer]:
        """The training backend ``name`` (else the configured one), typed."""
        return self._bound(Capability.TRAINING, name)

    def sentiment(self, name: str | None = None) -> tuple[str, SentimentAnalyzer]:
        """The sentiment backend ``name`` (else the configured one), with its name."""
        return cast("tuple[str, SentimentAnalyzer]", self.backend(Capability.SENTIMENT, name))

    def store(self, name: str | None = None) -> tuple[str, Store]:
        """The store ``name`` (else the configured one), with its name."""
        return cast("tuple[str, Store]", self.backend(Capability.STORAGE, name))

    def has_async(self, name: str, capability: Capability, backend: object) -> bool:
        key = (name, capability)
        if key not in self._async:
            proto = ASYNC_PROTOCOLS.get(capability)
            self._async[key] = proto is not None and isinstance(backend, proto)
        return self._async[key]

    def _build(self, spec: BackendSpec) -> object:
        if spec.settings is not None:
            try:
                settings = self.settings.backend_settings(spec.name, spec.settings)
            except ConfigError as exc:
                if docs := self.plugins.docs_of(spec.plugin, spec.docs):
                    exc.hint = _plugin_docs_hint(exc.hint, spec, docs)
                raise
        elif section := self.settings.backends.get(spec.name):
            raise ConfigError(
                f"backend {spec.name!r} takes no settings, found {', '.join(map(repr, section))}",
                path=self.settings.path,
                key=f"backends.{spec.name}",
                hint="remove the section",
            )
        else:
            settings = None
        context = BackendContext(
            name=spec.name, settings=settings, env=self.env, chat_caller=self._chat_caller
        )
        try:
            return spec.factory(context)
        except ModelportError:
            raise
        except Exception as exc:
            if isinstance(exc, ModuleNotFoundError) and exc.name:  # an optional dependency
                distribution = self.plugins.distributions.get(spec.plugin, (None, None))[0]
                raise PluginError(
                    f"backend {spec.name!r} needs the module {exc.name!r}, which is not installed",
                    plugin=spec.plugin,
                    hint=_install_hint(exc.name, distribution),
                ) from exc
            raise PluginError(
                f"backend {spec.name!r} could not be built: its factory raised {_described(exc)}",
                plugin=spec.plugin,
                hint="reinstall the plugin (an import failed)"
                if isinstance(exc, ImportError)
                else _bug_hint(spec.plugin),
            ) from exc

    def backends(self) -> list[object]:
        with self._lock:
            return list(self._backends.values())

    def closables(self) -> list[object]:
        """Every backend opened and every limiter built (a shared limiter holds connections):
        what a hub closes."""
        with self._lock:
            limiters = [limiter for limiter in self._limiters.values() if limiter is not None]
            return [*self._backends.values(), *limiters]

    def built(self, name: str) -> object | None:
        """The backend named ``name`` if it was built already (no resolution, no I/O)."""
        return self._backends.get(name)

    def limiter(self, name: str) -> Limiter | None:
        try:
            return self._limiters[name]
        except KeyError:
            limits = self.settings.limits.get(name)
            limiter = make_limiter(name, limits) if limits else None
            return self._limiters.setdefault(name, limiter)

    def circuit(self, name: str, model: str | None = None) -> CircuitBreaker:
        """The circuit breaker of backend ``name`` asked for ``model`` (``[circuit]``), one
        per runtime: a fallback to another model of the same backend has its own, so the one
        model's answers do not close the other's circuit."""
        with self._lock:
            breaker = self._circuits.get((name, model))
            if breaker is None:
                settings = self.settings.circuit
                breaker = CircuitBreaker(
                    name, failures=settings.failures, reset_s=settings.reset_s, clock=self.clock
                )
                self._circuits[name, model] = breaker
            return breaker

    # --- guarded calls -----------------------------------------------------------------------

    def _failed(
        self, call: Call, exc: Exception, attempt: int, will_retry: bool | None = None
    ) -> None:
        if self.plugins.observes_errors:
            if will_retry is None:
                will_retry = self.policy.will_retry(exc, attempt, idempotent=call.idempotent)
            failure = CallFailure(
                capability=call.capability,
                backend=call.backend,
                operation=call.operation,
                error=exc,
                attempt=attempt,
                will_retry=will_retry,
                model=call.model,
                dialogue_id=call.dialogue_id,
            )
            self.plugins.on_error(failure)

    def succeeded(
        self, call: Call, request: Any, result: Any, started: float, attempts: int
    ) -> None:
        limiter = self.limiter(call.backend)
        usage: Usage | None = getattr(result, "usage", None)
        if limiter is not None and isinstance(usage, Usage):
            limiter.settle(call.tokens, usage.total_tokens)
        if call.capability in RECORDED and isinstance(usage, Usage):
            model = getattr(result, "model", None) or call.model
            self.usage.observe(self, call, result, usage, model)
        if self.plugins.observes_exchanges:
            exchange = Exchange(
                capability=call.capability,
                backend=call.backend,
                operation=call.operation,
                request=request,
                result=result,
                duration_s=time.perf_counter() - started,
                attempts=attempts,
                model=getattr(result, "model", None) or call.model,
                usage=usage if isinstance(usage, Usage) else None,
                dialogue_id=call.dialogue_id,
                assistant=call.assistant,
            )
            self.plugins.on_exchange(exchange)

    def _log_retry(
        self, call: Call, exc: BaseException | None, attempt: int, sleep_s: float
    ) -> None:
        get_logger().warning(
            "retrying",
            backend=call.backend,
            operation=call.operation,
            model=call.model,
            dialogue=call.dialogue_id,
            attempt=attempt,
            sleep_s=round(sleep_s, 3),
            error=type(exc).__name__,
            status=getattr(exc, "status", None),
        )

    def _plugin_of(self, backend: str) -> str:
        spec = self.plugins.registry.get(backend)
        return spec.plugin if spec is not None else backend

    def seam_error(self, call: Call, exc: Exception) -> Exception:
        """What a backend raised, as the caller sees it: a modelport error unchanged; an
        ``OSError`` from a store a :class:`StorageError` naming the store and the operation;
        anything else a :class:`PluginError` naming the backend, the operation and the
        exception (chained to it with ``__cause__``; never retried)."""
        if isinstance(exc, ModelportError):
            return exc
        error: ModelportError
        if call.capability is Capability.STORAGE and isinstance(exc, OSError):
            error = StorageError(
                f"store {call.backend!r} could not {call.operation.replace('_', ' ')}: "
                f"{exc.strerror or _described(exc)}",
                path=str(exc.filename) if exc.filename is not None else None,
                hint="check that the store's location exists, is writable and has room",
            )
        else:
            plugin = self._plugin_of(call.backend)
            error = PluginError(
                f"{call.operation}() of backend {call.backend!r} raised {_described(exc)}",
                plugin=plugin,
                hint=_bug_hint(plugin),
            )
        error.__cause__ = exc
        return error

    def wrong_result(self, call: Call, problem: str) -> PluginError:
        """The error for a backend call that returned what its protocol does not allow
        (``problem`` says what it did: ``"returned None, not a Dialogue"``)."""
        plugin = self._plugin_of(call.backend)
        return PluginError(
            f"{call.operation}() of backend {call.backend!r} {problem}",
            plugin=plugin,
            hint=_bug_hint(plugin),
        )

    def guarded(
        self, call: Call, step: Step[T], *, request: Any = None, observe: bool = True
    ) -> Flow[tuple[T, int]]:
        """Do ``step`` under the limiter and the retry policy; return its result and the
        number of attempts it took (the one guarded call, driven by both hubs).

        The seam is guarded here: what the backend returns is checked against
        :data:`RETURNS`, and what it raises that is not a modelport error becomes one
        (:meth:`seam_error`)."""
        limiter = self.limiter(call.backend)
        expected = RETURNS.get((call.capability, call.operation))
        attempt = 0
        started = time.perf_counter()
        while True:
            attempt += 1
            try:
                if limiter is not None:
                    yield from limiter.flow(call.tokens)
                try:
                    result: T = yield step
                    if expected is not None and (problem := misfit(result, expected)):
                        raise self.wrong_result(call, f"returned {problem}")
                except Exception as exc:
                    error = self.seam_error(call, exc)
                    self._failed(call, error, attempt)
                    if error is exc:
                        raise
                    raise error from exc
            except Exception as exc:
                if not self.policy.will_retry(exc, attempt, idempotent=call.idempotent):
                    raise
                wait = self.policy.wait_s(exc, attempt)
                self._log_retry(call, exc, attempt, wait)
                yield Sleep(wait)
                continue
            if observe:
                self.succeeded(call, request, result, started, attempt)
            return result, attempt

    def call(
        self, call: Call, fn: Callable[[], T], *, request: Any = None, observe: bool = True
    ) -> tuple[T, int]:
        """Run blocking ``fn`` under the limiter and the retry policy, in this thread (see
        :meth:`guarded`); return its result and the number of attempts it took."""
        guarded = self.guarded(call, Blocking(fn), request=request, observe=observe)
        return drive(guarded, sleep=self.sleep)

    def _chat_caller(self, name: str | None) -> ChatCaller:
        return _GuardedChat(self, name)

    def failed_after_start(self, call: Call, exc: Exception, attempt: int) -> None:
        """Report a failure that cannot be retried (a stream broken after its first delta)."""
        self._failed(call, exc, attempt, will_retry=False)


def _described(exc: BaseException) -> str:
    """``exc`` in one line, with its secrets masked (and masked in place too, since it is
    chained behind the error that quotes it)."""
    redact_exception(exc)
    text = redact(" ".join(str(exc).split()))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _protocol_methods(protocol: type[Any]) -> list[str]:
    return sorted(
        name
        for name in vars(protocol)
        if not name.startswith("_") and callable(getattr(protocol, name))
    )


@attrs.frozen
class _GuardedChat:
    """A chat backend for another backend (:meth:`BackendContext.chat`), called through the
    runtime's guarded call."""

    rt: Runtime
    wanted: str | None

    @property
    def name(self) -> str:
        return self.rt.chat(self.wanted).name

    def complete(self, request: ChatRequest) -> Reply:
        chat = self.rt.chat(self.wanted)
        call = Call(
            Capability.CHAT,
            chat.name,
            "complete",
            model=request.model,
            tokens=request.estimated_tokens(),
        )
        ask = functools.partial(chat.sync.complete, request)
        try:
            reply = self.rt.call(call, ask, request=request)[0]
        except BackendError as exc:
            # The retry policy has had its turn here: the calling backend's own guarded call
            # must not retry this again (that would multiply the attempts).
            exc.retryable = False
            raise
        self.rt.usage.settle(self.rt, reply)  # its cost is recorded like the hub's own calls
        return reply
