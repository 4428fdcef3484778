"""Usage and cost, with both hubs: each chat and vision call recorded in the store with its
assistant, dialogue, tokens and cost; prices from the config over the backend's; the report
and ``modelport usage``; budgets refusing calls before anything is paid."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from structlog.testing import capture_logs

import modelport._usage
import modelport_jsonfile
from modelport import AsyncHub, Hub, UsageRecord, UsageReport, UsageStore, hookimpl
from modelport._usage import UsageLedger
from modelport.cli import CliState, cli
from modelport.errors import BudgetExceededError, ConfigError
from modelport.testing import (
    TINY_PNG,
    FakeBackends,
    MemoryStore,
    make_test_async_hub,
    make_test_hub,
)
from modelport_openai import OpenAIBackend

PRICES = {"fake-chat": {"fake-model": {"input_per_million": 1000.0, "output_per_million": 2000.0}}}
ASSISTANTS = {"tutor": {"model": "fake-model", "budget_usd": 100.0}}
TIGHT = {"tutor": {"model": "fake-model", "budget_usd": 0.01, "budget_period": "day"}}


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _make(kind: str, fakes: FakeBackends, tmp_path: Path | None = None, **overrides: Any) -> Any:
    kwargs: dict[str, Any] = {"overrides": {"prices": PRICES, "assistants": ASSISTANTS}}
    kwargs["overrides"].update(overrides)
    if tmp_path is not None:
        kwargs["overrides"]["capabilities"] = {"storage": "jsonfile"}
        kwargs["overrides"]["backends"] = {"jsonfile": {"root": str(tmp_path / "store")}}
        kwargs["plugins"] = [("jsonfile", modelport_jsonfile)]
    if kind == "sync":
        return make_test_hub(fakes, **kwargs)
    return make_test_async_hub(fakes, **kwargs)


def _run(hub: Hub | AsyncHub, method: str, *args: Any, **kwargs: Any) -> Any:
    result = getattr(hub, method)(*args, **kwargs)
    return asyncio.run(result) if isinstance(hub, AsyncHub) else result


def _stream(hub: Hub | AsyncHub, text: str, **kwargs: Any) -> Any:
    if isinstance(hub, AsyncHub):

        async def go() -> Any:
            stream = await hub.stream(text, **kwargs)
            async for _ in stream:
                pass
            return stream.answer

        return asyncio.run(go())
    stream = hub.stream(text, **kwargs)
    for _ in stream:
        pass
    return stream.answer


@pytest.mark.parametrize("store", ["memory", "jsonfile"])
def test_each_chat_call_is_recorded_with_its_assistant_dialogue_tokens_and_cost(
    kind: str, store: str, tmp_path: Path
) -> None:
    fakes = FakeBackends()
    hub = _make(kind, fakes, tmp_path if store == "jsonfile" else None)
    first = _run(hub, "ask", "What is a monad?", assistant="tutor")
    second = _stream(hub, "And a functor?", dialogue=first.dialogue_id)
    _run(hub, "ask", "Unpriced", model="fake-model-large")

    records = _run(hub, "usage")
    assert [(r.operation, r.assistant, r.dialogue_id) for r in records] == [
        ("complete", "tutor", first.dialogue_id),
        ("stream", "tutor", first.dialogue_id),  # the dialogue's own assistant
        ("complete", None, records[2].dialogue_id),
    ]
    assert second.dialogue_id == first.dialogue_id
    assert records[2].dialogue_id is not None
    usage = first.reply.usage
    assert records[0].prompt_tokens == usage.prompt_tokens
    assert records[0].completion_tokens == usage.completion_tokens
    expected = (usage.prompt_tokens * 1000 + usage.completion_tokens * 2000) / 1e6
    assert records[0].cost_usd == pytest.approx(expected)
    assert records[2].model == "fake-model-large"
    assert records[2].cost_usd is None
    assert all(r.backend == "fake-chat" and r.at.tzinfo is not None for r in records)


def test_a_vision_call_is_recorded_too(kind: str) -> None:
    fakes = FakeBackends()
    hub = _make(kind, fakes)
    _run(hub, "describe_image", TINY_PNG)
    (record,) = _run(hub, "usage")
    assert record.capability == "vision"
    assert record.operation == "describe"
    assert record.dialogue_id is None
    assert record.assistant is None


def test_observers_see_the_assistant() -> None:
    seen = []

    class Observer:
        @hookimpl
        def modelport_on_exchange(self, exchange: Any) -> None:
            if exchange.capability == "chat":
                seen.append(exchange.assistant)

    hub = make_test_hub(overrides={"assistants": ASSISTANTS}, plugins=[Observer()])
    hub.ask("hi", assistant="tutor")
    assert seen == ["tutor"]


def test_usage_is_listed_by_range_from_the_jsonfile_store(tmp_path: Path) -> None:
    store = modelport_jsonfile.JsonFileStore(tmp_path)
    assert isinstance(store, UsageStore)
    at = datetime(2026, 1, 31, 23, 0, tzinfo=UTC)
    for hours in (0, 2, 24 * 40):  # January, February, March
        store.record_usage(
            UsageRecord(
                at=at + timedelta(hours=hours), capability="chat", backend="b", operation="op"
            )
        )
    assert sorted(p.name for p in (tmp_path / "usage").iterdir()) == [
        "2026-01.jsonl",
        "2026-02.jsonl",
        "2026-03.jsonl",
    ]
    feb = store.list_usage(
        since=datetime(2026, 2, 1, tzinfo=UTC), until=datetime(2026, 3, 1, tzinfo=UTC)
    )
    assert [r.at for r in feb] == [at + timedelta(hours=2)]
    assert len(store.list_usage()) == 3
    with (tmp_path / "usage" / "2026-01.jsonl").open("ab") as f:
        f.write(b'{"schema":"usage/1","at":')  # a torn line left by a killed writer
    store.record_usage(UsageRecord(at=at, capability="chat", backend="b", operation="op"))
    with capture_logs() as logs:
        assert len(store.list_usage()) == 4
    assert [e["event"] for e in logs] == ["damaged record skipped"]


def test_a_failing_usage_write_does_not_fail_the_ask(kind: str) -> None:
    fakes = FakeBackends()

    def broken(record: UsageRecord) -> None:
        raise OSError("disk full")

    fakes.store.record_usage = broken  # type: ignore[method-assign]
    hub = _make(kind, fakes)
    with capture_logs() as logs:
        answer = _run(hub, "ask", "hello")
    assert answer.text
    assert _run(hub, "dialogue", answer.dialogue_id).messages
    events = [e for e in logs if e["event"] == "usage_not_recorded"]
    assert len(events) == 1
    assert "disk full" in events[0]["error"]


class PlainStore:  # a Store, without record_usage/list_usage
    def __init__(self) -> None:
        self._inner = MemoryStore()

    def __getattr__(self, name: str) -> Any:
        if name in ("record_usage", "list_usage"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_a_store_without_usage_records_still_answers() -> None:
    fakes = FakeBackends()
    fakes.store = PlainStore()  # type: ignore[assignment]
    hub = make_test_hub(fakes)
    assert hub.ask("hello").text
    with pytest.raises(ConfigError, match="keeps no usage records"):
        hub.usage()


def test_config_prices_override_the_backends_own() -> None:
    fakes = FakeBackends()
    fakes.chat.chat_price = lambda model: (1.0, 1.0)  # type: ignore[attr-defined]
    hub = make_test_hub(fakes, overrides={"prices": PRICES})
    hub.ask("priced by the config")
    hub.ask("priced by the backend", model="other-model")
    by_config, by_backend = (r.cost_usd for r in hub.usage())
    assert by_config is not None
    assert by_backend is not None
    assert by_config > by_backend * 500  # 1000/2000 against 1/1 per million


def test_a_star_price_covers_every_other_model_of_a_backend() -> None:
    star = {"fake-chat": {"*": {"input_per_million": 0.0, "output_per_million": 0.0}}}
    hub = make_test_hub(overrides={"prices": star})
    hub.ask("local and free", model="anything")
    assert [r.cost_usd for r in hub.usage()] == [0.0]


def test_the_openai_preset_ships_prices_only_where_they_are_known() -> None:
    from modelport import BackendContext
    from modelport_openai import OpenAISettings

    backend = OpenAIBackend(
        BackendContext(name="openai", settings=OpenAISettings(), env={"OPENAI_API_KEY": "sk-test"})
    )
    assert backend.chat_price("gpt-4o-mini") == (0.15, 0.60)
    assert backend.chat_price("gpt-4o-mini-2024-07-18") is None  # a plain lookup: the hub...
    ledger = UsageLedger(make_test_hub().settings)
    assert ledger.price("openai", backend, "gpt-4o-mini-2024-07-18") == (0.15, 0.60)  # ...asks
    assert ledger.price("openai", backend, "gpt-4o-2024-05-13") == (5.00, 15.00)  # its own
    assert ledger.price("openai", backend, "gpt-6-luna") is None  # no known price
    assert ledger.price("openai", backend, "ft:gpt-4o-mini-2024-07-18:acme::x1") is None
    ollama = OpenAIBackend(BackendContext(name="ollama", settings=OpenAISettings(), env={}))
    assert ollama.chat_price("llama3.2") is None


def test_the_backend_is_asked_for_a_snapshot_then_its_alias() -> None:
    asked: list[str] = []

    def chat_price(model: str) -> tuple[float, float] | None:
        asked.append(model)
        return (3.0, 4.0) if model == "m" else None

    backend = type("Backend", (), {"chat_price": staticmethod(chat_price)})()
    ledger = UsageLedger(make_test_hub().settings)
    assert ledger.price("b", backend, "m-2025-01-31") == (3.0, 4.0)
    assert ledger.price("b", backend, "m-2025-01-31") == (3.0, 4.0)  # cached
    assert ledger.price("b", backend, "other") is None
    assert asked == ["m-2025-01-31", "m", "other"]


def test_the_report_groups_and_totals() -> None:
    day = datetime(2026, 3, 1, 12, tzinfo=UTC)

    def rec(hours: int, model: str, cost: float | None) -> UsageRecord:
        return UsageRecord(
            at=day + timedelta(hours=hours),
            capability="chat",
            backend="b",
            operation="complete",
            model=model,
            prompt_tokens=10,
            completion_tokens=5,
            cost_usd=cost,
        )

    records = [rec(0, "m1", 0.5), rec(1, "m2", None), rec(24, "m1", 0.25)]
    by_day = UsageReport.of(records)
    assert [(r.key, r.calls, r.cost_usd, r.unknown_cost_calls) for r in by_day.rows] == [
        ("2026-03-01", 2, 0.5, 1),
        ("2026-03-02", 1, 0.25, 0),
    ]
    assert by_day.total.calls == 3
    assert by_day.total.prompt_tokens == 30
    by_model = UsageReport.of(records, by="model")
    assert [r.key for r in by_model.rows] == ["m1", "m2"]
    with pytest.raises(ValueError, match="by must be one of"):
        UsageReport.of(records, by="week")


def _spend(ask: Callable[[], Any]) -> BudgetExceededError:
    """Ask until the budget refuses (each ask costs $0.005 or more); the refusal."""
    for _ in range(10):
        try:
            ask()
        except BudgetExceededError as exc:
            return exc
    raise AssertionError("the budget never refused")


def test_budget_refuses_calls_once_spent_before_anything_is_sent(kind: str) -> None:
    fakes = FakeBackends()
    hub = _make(kind, fakes, assistants=TIGHT)
    error = _spend(lambda: _run(hub, "ask", "one two three", assistant="tutor"))
    assert 1 <= len(fakes.chat.calls) < 10  # refused before a paid call
    assert error.assistant == "tutor"
    assert error.period == "day"
    assert error.budget_usd == 0.01
    assert "[assistants.tutor] budget_usd" in str(error)
    assert "daily budget" in str(error)
    assert _run(hub, "ask", "other assistants still answer").text


def test_budget_counts_what_other_hubs_recorded(tmp_path: Path) -> None:
    fakes = FakeBackends()
    spender = _make("sync", fakes, tmp_path, assistants=TIGHT)
    _spend(lambda: spender.ask("one two three", assistant="tutor"))
    fresh = _make("sync", FakeBackends(), tmp_path, assistants=TIGHT)  # a new process, say
    with pytest.raises(BudgetExceededError):
        fresh.ask("seven", assistant="tutor")


def _cached(hub: Hub) -> float:
    """The tutor's spent total as the hub knows it now (no read)."""
    spent = hub._rt.usage._budgets["tutor"].spent
    assert spent is not None
    return spent.total


def _stored(fakes: FakeBackends) -> float:
    return sum(r.cost_usd or 0.0 for r in fakes.store.usage_records if r.assistant == "tutor")


def test_a_read_between_a_write_and_its_settling_counts_the_call_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(modelport._usage, "BUDGET_REFRESH_S", 0.0)  # each check reads again
    fakes = FakeBackends()
    hub = make_test_hub(fakes, overrides={"prices": PRICES, "assistants": ASSISTANTS})
    hub.ask("first", assistant="tutor")
    record_usage = fakes.store.record_usage

    def then_read(record: UsageRecord) -> None:
        record_usage(record)
        hub._rt.usage.check_budget(hub._rt, "tutor")  # another thread's check, say

    fakes.store.record_usage = then_read  # type: ignore[method-assign]
    hub.ask("second", assistant="tutor")
    assert len(fakes.store.usage_records) == 2
    assert _cached(hub) == pytest.approx(_stored(fakes))  # not the second call twice


def test_one_thread_reads_the_spent_total_while_the_others_use_the_cached_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(modelport._usage, "BUDGET_REFRESH_S", 0.0)
    fakes = FakeBackends()
    hub = make_test_hub(fakes, overrides={"prices": PRICES, "assistants": ASSISTANTS})
    hub.ask("first", assistant="tutor")  # the first read
    reads = []
    list_usage = fakes.store.list_usage

    def slow_read(**kwargs: Any) -> Any:
        records = list_usage(**kwargs)  # what the read returns: none of the calls below
        reads.append(len(records))
        if len(reads) == 1:  # meanwhile, other threads ask (and record) without reading
            others = [
                threading.Thread(
                    target=hub.ask, args=(f"other {i}",), kwargs={"assistant": "tutor"}
                )
                for i in range(4)
            ]
            for thread in others:
                thread.start()
            for thread in others:
                thread.join(timeout=10)
            assert len(fakes.store.usage_records) == 5
        return records

    fakes.store.list_usage = slow_read  # type: ignore[method-assign]
    hub.ask("second", assistant="tutor")
    assert reads == [1]  # one read, for the five checks made while it ran
    assert len(fakes.store.usage_records) == 6
    assert _cached(hub) == pytest.approx(_stored(fakes))  # the four recorded during the read too


@pytest.mark.parametrize("refresh_s", [0.0, 60.0])
def test_concurrent_asks_keep_the_spent_total_equal_to_the_stored_one(
    monkeypatch: pytest.MonkeyPatch, refresh_s: float
) -> None:
    monkeypatch.setattr(modelport._usage, "BUDGET_REFRESH_S", refresh_s)
    fakes = FakeBackends()
    hub = make_test_hub(fakes, overrides={"prices": PRICES, "assistants": ASSISTANTS})
    record_usage, list_usage = fakes.store.record_usage, fakes.store.list_usage

    def slow_write(record: UsageRecord) -> None:
        record_usage(record)
        time.sleep(0.001)  # a read may come between the write and its settling

    def slow_read(**kwargs: Any) -> Any:
        records = list_usage(**kwargs)
        time.sleep(0.001)  # a write and its settling may come before the read is installed
        return records

    fakes.store.record_usage = slow_write  # type: ignore[method-assign]
    fakes.store.list_usage = slow_read  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for i in range(15):
                hub.ask(f"question {i}", assistant="tutor")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(fakes.store.usage_records) == 8 * 15
    assert _cached(hub) == pytest.approx(_stored(fakes))
    assert hub._rt.usage._settling == {}


def test_budget_needs_a_store_that_keeps_usage() -> None:
    fakes = FakeBackends()
    fakes.store = PlainStore()  # type: ignore[assignment]
    hub = make_test_hub(fakes, overrides={"assistants": ASSISTANTS})
    with pytest.raises(ConfigError, match="keeps no usage records"):
        hub.ask("hi", assistant="tutor")
    assert fakes.chat.calls == []


def _cli(hub: Hub, *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), obj=CliState(make_hub=lambda _s: hub))


def test_cli_usage_prints_totals_and_json() -> None:
    hub = make_test_hub(overrides={"prices": PRICES, "assistants": ASSISTANTS})
    hub.ask("hello", assistant="tutor")
    hub.ask("hi", model="fake-model-large")

    result = _cli(hub, "usage", "--by", "model")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["model", "calls", "tokens", "in", "tokens", "out", "cost"]
    assert lines[1].startswith("fake-model ")
    assert lines[1].endswith("$0.0050")
    assert lines[2].startswith("fake-model-large ")
    assert lines[2].endswith("unknown")
    assert lines[3].startswith("total ")
    assert lines[3].endswith("$0.0050 + unknown (1 call)")

    data = json.loads(_cli(hub, "usage", "--json", "--by", "assistant").output)
    assert data["by"] == "assistant"
    assert [(r["key"], r["calls"]) for r in data["rows"]] == [("-", 1), ("tutor", 1)]
    assert data["total"]["unknown_cost_calls"] == 1


def test_cli_usage_takes_a_range_and_says_when_there_is_nothing() -> None:
    hub = make_test_hub()
    hub.ask("hello")
    result = _cli(hub, "usage", "--since", "2000-01-01", "--until", "2000-02-01")
    assert result.exit_code == 0
    assert "no usage recorded" in result.output
    assert _cli(hub, "usage", "--since", "yesterday").exit_code == 2
