"""The models of 2027: defaults with no shutdown date, shutdown warnings, reasoning models,
and the end of OpenAI's fine-tuning."""

from __future__ import annotations

import re
from collections.abc import Iterator, MutableMapping, Sequence
from datetime import date
from typing import Any

import pytest
import respx
from click.testing import CliRunner
from structlog.testing import capture_logs

import modelport._operations
from modelport import ChatOptions, Image, Message, ModelInfo, TrainingDataset, TrainingExample
from modelport.cli import CliState, cli
from modelport.errors import ConfigError, UnsupportedError
from modelport.serialization import converter
from modelport_openai import PRESETS
from modelport_openai._settings import DEFAULT_MODEL, OPENAI_FINE_TUNING_CLOSES
from modelport_openai._wire import model_rules, models_from_json, shutdown_day

from .conftest import KEY, PNG, MakeAsyncHub, MakeHub, chunk, completion, ok, sent, sse

OPENAI = "https://api.openai.com/v1"

#: A model list as OpenAI gives it after the announcement of 2026-10-14.
MODELS = {
    "object": "list",
    "data": [
        {"id": "gpt-6-luna", "object": "model", "created": 1_790_000_000, "owned_by": "system"},
        {"id": "gpt-4o-mini", "created": 1_721_172_741, "shutdown_date": "2027-01-14"},
        {"id": "gpt-4.1", "created": 1_744_316_542, "shutdown_date": 1_799_884_800},
        {"id": "gpt-4o", "created": 1_715_367_049, "shutdown_date": "2027-01-14T00:00:00Z"},
    ],
}


@pytest.fixture(autouse=True)
def _fresh_shutdown_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would: nothing warned about yet."""
    monkeypatch.setattr(modelport._operations, "_SHUTDOWNS_LOGGED", set())


def _events(logs: Sequence[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


# --- defaults ---------------------------------------------------------------------------------


def test_no_preset_defaults_to_a_model_that_shuts_down() -> None:
    assert PRESETS["openai"].model == PRESETS["azure"].model == DEFAULT_MODEL == "gpt-6-luna"
    retiring = re.compile(r"gpt-4o|gpt-4\.1|gpt-3\.5")
    assert [p.name for p in PRESETS.values() if retiring.search(p.model)] == []


def test_the_default_model_is_sent(api: respx.MockRouter, make_hub: MakeHub) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion()))
    make_hub().ask("hi")
    assert sent(route)["model"] == "gpt-6-luna"


# --- shutdown dates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2027-01-14", date(2027, 1, 14)),
        ("2027-01-14T00:00:00Z", date(2027, 1, 14)),
        ("2027-01-13T23:30:00-05:00", date(2027, 1, 14)),  # UTC's day
        ("20270114", date(2027, 1, 14)),
        (1_799_884_800, date(2027, 1, 14)),
        (1_799_884_800.5, date(2027, 1, 14)),
        ("1799884800", date(2027, 1, 14)),
        (1_799_884_800_000, date(2027, 1, 14)),  # milliseconds
        (None, None),
        ("", None),
        ("soon", None),
        (True, None),
        (0, None),
        (-5, None),
        (float("nan"), None),
        (1e300, None),
        ({"day": 14}, None),
    ],
)
def test_a_shutdown_date_is_read_from_a_date_or_a_timestamp(value: Any, expected: Any) -> None:
    assert shutdown_day(value) == expected


def test_the_model_list_carries_shutdown_dates_and_they_serialize() -> None:
    models = {m.id: m for m in models_from_json(MODELS, "openai")}
    assert models["gpt-6-luna"].shutdown_date is None
    assert {models[m].shutdown_date for m in ("gpt-4o-mini", "gpt-4.1", "gpt-4o")} == {
        date(2027, 1, 14)
    }
    data = converter.unstructure(models["gpt-4o-mini"])
    assert data["shutdown_date"] == "2027-01-14"
    assert converter.structure(data, ModelInfo) == models["gpt-4o-mini"]
    assert "shutdown_date" not in converter.unstructure(models["gpt-6-luna"])


def test_models_warns_once_of_configured_models_that_shut_down(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    listed = api.get("/models").mock(return_value=ok(MODELS))
    chat = api.post("/chat/completions").mock(return_value=ok(completion()))
    support = {"model": "gpt-4.1"}
    hub = make_hub(model="gpt-4o-mini", more={"assistants": {"support": support}})
    hub.ask("hi")
    hub.ask("hi", assistant="support")
    assert listed.call_count == 0  # chat never lists models to check them
    with capture_logs() as logs:
        models = hub.models()
        hub.models()
    assert {m.id: m.shutdown_date for m in models}["gpt-4o-mini"] == date(2027, 1, 14)
    warned = _events(logs, "model_shutdown_scheduled")
    assert [(w["model"], w["settings"], w["log_level"]) for w in warned] == [
        ("gpt-4.1", ["assistants.support.model"], "warning"),
        ("gpt-4o-mini", ["backends.openai.model"], "warning"),
    ]  # gpt-4o has a date too, but nothing uses it; and each is said once
    assert warned[0]["shutdown_date"] == "2027-01-14"
    assert warned[0]["backend"] == "openai"
    assert "set [assistants.support] model to a model with no shutdown date" in warned[0]["hint"]
    assert chat.call_count == 2


def test_one_model_named_by_two_settings_names_both(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    api.get("/models").mock(return_value=ok(MODELS))
    hub = make_hub(
        model="gpt-4o-mini",
        vision_model="gpt-4o-mini",
        more={"assistants": {"a": {"model": "gpt-4o-mini"}}},
    )
    with capture_logs() as logs:
        hub.models()
    (warned,) = _events(logs, "model_shutdown_scheduled")
    assert warned["settings"] == ["backends.openai.model", "assistants.a.model"]
    assert "[backends.openai] model and [assistants.a] model" in warned["hint"]


def test_the_default_model_draws_no_warning(api: respx.MockRouter, make_hub: MakeHub) -> None:
    api.get("/models").mock(return_value=ok(MODELS))
    with capture_logs() as logs:
        make_hub().models()
    assert _events(logs, "model_shutdown_scheduled") == []


async def test_async_models_warns_too(api: respx.MockRouter, make_async_hub: MakeAsyncHub) -> None:
    api.get("/models").mock(return_value=ok(MODELS))
    with capture_logs() as logs:
        await make_async_hub(vision_model="gpt-4o").models()
    (warned,) = _events(logs, "model_shutdown_scheduled")
    assert (warned["model"], warned["settings"]) == ("gpt-4o", ["backends.openai.vision_model"])


def test_a_server_chosen_model_avoids_one_that_shuts_down(make_hub: MakeHub) -> None:
    with respx.mock(base_url="http://gpu.test:8000/v1") as router:
        router.get("/models").mock(
            return_value=ok({"data": [{"id": "a-old", "shutdown_date": "2027-01-14"}, {"id": "b"}]})
        )
        route = router.post("/chat/completions").mock(return_value=ok(completion()))
        make_hub("vllm", env={}, base_url="http://gpu.test:8000/v1").ask("hi")
        assert sent(route)["model"] == "b"


def test_the_cli_shows_dates_and_config_check_warns(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    api.get("/models").mock(return_value=ok(MODELS))
    hub = make_hub(model="gpt-4o-mini")
    state = CliState(make_hub=lambda _state: hub)
    listed = CliRunner().invoke(cli, ["models"], obj=state)
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert "gpt-4o-mini\t\tshuts down 2027-01-14" in lines
    assert "gpt-6-luna\tsystem" in lines
    check = CliRunner().invoke(cli, ["config", "check"], obj=state)
    assert check.exit_code == 0, check.output
    assert (
        "chat: WARNING: model 'gpt-4o-mini' of backend 'openai' shuts down on 2027-01-14: "
        "set [backends.openai] model to a model with no shutdown date"
    ) in check.stdout


# --- reasoning models -------------------------------------------------------------------------

SAMPLING = {
    "temperature": 0.2,
    "top_p": 0.9,
    "max_tokens": 50,
    "extra": {"presence_penalty": 0.5, "logprobs": True, "tools": [], "user": "u1"},
}


def test_a_reasoning_model_gets_no_option_it_refuses(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion()))
    hub = make_hub(options=SAMPLING, max_tokens_param="max_tokens")
    with capture_logs() as logs:
        hub.ask("hi")
        hub.ask("again")
    body = sent(route)
    assert {k: v for k, v in body.items() if k != "messages"} == {
        "model": "gpt-6-luna",
        "max_completion_tokens": 50,  # never max_tokens for a reasoning model
        "user": "u1",
    }
    (dropped,) = _events(logs, "options_dropped")  # once, not per request
    assert dropped["log_level"] == "debug"
    assert dropped["dropped"] == ["logprobs", "presence_penalty", "temperature", "tools", "top_p"]
    assert "'gpt-6*'" in dropped["reason"]
    assert 'unless reasoning_effort = "none"' in dropped["reason"]


@pytest.mark.parametrize(
    ("effort", "kept"),
    [("none", True), ("minimal", False), ("high", False), (None, False)],
)
def test_reasoning_effort_is_sent_and_none_lets_sampling_through(
    api: respx.MockRouter, make_hub: MakeHub, effort: str | None, kept: bool
) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion()))
    make_hub().ask("hi", options=ChatOptions(temperature=0.3, reasoning_effort=effort))
    body = sent(route)
    assert body.get("reasoning_effort") == effort
    assert ("temperature" in body) is kept


def test_an_assistant_sets_the_reasoning_effort(api: respx.MockRouter, make_hub: MakeHub) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion()))
    fast = {"options": {"reasoning_effort": "none", "temperature": 0.1}}
    hub = make_hub(options={"reasoning_effort": "high"}, more={"assistants": {"fast": fast}})
    hub.ask("hi", assistant="fast")
    assert (sent(route)["reasoning_effort"], sent(route)["temperature"]) == ("none", 0.1)
    hub.ask("hi")
    assert sent(route)["reasoning_effort"] == "high"


@pytest.mark.parametrize(
    ("model", "reasoning"),
    [
        ("o1", True),
        ("o3-mini", True),
        ("o4-mini-2025-04-16", True),
        ("gpt-5", True),
        ("GPT-5-nano", True),
        ("gpt-6-luna", True),
        ("ft:gpt-6-luna:acme::x1", True),
        ("gpt-4o-mini", False),
        ("gpt-4.1", False),
        ("omni-moderation-latest", False),
        ("llama3.2", False),
    ],
)
def test_the_reasoning_families(model: str, reasoning: bool) -> None:
    table = PRESETS["openai"].reasoning_models
    rules = model_rules(model, table, "max_tokens")
    assert bool(rules.refused) is reasoning
    assert rules.tokens_param == ("max_completion_tokens" if reasoning else "max_tokens")


def test_an_ordinary_model_gets_every_option(api: respx.MockRouter, make_hub: MakeHub) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion()))
    make_hub(options=SAMPLING).ask("hi", model="my-model")
    body = sent(route)
    assert (body["temperature"], body["top_p"], body["presence_penalty"]) == (0.2, 0.9, 0.5)
    assert body["tools"] == []


def test_the_table_is_declared_in_the_config(make_hub: MakeHub) -> None:
    with respx.mock(base_url="http://localhost:11434/v1") as router:
        route = router.post("/chat/completions").mock(return_value=ok(completion()))
        hub = make_hub("ollama", env={}, options=SAMPLING)
        hub.ask("hi", model="gpt-6-luna")  # a local server's rules are its own: none by default
        assert (sent(route)["temperature"], sent(route)["max_tokens"]) == (0.2, 50)
        declared = make_hub(
            "ollama",
            env={},
            options=SAMPLING,
            reasoning_models={"qwq*": ["temperature", "presence_penalty"]},
        )
        declared.ask("hi", model="QwQ:32b")
        body = sent(route)
        assert "temperature" not in body
        assert "presence_penalty" not in body
        assert (body["top_p"], body["max_completion_tokens"]) == (0.9, 50)


def test_a_preset_entry_can_be_overridden(api: respx.MockRouter, make_hub: MakeHub) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion()))
    make_hub(options=SAMPLING, reasoning_models={"gpt-6*": ["tools"]}).ask("hi")
    body = sent(route)
    assert (body["temperature"], body["top_p"]) == (0.2, 0.9)
    assert "tools" not in body


def test_streams_and_images_leave_out_refused_options_too(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    route = api.post("/chat/completions").mock(
        side_effect=[sse(chunk("a", finish="stop")), ok(completion())]
    )
    hub = make_hub(options={"temperature": 0.2, "max_tokens": 9})
    list(hub.stream("hi"))
    hub.describe_image(Image.from_bytes(PNG))
    for index in (0, 1):
        assert "temperature" not in sent(route, index)
        assert sent(route, index)["max_completion_tokens"] == 9


async def test_async_requests_follow_the_same_rules(
    api: respx.MockRouter, make_async_hub: MakeAsyncHub
) -> None:
    route = api.post("/chat/completions").mock(return_value=ok(completion()))
    await make_async_hub(options={"temperature": 0.2}).ask("hi")
    assert "temperature" not in sent(route)


def test_reasoning_effort_is_validated_and_merged() -> None:
    with pytest.raises(ValueError, match="'reasoning_effort' must be one of 'none', 'minimal'"):
        ChatOptions(reasoning_effort="max")
    base = ChatOptions(reasoning_effort="low", temperature=0.1)
    assert base.merged(ChatOptions(reasoning_effort="none")).reasoning_effort == "none"
    assert base.merged(ChatOptions(temperature=0.5)).reasoning_effort == "low"


def test_a_wrong_reasoning_effort_in_the_config_names_the_key(make_hub: MakeHub) -> None:
    with pytest.raises(ConfigError, match="reasoning_effort") as caught:
        make_hub(more={"assistants": {"a": {"options": {"reasoning_effort": "max"}}}})
    assert "must be one of 'none', 'minimal', 'low', 'medium', 'high', not 'max'" in str(
        caught.value
    )


# --- the end of OpenAI's fine-tuning ----------------------------------------------------------

DATASET = TrainingDataset(
    [
        TrainingExample([Message("user", f"{n}+{n}?"), Message("assistant", str(2 * n))])
        for n in range(10)
    ],
    source="math.jsonl",
)
FILE = {"id": "file-1", "object": "file", "purpose": "fine-tune", "filename": "math.jsonl"}
JOB = {"id": "ftjob-1", "model": "gpt-4o-mini-2024-07-18", "status": "validating_files"}


@pytest.fixture
def openai_api() -> Iterator[respx.MockRouter]:
    """OpenAI itself (the fine-tuning closure applies at its own URL only)."""
    with respx.mock(base_url=OPENAI, assert_all_called=False) as router:
        yield router


def test_before_the_closing_day_training_works_with_a_note(
    openai_api: respx.MockRouter, make_hub: MakeHub
) -> None:
    openai_api.post("/files").mock(return_value=ok(FILE))
    openai_api.post("/fine_tuning/jobs").mock(return_value=ok(JOB))
    hub = make_hub(base_url=None, env={"OPENAI_API_KEY": KEY})
    report = hub.check_dataset(DATASET, base_model="gpt-4o-mini-2024-07-18")
    assert report.ok
    assert report.price_per_million == 3.0
    (note,) = report.warnings
    assert "OpenAI accepts no new fine-tuning jobs from 2027-01-06" in note
    assert "[capabilities] training = <name>" in note
    with capture_logs() as logs:
        job = hub.train(DATASET, base_model="gpt-4o-mini-2024-07-18")
    assert job.id == "ftjob-1"
    (closing,) = _events(logs, "fine_tuning_closes")
    assert (closing["closes"], closing["log_level"]) == ("2027-01-06", "warning")


@pytest.mark.parametrize("day", [OPENAI_FINE_TUNING_CLOSES, date(2027, 3, 1)])
def test_from_the_closing_day_a_job_is_refused_before_any_upload(
    openai_api: respx.MockRouter, make_hub: MakeHub, day: date
) -> None:
    upload = openai_api.post("/files").mock(return_value=ok(FILE))
    hub = make_hub(base_url=None, env={"OPENAI_API_KEY": KEY})
    hub.backend("training").today = lambda: day
    report = hub.check_dataset(DATASET, base_model="gpt-4o-mini-2024-07-18")
    assert report.ok  # the data is fine; the warning says what will happen
    assert "accepts no new fine-tuning jobs since 2027-01-06" in report.warnings[0]
    with pytest.raises(UnsupportedError, match="since 2027-01-06") as caught:
        hub.train(DATASET, base_model="gpt-4o-mini-2024-07-18")
    assert caught.value.hint == "train with another backend: [capabilities] training = <name>"
    assert caught.value.retryable is False
    assert upload.call_count == 0


async def test_async_training_is_refused_too(
    openai_api: respx.MockRouter, make_async_hub: MakeAsyncHub
) -> None:
    upload = openai_api.post("/files").mock(return_value=ok(FILE))
    hub = make_async_hub(base_url=None, env={"OPENAI_API_KEY": KEY})
    hub.backend("training").today = lambda: date(2027, 2, 1)
    with pytest.raises(UnsupportedError):
        await hub.train(DATASET, base_model="gpt-4o-mini-2024-07-18")
    assert upload.call_count == 0


def test_another_server_behind_the_preset_keeps_its_own_rules(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    api.post("/files").mock(return_value=ok(FILE))
    api.post("/fine_tuning/jobs").mock(return_value=ok(JOB))
    hub = make_hub()  # https://api.test/v1
    hub.backend("training").today = lambda: date(2027, 2, 1)
    assert hub.check_dataset(DATASET, base_model="gpt-4o-mini").warnings == ()
    assert hub.train(DATASET, base_model="gpt-4o-mini").id == "ftjob-1"


def test_no_estimate_is_made_for_the_default_model(make_hub: MakeHub) -> None:
    report = make_hub().check_dataset(DATASET, base_model="gpt-6-luna")
    assert (report.price_per_million, report.estimated_cost) == (None, None)
