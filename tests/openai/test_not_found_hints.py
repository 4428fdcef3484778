"""A 404 says what is most likely wrong: the job, the base URL, or the model."""

from __future__ import annotations

import httpx
import pytest
import respx

from modelport.errors import NotFoundError

from .conftest import BASE, MakeHub, error

MODEL_HINT = "check the model name or id (`modelport models` lists the models)"


def test_an_unknown_job_says_so_and_how_to_list_jobs(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    api.get("/fine_tuning/jobs/ftjob-nope").mock(
        return_value=error(404, "No such fine-tuning job: ftjob-nope")
    )
    with pytest.raises(NotFoundError) as info:
        make_hub().job("ftjob-nope")
    assert info.value.hint == "no such job; list them with: modelport jobs list --remote"
    assert "check the model" not in str(info.value)


def test_cancelling_an_unknown_job_says_so_too(api: respx.MockRouter, make_hub: MakeHub) -> None:
    api.post("/fine_tuning/jobs/ftjob-nope/cancel").mock(return_value=error(404, "not found"))
    with pytest.raises(NotFoundError) as info:
        make_hub().cancel_job("ftjob-nope")
    assert info.value.hint == "no such job; list them with: modelport jobs list --remote"


def test_an_unknown_model_says_check_the_model(api: respx.MockRouter, make_hub: MakeHub) -> None:
    api.post("/chat/completions").mock(
        return_value=error(404, "The model `gpt-nope` does not exist", code="model_not_found")
    )
    with pytest.raises(NotFoundError) as info:
        make_hub().ask("hi", model="gpt-nope")
    assert info.value.hint == MODEL_HINT


def test_a_json_404_from_a_v1_server_without_a_code_is_taken_for_the_model(
    api: respx.MockRouter, make_hub: MakeHub
) -> None:
    # Ollama answers an unknown (not pulled) model like this
    body = {"error": {"message": 'model "llama9" not found, try pulling it first'}}
    api.post("/chat/completions").mock(return_value=httpx.Response(404, json=body))
    with pytest.raises(NotFoundError) as info:
        make_hub().ask("hi")
    assert info.value.hint == MODEL_HINT


def test_an_html_404_says_check_base_url(api: respx.MockRouter, make_hub: MakeHub) -> None:
    page = "<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>"
    api.post("/chat/completions").mock(
        return_value=httpx.Response(404, text=page, headers={"content-type": "text/html"})
    )
    with pytest.raises(NotFoundError) as info:
        make_hub().ask("hi")
    assert info.value.hint == (
        f"check base_url, now {BASE}: OpenAI-compatible servers usually serve under /v1"
    )


def test_a_base_url_without_v1_says_check_base_url(make_hub: MakeHub) -> None:
    server = "http://localhost:8080"  # llama-server, with the /v1 left off
    with respx.mock(base_url=server) as router:
        router.post("/chat/completions").mock(
            return_value=httpx.Response(404, json={"error": {"message": "File Not Found"}})
        )
        with pytest.raises(NotFoundError) as info:
            make_hub("llamacpp", base_url=server, model="local").ask("hi")
    assert info.value.hint == (
        f"check base_url, now {server}: OpenAI-compatible servers usually serve under /v1"
    )
    assert "check the model" not in str(info.value)
