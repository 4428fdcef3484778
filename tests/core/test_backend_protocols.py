"""The optional backend protocols, the typed context, per-plugin registrars, typed observers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

import modelport
from modelport import (
    BackendContext,
    BackendRegistry,
    CallFailure,
    Exchange,
    hookimpl,
    load_settings,
    make_plugins,
)
from modelport import backends as protocols
from modelport.errors import PluginError, RateLimitedError
from modelport.images import DEFAULT_MEDIA_TYPES
from modelport.testing import TINY_PNG, FakeBackends, MemoryStore, make_test_hub
from modelport.training import MIN_EXAMPLES
from modelport.types import (
    ChatRequest,
    Dialogue,
    JobEvent,
    JobSpec,
    JobStatus,
    ModelInfo,
    Reply,
    StreamDelta,
    TrainingDataset,
    TrainingJob,
    VisionRequest,
)

# --- backends with nothing optional, and with everything ---------------------------------------


class Bare:
    """Chat, vision and training, exactly the required protocols and nothing more."""

    def __init__(self) -> None:
        self.described: list[VisionRequest] = []

    def complete(self, request: ChatRequest) -> Reply:
        return Reply(text="ok", model="m")

    def stream(self, request: ChatRequest) -> Iterator[StreamDelta]:
        yield StreamDelta(text="ok", finish_reason="stop")

    def models(self) -> Sequence[ModelInfo]:
        return []

    def describe(self, request: VisionRequest) -> Reply:
        self.described.append(request)
        return Reply(text="a picture", model="m")

    def upload(self, dataset: TrainingDataset) -> str:
        return "file-1"

    def start(self, spec: JobSpec) -> TrainingJob:
        return TrainingJob("job-1", "bare", spec.base_model, JobStatus.QUEUED)

    def get_job(self, job_id: str) -> TrainingJob:
        return TrainingJob(job_id, "bare", "m", JobStatus.QUEUED)

    def list_jobs(self, *, limit: int = 20) -> Sequence[TrainingJob]:
        return []

    def cancel_job(self, job_id: str) -> TrainingJob:
        return TrainingJob(job_id, "bare", "m", JobStatus.CANCELLED)

    def job_events(self, job_id: str) -> Sequence[JobEvent]:
        return []


class Rich(Bare):
    """Every optional protocol, attributes as plain class attributes or properties."""

    media_types = frozenset({"image/jpeg"})
    min_examples = 2
    example_token_limit = 3

    def __init__(self) -> None:
        super().__init__()
        self.closed = 0
        self.deleted: list[str] = []

    @property
    def accepts_urls(self) -> bool:  # a property satisfies the protocol as well
        return False

    @property
    def configured_models(self) -> Mapping[str, str]:
        return {"m": "backends.rich.model"}

    def training_price(self, base_model: str) -> float | None:
        return 4.0

    def chat_price(self, model: str) -> tuple[float, float] | None:
        return (1.0, 2.0) if model == "m" else None

    def training_warnings(self, base_model: str | None = None) -> list[str]:
        return [f"{base_model} retires soon"]

    def delete_file(self, file_id: str) -> None:
        self.deleted.append(file_id)

    async def adelete_file(self, file_id: str) -> None:
        self.deleted.append(file_id)

    def upload(  # type: ignore[override]
        self, dataset: TrainingDataset, *, on_progress: Callable[[int, int], None] | None = None
    ) -> str:
        return "file-1"

    async def aupload(
        self, dataset: TrainingDataset, *, on_progress: Callable[[int, int], None] | None = None
    ) -> str:
        return "file-1"

    def import_dialogue(self, dialogue: Dialogue) -> None: ...

    def close(self) -> None:
        self.closed += 1

    async def aclose(self) -> None: ...


OPTIONAL = [
    protocols.HasMediaTypes,
    protocols.HasAcceptsURLs,
    protocols.HasMinExamples,
    protocols.HasExampleTokenLimit,
    protocols.HasTrainingPrice,
    protocols.HasChatPrice,
    protocols.HasConfiguredModels,
    protocols.HasTrainingWarnings,
    protocols.DeletesFiles,
    protocols.AsyncDeletesFiles,
    protocols.AsyncReportsUploadProgress,
    protocols.ImportsDialogues,
    protocols.Closable,
    protocols.AsyncClosable,
]


@pytest.mark.parametrize("protocol", OPTIONAL, ids=lambda p: p.__name__)
def test_each_optional_protocol_is_checked_by_isinstance(protocol: type[Any]) -> None:
    assert isinstance(Rich(), protocol)
    assert not isinstance(Bare(), protocol)
    assert not isinstance(object(), protocol)


@pytest.mark.parametrize("protocol", [*OPTIONAL, protocols.ReportsUploadProgress])
def test_each_optional_protocol_is_public_and_documented(protocol: type[Any]) -> None:
    name = protocol.__name__
    assert name in protocols.__all__
    assert getattr(modelport, name) is protocol
    doc = protocol.__doc__ or ""
    assert doc.strip(), name
    assert "Absent" in doc or "twin" in doc, f"{name} does not say what happens without it"


def test_reports_upload_progress_cannot_be_told_by_isinstance() -> None:
    # every trainer has an upload: the core looks at its signature for on_progress instead
    assert isinstance(Bare(), protocols.ReportsUploadProgress)
    assert "signature" in (protocols.ReportsUploadProgress.__doc__ or "")


# --- the core's defaults for what a backend does not say ---------------------------------------


@attrs.define(eq=False)
class Offers:
    """A plugin offering one backend object under one name, for chat, vision and training."""

    backend: object
    name: str = "bare"

    @hookimpl
    def modelport_register_backends(self, registry: BackendRegistry) -> None:
        registry.add(
            self.name, lambda _context: self.backend, capabilities=["chat", "vision", "training"]
        )


def _hub(backend: object, name: str = "bare") -> modelport.Hub:
    overrides = {"capabilities": {"chat": name, "vision": name, "training": name}}
    return make_test_hub(overrides=overrides, plugins=[(name, Offers(backend, name))])


def test_a_trainer_that_says_nothing_gets_the_documented_defaults(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("prompt,response\nq,a b c d e\n")
    report = _hub(Bare()).check_dataset(path, base_model="m")
    assert report.problems == (f"{path}: 1 examples; at least {MIN_EXAMPLES} needed",)
    assert report.price_per_million is None  # no training_price: no cost estimate
    assert report.warnings == ()  # no example_token_limit, no training_warnings


def test_a_trainer_that_says_more_is_heard(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("prompt,response\nq,a b c d e\nq,a\n")
    report = _hub(Rich(), "rich").check_dataset(path, base_model="m")
    assert report.ok  # min_examples = 2
    assert report.price_per_million == 4.0
    assert "m retires soon" in report.warnings
    assert any("over the limit of 3" in w for w in report.warnings)  # example_token_limit


def test_a_vision_backend_that_says_nothing_gets_the_default_media_types() -> None:
    assert "image/png" in DEFAULT_MEDIA_TYPES
    bare, rich = Bare(), Rich()
    _hub(bare).describe_image(TINY_PNG, prompt="what?")
    _hub(rich, "rich").describe_image(TINY_PNG, prompt="what?")
    assert bare.described[0].images[0].media_type == "image/png"  # left as it is
    assert rich.described[0].images[0].media_type == "image/jpeg"  # re-encoded for it


def test_a_chat_price_is_asked_only_of_a_backend_that_has_one() -> None:
    from modelport._usage import UsageLedger

    ledger = UsageLedger(load_settings(env={}, search=False))
    assert ledger.price("bare", Bare(), "m") is None
    assert ledger.price("rich", Rich(), "m") == (1.0, 2.0)
    assert ledger.price("rich", Rich(), "other") is None


def test_close_is_called_only_on_backends_that_have_it() -> None:
    rich = Rich()
    _hub(Bare()).close()  # nothing to call, nothing fails
    hub = _hub(rich, "rich")
    hub.ask("hi")
    hub.close()
    assert rich.closed == 1


def test_a_copy_into_a_store_without_import_dialogue_needs_a_journal(tmp_path: Path) -> None:
    from modelport._storecopy import copy_store

    source, target = MemoryStore(), MemoryStore()
    assert not isinstance(target, protocols.ImportsDialogues)
    assert isinstance(target, protocols.UsageStore)
    with pytest.raises(ValueError, match="journal"):
        copy_store(source, target)
    source.append(source.create_dialogue().id, modelport.Message("user", "hi"))
    report = copy_store(source, target, journal=tmp_path / "journal")
    assert report.dialogues_created == 1


# --- BackendContext[S] --------------------------------------------------------------------------


@attrs.frozen
class EchoSettings:
    greeting: str = "hello"


def test_a_factory_gets_its_settings_typed() -> None:
    seen: list[BackendContext[EchoSettings]] = []

    def build(context: BackendContext[EchoSettings]) -> Bare:
        seen.append(context)
        return Bare()

    class Plugin:
        @hookimpl
        def modelport_register_backends(self, registry: BackendRegistry) -> None:
            registry.add("echo", build, capabilities=["chat"], settings=EchoSettings)

    settings = load_settings(
        overrides={"capabilities": {"chat": "echo"}, "backends": {"echo": {"greeting": "hi"}}},
        env={},
        search=False,
    )
    hub = modelport.Hub(settings, plugins=make_plugins(autoload=False, plugins=[Plugin()]))
    hub.backend("chat")
    assert seen[0].settings == EchoSettings("hi")
    assert repr(seen[0]) == "BackendContext(name='echo', settings=EchoSettings(greeting='hi'))"


# --- each plugin through its own registrar -------------------------------------------------------


def test_a_registrar_records_its_plugin_and_cannot_be_repointed() -> None:
    registry = BackendRegistry()
    alpha, beta = registry.for_plugin("alpha"), registry.for_plugin("beta")
    alpha.add("a", object, capabilities=["chat"])
    beta.add("b", object, capabilities=["chat"])
    assert [(s.name, s.plugin) for s in registry] == [("a", "alpha"), ("b", "beta")]
    assert not hasattr(registry, "current_plugin")
    with pytest.raises(attrs.exceptions.FrozenAttributeError):
        alpha.plugin = "beta"  # type: ignore[misc]
    with pytest.raises(PluginError) as info:
        beta.add("a", object, capabilities=["chat"])
    assert (info.value.plugin, "already offered by plugin 'alpha'" in str(info.value)) == (
        "beta", True
    )  # fmt: skip


class Two:
    """Registers two backends; the second's name is taken by ``first``."""

    @hookimpl
    def modelport_register_backends(self, registry: BackendRegistry) -> None:
        registry.add("two-a", object, capabilities=["chat"])
        registry.add("one-a", object, capabilities=["chat"])


class One:
    @hookimpl
    def modelport_register_backends(self, registry: BackendRegistry) -> None:
        registry.add("one-a", object, capabilities=["chat"])
        registry.add("one-b", object, capabilities=["vision"])


def test_a_registration_error_names_the_plugin_that_made_it() -> None:
    # hooks run last registered first: "one" registers, then "two" fails on its second add
    plugins = make_plugins(autoload=False, plugins=[("two", Two()), ("one", One())])
    assert set(plugins.failures) == {"two"}
    error = str(plugins.failures["two"])
    assert "plugin 'two': backend 'one-a' is already offered by plugin 'one'" in error
    assert {(s.name, s.plugin) for s in plugins.registry} == {("one-a", "one"), ("one-b", "one")}
    info = {i.name: i for i in plugins.infos()}
    assert (info["one"].status, info["one"].backends) == ("loaded", ("one-a", "one-b"))
    assert info["two"].status == "failed"


def test_a_registrar_kept_past_its_hook_still_names_its_plugin() -> None:
    kept: list[BackendRegistry] = []

    class Keeper:
        @hookimpl
        def modelport_register_backends(self, registry: BackendRegistry) -> None:
            kept.append(registry)

    plugins = make_plugins(autoload=False, plugins=[("keeper", Keeper()), ("one", One())])
    assert plugins.registry.get("one-a") is not None
    assert kept[0].plugin == "keeper"


def test_a_wrapper_around_registration_is_refused_and_offers_nothing() -> None:
    from collections.abc import Generator

    class Wrapping:
        @hookimpl(wrapper=True)
        def modelport_register_backends(
            self, registry: BackendRegistry
        ) -> Generator[None, None, None]:
            registry.add("sneaky", object, capabilities=["chat"])
            yield

    plugins = make_plugins(autoload=False, plugins=[("wrapping", Wrapping()), ("one", One())])
    assert "as a wrapper" in str(plugins.failures["wrapping"])
    assert plugins.registry.get("sneaky") is None
    assert plugins.registry.get("one-a") is not None


# --- typed observers ------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self.failures: list[CallFailure] = []

    @hookimpl
    def modelport_on_exchange(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)

    @hookimpl
    def modelport_on_error(self, failure: CallFailure) -> None:
        self.failures.append(failure)


def test_observers_receive_a_typed_exchange_and_call_failure() -> None:
    fakes, recorder = FakeBackends(), Recorder()
    fakes.chat.script(RateLimitedError("slow", backend="fake-chat", status=429), "ok")
    hub = make_test_hub(fakes, plugins=[recorder])
    assert hub.plugins.observes_exchanges
    assert hub.plugins.observes_errors
    hub.ask("hi")
    (failure,) = recorder.failures
    assert isinstance(failure, CallFailure)
    assert (failure.backend, failure.attempt, failure.will_retry) == ("fake-chat", 1, True)
    chat = [e for e in recorder.exchanges if e.operation == "complete"]
    assert len(chat) == 1
    assert isinstance(chat[0], Exchange)
    assert chat[0].attempts == 2


def test_without_observers_nothing_is_built_and_a_failing_observer_is_contained() -> None:
    plugins = make_plugins(autoload=False)
    assert not plugins.observes_exchanges
    assert not plugins.observes_errors

    class Broken:
        @hookimpl
        def modelport_on_error(self, failure: CallFailure) -> None:
            raise RuntimeError("observer bug")

    recorder = Recorder()
    plugins = make_plugins(autoload=False, plugins=[recorder, Broken()])
    failure = CallFailure(
        capability=modelport.Capability.CHAT,
        backend="x",
        operation="complete",
        error=RuntimeError("boom"),
        attempt=1,
        will_retry=False,
    )
    plugins.on_error(failure)  # Broken runs first (registered last) and raises: contained
    assert recorder.failures == [failure]
    assert plugins.observes_errors
    assert plugins.observes_exchanges


# --- implements: isinstance's answer, without its cost ------------------------------------------


def _optional_protocols() -> list[type]:
    import typing

    from modelport import backends

    return [
        value
        for name, value in vars(backends).items()
        if isinstance(value, type)
        and getattr(value, "_is_protocol", False)
        and getattr(value, "_is_runtime_protocol", False)
        and value is not typing.Protocol
        and name in backends.__all__
    ]


def test_implements_answers_what_isinstance_answers_for_every_protocol() -> None:
    from modelport.backends import implements

    class Empty:
        pass

    class NoneMethods:
        def __getattr__(self, name: str) -> None:
            return None  # every member present, every method None

    protocols = _optional_protocols()
    assert len(protocols) >= 15
    for protocol in protocols:
        members = [n for n in dir(protocol) if not n.startswith("_")]
        members += list(getattr(protocol, "__annotations__", {}))

        class Full:
            pass

        for name in members:
            setattr(Full, name, lambda self, *a, **k: None)
        for candidate in (Empty(), Full(), NoneMethods()):
            assert implements(candidate, protocol) == isinstance(candidate, protocol), (
                protocol.__name__,
                type(candidate).__name__,
            )
