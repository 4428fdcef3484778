"""The core guards the seam: whatever a backend raises or returns that breaks its protocol
becomes a PluginError (or a StorageError, for a store's OSError) naming the backend, the
operation and what it did, through both hubs and as one line in the CLI."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from modelport import BackendRegistry, hookimpl
from modelport.cli import CliState, cli
from modelport.errors import PluginError, ReplyNotStoredError, StorageError
from modelport.testing import FakeBackends, RecordingSleep
from modelport.types import (
    Message,
    Page,
    Reply,
    StreamDelta,
    TrainingDataset,
    TrainingExample,
)
from tests.support import make_hub


def _patch(fake: object, name: str, fn: Callable[..., Any]) -> None:
    """Replace a fake's method, and its async twin when it has one (so both hubs call it)."""
    setattr(fake, name, fn)
    if hasattr(fake, "a" + name):
        if name == "stream":

            async def astream(*args: Any) -> Any:
                for item in fn(*args):
                    yield item

            fake.astream = astream  # type: ignore[attr-defined]
        else:

            async def twin(*args: Any) -> Any:
                return fn(*args)

            setattr(fake, "a" + name, twin)


def _raise(exc: BaseException) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fail


def _return(value: Any) -> Callable[..., Any]:
    return lambda *args, **kwargs: value


class Unbuildable:
    """A plugin whose backend's factory raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    @hookimpl
    def modelport_register_backends(self, registry: BackendRegistry) -> None:
        def build(context: object) -> object:
            raise self.error

        registry.add("shaky", build, capabilities=["chat"])


def _shaky_hub(kind: str, error: Exception) -> Any:
    return make_hub(
        kind,
        FakeBackends(),
        overrides={"capabilities": {"chat": "shaky"}},
        plugins=[("shaky-plugin", Unbuildable(error))],
    )


# --- factories --------------------------------------------------------------------------------


def test_a_factory_missing_an_optional_module_says_which_and_how_to_install(
    hub_kind: str,
) -> None:
    error = ModuleNotFoundError("No module named 'lexicon_kit'", name="lexicon_kit")
    with pytest.raises(PluginError) as caught:
        _shaky_hub(hub_kind, error).ask("hi")
    message = str(caught.value)
    assert "plugin 'shaky-plugin'" in message
    assert "backend 'shaky' needs the module 'lexicon_kit'" in message
    assert "pip install lexicon_kit" in message
    assert caught.value.__cause__ is error


def test_a_factory_that_fails_names_the_backend_and_the_exception(hub_kind: str) -> None:
    with pytest.raises(PluginError) as caught:
        _shaky_hub(hub_kind, RuntimeError("no config dir")).ask("hi")
    assert "backend 'shaky' could not be built" in str(caught.value)
    assert "RuntimeError: no config dir" in str(caught.value)


def test_the_install_hint_names_the_plugins_extra() -> None:
    from modelport import _runtime

    requires = ['lexicon-kit>=3; extra == "lexicon"', "attrs>=24"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("importlib.metadata.requires", lambda name: requires)
        assert (
            _runtime._install_hint("lexicon_kit.core", "modelport-moods")
            == "pip install 'modelport-moods[lexicon]'"
        )
        assert _runtime._install_hint("attrs", "modelport-moods") == "pip install attrs"


# --- raw exceptions ---------------------------------------------------------------------------


def test_a_raw_exception_from_a_chat_backend_is_a_plugin_error_not_retried(
    hub_kind: str,
) -> None:
    fakes = FakeBackends()
    calls: list[object] = []

    def broken(request: object) -> Reply:
        calls.append(request)
        raise KeyError("choices")

    _patch(fakes.chat, "complete", broken)
    hub = make_hub(hub_kind, fakes, overrides={"retry": {"attempts": 3}})
    with pytest.raises(PluginError) as caught:
        hub.ask("hi")
    assert "complete() of backend 'fake-chat' raised KeyError: 'choices'" in str(caught.value)
    assert isinstance(caught.value.__cause__, KeyError)
    assert len(calls) == 1


def test_a_raw_exception_in_the_middle_of_a_stream_is_a_plugin_error(hub_kind: str) -> None:
    fakes = FakeBackends()

    def stream(request: object) -> Iterator[StreamDelta]:
        yield StreamDelta("Hel")
        raise ValueError("bad chunk")

    _patch(fakes.chat, "stream", stream)
    with pytest.raises(PluginError, match=r"stream\(\) of backend 'fake-chat' raised ValueError"):
        list(make_hub(hub_kind, fakes).stream("hi"))


def test_an_oserror_from_a_store_is_a_storage_error_naming_store_and_operation(
    hub_kind: str,
) -> None:
    fakes = FakeBackends()
    hub = make_hub(hub_kind, fakes)
    dialogue = hub.ask("hi").dialogue_id
    full = OSError(errno.ENOSPC, "No space left on device", "/srv/store/d.jsonl")
    fakes.store.append = _raise(full)  # type: ignore[method-assign]
    with pytest.raises(ReplyNotStoredError) as caught:
        hub.ask("again", dialogue=dialogue)
    assert caught.value.reply.text == "echo: again"  # type: ignore[attr-defined]  # paid: kept
    assert "store 'memory' could not append: No space left on device" in str(caught.value)
    assert caught.value.path == "/srv/store/d.jsonl"
    fakes.store.load_dialogue = _raise(PermissionError(errno.EACCES, "Permission denied"))  # type: ignore[method-assign]
    with pytest.raises(StorageError, match="store 'memory' could not load dialogue"):
        hub.dialogue(dialogue)


# --- wrong return types -----------------------------------------------------------------------


def test_complete_returning_a_str_is_a_plugin_error(hub_kind: str) -> None:
    fakes = FakeBackends()
    _patch(fakes.chat, "complete", _return("Hello!"))
    with pytest.raises(PluginError) as caught:
        make_hub(hub_kind, fakes).ask("hi")
    assert "complete() of backend 'fake-chat' returned a str, not a Reply" in str(caught.value)


def test_a_stream_yielding_something_else_is_a_plugin_error(hub_kind: str) -> None:
    fakes = FakeBackends()
    _patch(fakes.chat, "stream", _return(iter(["Hel", "lo"])))
    with pytest.raises(PluginError, match=r"stream\(\) of backend 'fake-chat' yielded a str"):
        list(make_hub(hub_kind, fakes).stream("hi"))


def test_analyze_returning_a_dict_is_a_plugin_error(hub_kind: str) -> None:
    fakes = FakeBackends()
    fakes.sentiment.analyze = _return({"label": "positive"})  # type: ignore[method-assign]
    with pytest.raises(PluginError, match=r"analyze\(\) of backend 'fake-sentiment' returned"):
        make_hub(hub_kind, fakes).analyze("Lovely.")


def test_store_results_of_the_wrong_type_are_plugin_errors(hub_kind: str) -> None:
    fakes = FakeBackends()
    hub = make_hub(hub_kind, fakes)
    fakes.store.load_dialogue = _return(None)  # type: ignore[method-assign]
    with pytest.raises(PluginError, match="returned None, not a Dialogue"):
        hub.dialogue("d-1")
    fakes.store.list_dialogues = _return([])  # type: ignore[method-assign]
    with pytest.raises(PluginError, match=r"list_dialogues\(\) of backend 'memory' returned a"):
        hub.dialogues()
    fakes.store.list_dialogues = _return(Page(items=(), total=0))  # type: ignore[method-assign]
    assert hub.dialogues().total == 0


def test_a_trainer_whose_start_returns_no_training_job_is_a_plugin_error(
    hub_kind: str,
) -> None:
    fakes = FakeBackends()
    data = TrainingDataset(
        [TrainingExample([Message("user", f"q{n}"), Message("assistant", "a")]) for n in range(10)]
    )
    fakes.trainer.start = _return({"id": "ftjob-1"})  # type: ignore[method-assign]
    hub = make_hub(hub_kind, fakes, sleep=RecordingSleep())
    with pytest.raises(PluginError, match=r"start\(\) of backend 'fake-training' returned a dict"):
        hub.train(data, base_model="m")


# --- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "breakage", "expected"),
    [
        (["ask", "hi"], ("chat", "complete", _return("Hello!")), "returned a str, not a Reply"),
        (["ask", "hi"], ("chat", "complete", _raise(KeyError("x"))), "raised KeyError: 'x'"),
        (["ask", "--stream", "hi"], ("chat", "stream", _return(iter([1]))), "yielded an int"),
        (["sentiment", "ok"], ("sentiment", "analyze", _return({})), "returned a dict"),
        (
            ["dialogues", "show", "d-1"],
            ("store", "load_dialogue", _raise(OSError(errno.EIO, "I/O error"))),
            "store 'memory' could not load dialogue: I/O error",
        ),
    ],
)
def test_the_cli_shows_a_broken_backend_as_one_line(
    args: list[str], breakage: tuple[str, str, Callable[..., Any]], expected: str
) -> None:
    fakes = FakeBackends()
    attribute, method, fn = breakage
    _patch(getattr(fakes, attribute), method, fn)
    hub = make_hub("sync", fakes)
    result = CliRunner().invoke(cli, args, obj=CliState(make_hub=lambda _state: hub))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: plugin 'fakes': ") or line.startswith("error: "), line
    assert expected in line, line


def test_the_cli_shows_a_factory_failure_as_one_line() -> None:
    error = ModuleNotFoundError("No module named 'lexicon_kit'", name="lexicon_kit")
    hub = _shaky_hub("sync", error)
    result = CliRunner().invoke(cli, ["ask", "hi"], obj=CliState(make_hub=lambda _state: hub))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert "needs the module 'lexicon_kit'" in line
    assert "pip install lexicon_kit" in line


# --- found in review -----------------------------------------------------------------------------


def test_a_secret_in_a_raw_exception_is_masked_in_the_plugin_error(hub_kind: str) -> None:
    from modelport.logs import register_secret

    key = "sk-seam-" + "Zq9" * 10
    register_secret(key)
    fakes = FakeBackends()
    _patch(fakes.chat, "complete", _raise(RuntimeError(f"401 for https://x.test/?api_key={key}")))
    hub = make_hub(hub_kind, fakes, sleep=RecordingSleep())
    with pytest.raises(PluginError) as caught:
        hub.ask("hi")
    assert key not in str(caught.value)
    assert key not in str(caught.value.__cause__)
    assert "RuntimeError" in str(caught.value)


class ChatAtBuild:
    """A sentiment backend whose factory asks for the chat backend's name while it is built
    (the runtime must not deadlock resolving one backend inside another's build)."""

    @hookimpl
    def modelport_register_backends(self, registry: BackendRegistry) -> None:
        def build(context: Any) -> object:
            label = context.chat().name

            class Labelled:
                def analyze(self, text: str) -> Any:
                    from modelport import Sentiment

                    return Sentiment("neutral", 0.0, analyzer=label)

            return Labelled()

        registry.add("labelled", build, capabilities=["sentiment"])


def test_a_factory_may_resolve_the_chat_backend_while_it_is_built(hub_kind: str) -> None:
    import threading

    hub = make_hub(
        hub_kind,
        FakeBackends(),
        overrides={"capabilities": {"sentiment": "labelled"}},
        plugins=[("labelled", ChatAtBuild())],
    )
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(hub.analyze("hi")), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "resolving the chat backend inside a build deadlocked"
    assert result[0].analyzer == "fake-chat"


def test_a_chat_call_made_for_another_backend_is_retried_once_not_twice() -> None:
    """chat-sentiment over a chat backend that stays down: the chat call's own retries are
    the only ones (the sentiment call does not retry them all again)."""
    import modelport_chatsentiment
    from modelport.errors import TransientError

    fakes = FakeBackends()
    calls: list[int] = []

    def down(*args: Any) -> Any:
        calls.append(1)
        raise TransientError("503", backend="fake-chat")

    _patch(fakes.chat, "complete", down)
    hub = make_hub(
        "sync",
        fakes,
        overrides={"capabilities": {"sentiment": "chat-sentiment"}, "retry": {"attempts": 3}},
        plugins=[("chatsentiment", modelport_chatsentiment)],
        sleep=RecordingSleep(),
    )
    with pytest.raises(TransientError):
        hub.analyze("hi")
    assert len(calls) == 3  # the policy's attempts, once: not 3 x 3


class SlowSyncChat:
    """A chat backend with no async methods whose stream waits before each delta."""

    @hookimpl
    def modelport_register_backends(self, registry: BackendRegistry) -> None:
        import time

        class Slow:
            def complete(self, request: Any) -> Reply:
                return Reply(text="x", model="slow")

            def stream(self, request: Any) -> Iterator[StreamDelta]:
                yield StreamDelta(text="first", model="slow")
                time.sleep(0.5)
                yield StreamDelta(text="late", model="slow")
                yield StreamDelta(finish_reason="stop", model="slow")

            def models(self) -> list[Any]:
                return []

        registry.add("slow", lambda context: Slow(), capabilities=["chat"])


def test_cancelling_an_async_stream_of_a_sync_backend_is_a_clean_cancellation() -> None:
    import asyncio

    from modelport.testing import make_test_async_hub

    async def main() -> None:
        async with make_test_async_hub(
            FakeBackends(),
            overrides={"capabilities": {"chat": "slow"}},
            plugins=[("slow", SlowSyncChat())],
        ) as hub:
            stream = await hub.stream("hi")
            assert (await anext(stream)).text == "first"
            with pytest.raises(TimeoutError):  # not "ValueError: generator already executing"
                await asyncio.wait_for(anext(stream), 0.05)
            await stream.aclose()

    asyncio.run(main())
