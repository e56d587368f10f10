"""The OpenAI emulator's legacy completions, moderations and rerank, through the official SDK."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from relaygate.emulator import DEFAULT_REPLY, EmulatorServer
from relaygate.emulator.base import count_tokens
from relaygate.emulator.openai_misc import MODERATION_TRIGGERS, rerank_score

AUTH = {"Authorization": "Bearer sk-test"}


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer("openai") as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(emu: EmulatorServer) -> Iterator[None]:
    emu.reset()
    yield
    emu.reset()


@pytest.fixture
def client(emu: EmulatorServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=emu.base_url, api_key="sk-test", max_retries=0)


def _sse(body: str) -> list[str]:
    return [line[6:] for line in body.split("\n") if line.startswith("data: ")]


# ---------------------------------------------------------------------------------------------
# completions
# ---------------------------------------------------------------------------------------------


def test_completion_text_and_usage(client: openai.OpenAI) -> None:
    out = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say something nice")
    assert out.object == "text_completion"
    assert out.id.startswith("cmpl-")
    [choice] = out.choices
    assert (choice.text, choice.index, choice.finish_reason) == (DEFAULT_REPLY, 0, "stop")
    assert out.usage is not None
    assert out.usage.prompt_tokens == count_tokens("Say something nice")
    assert out.usage.completion_tokens == count_tokens(DEFAULT_REPLY)
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


def test_completion_prompts_n_echo_and_max_tokens(client: openai.OpenAI) -> None:
    out = client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt=["Tell", "Ask"], n=2, echo=True, max_tokens=3
    )
    assert [c.index for c in out.choices] == [0, 1, 2, 3]
    cut = DEFAULT_REPLY[:12]
    assert [c.text for c in out.choices] == ["Tell" + cut] * 2 + ["Ask" + cut] * 2
    assert {c.finish_reason for c in out.choices} == {"length"}
    assert out.usage is not None
    assert out.usage.completion_tokens == 4 * 3
    assert out.usage.prompt_tokens == count_tokens("Tell") + count_tokens("Ask")


def test_completion_token_prompts(client: openai.OpenAI) -> None:
    out = client.completions.create(model="davinci-002", prompt=[[1, 2, 3], [4, 5]], echo=True)
    assert out.usage is not None and out.usage.prompt_tokens == 5
    assert [c.text for c in out.choices] == [DEFAULT_REPLY] * 2  # token prompts echo nothing


def test_completion_stream_with_usage(client: openai.OpenAI, emu: EmulatorServer) -> None:
    emu.configure(chunks=3)
    stream = client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Hi",
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts = {0: "", 1: ""}
    finishes: dict[int, str | None] = {}
    usage = None
    for chunk in stream:
        assert chunk.object == "text_completion"
        for c in chunk.choices:
            texts[c.index] += c.text
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
        if chunk.usage is not None:
            assert chunk.choices == []
            usage = chunk.usage
    assert texts == {0: DEFAULT_REPLY, 1: DEFAULT_REPLY}
    assert finishes == {0: "stop", 1: "stop"}
    assert usage is not None and usage.completion_tokens == 2 * count_tokens(DEFAULT_REPLY)
    assert emu.stats.streams_completed == 1


def test_completion_stream_wire_and_usage_modes(emu: EmulatorServer) -> None:
    url = emu.url("/v1/completions")
    body = {"model": "m", "prompt": "Hi", "stream": True}
    frames = _sse(httpx.post(url, json=body, headers=AUTH).text)
    assert frames[-1] == "[DONE]"
    objs = [json.loads(f) for f in frames[:-1]]
    assert all("usage" not in o for o in objs)  # no include_usage: no usage anywhere
    assert objs[-1]["choices"][0]["finish_reason"] == "stop"
    emu.configure(usage="on_finish_chunk")
    frames = _sse(httpx.post(url, json=body, headers=AUTH).text)
    assert json.loads(frames[-2])["usage"]["completion_tokens"] == count_tokens(DEFAULT_REPLY)


def test_completion_stream_cut_and_midstream_error(
    client: openai.OpenAI, emu: EmulatorServer
) -> None:
    emu.configure(chunks=4, cut_after=2)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(
            emu.url("/v1/completions"),
            json={"model": "m", "prompt": "x", "stream": True},
            headers=AUTH,
        )
    assert emu.stats.wait_for(lambda s: s.streams_cut == 1)
    emu.configure(cut_after=None, midstream_error=True)
    with pytest.raises(openai.APIError, match="The server had an error"):
        for _ in client.completions.create(model="m", prompt="x", stream=True):
            pass


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": "m"}, "prompt", "missing_required_parameter"),
        ({"model": "m", "prompt": "x", "n": 200}, "n", "integer_above_max_value"),
        ({"model": "m", "prompt": "x", "max_tokens": "ten"}, "max_tokens", "invalid_type"),
        ({"model": "m", "prompt": {"a": 1}}, "prompt", "invalid_type"),
        ({"prompt": "x"}, "model", None),
    ],
)
def test_completion_refusals(
    emu: EmulatorServer, body: dict[str, object], param: str, code: str | None
) -> None:
    resp = httpx.post(emu.url("/v1/completions"), json=body, headers=AUTH)
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", param, code)
    assert emu.stats.errors == 1


def test_completion_failure_knobs(client: openai.OpenAI, emu: EmulatorServer) -> None:
    emu.configure(fail_status=429, fail_times=1, retry_after=3)
    with pytest.raises(openai.RateLimitError) as info:
        client.completions.create(model="m", prompt="x")
    assert info.value.response.headers["retry-after"] == "3"
    assert client.completions.create(model="m", prompt="x").choices[0].text == DEFAULT_REPLY
    with pytest.raises(openai.InternalServerError) as err:
        client.completions.create(model="error-503", prompt="x")
    assert err.value.status_code == 503
    emu.configure(latency_ms=150, fail_status=None)
    start = time.perf_counter()
    client.completions.create(model="m", prompt="x")
    assert time.perf_counter() - start >= 0.15
    assert emu.stats.last_body == {"model": "m", "prompt": "x"}


def test_completion_hang_until_client_gives_up(emu: EmulatorServer) -> None:
    emu.configure(hang=True)
    slow = openai.OpenAI(base_url=emu.base_url, api_key="k", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        slow.completions.create(model="m", prompt="x")
    assert emu.stats.wait_for(lambda s: s.aborted == 1)


# ---------------------------------------------------------------------------------------------
# moderations
# ---------------------------------------------------------------------------------------------


def test_moderation_flags_trigger_words(client: openai.OpenAI) -> None:
    assert "kill" in MODERATION_TRIGGERS
    out = client.moderations.create(input=["I will KILL them.", "A calm day."])
    assert out.id.startswith("modr-")
    assert out.model == "omni-moderation-2024-09-26"
    bad, good = out.results
    assert bad.flagged and not good.flagged
    cats = bad.model_dump(by_alias=True)
    assert cats["categories"]["violence"] is True
    assert cats["categories"]["harassment/threatening"] is True
    assert cats["categories"]["sexual"] is False
    assert cats["category_scores"]["violence"] == 0.98
    assert 0 < cats["category_scores"]["sexual"] < 0.001
    assert cats["category_applied_input_types"]["violence"] == ["text"]
    assert not any(good.model_dump(by_alias=True)["categories"].values())
    # deterministic: the same input scores the same
    again = client.moderations.create(input="A calm day.").results[0]
    assert again.category_scores == good.category_scores


def test_moderation_multimodal_is_one_result(client: openai.OpenAI) -> None:
    out = client.moderations.create(
        model="omni-moderation-latest",
        input=[
            {"type": "text", "text": "look at this"},
            {"type": "image_url", "image_url": {"url": "https://example.com/bomb.png"}},
        ],
    )
    [result] = out.results
    dumped = result.model_dump(by_alias=True)
    assert result.flagged and dumped["categories"]["illicit/violent"] is True
    applied = dumped["category_applied_input_types"]
    assert applied["violence"] == ["text", "image"]
    assert applied["hate"] == ["text"]


def test_moderation_text_model_and_refusals(client: openai.OpenAI, emu: EmulatorServer) -> None:
    out = client.moderations.create(model="text-moderation-latest", input="suicide")
    assert out.model == "text-moderation-007"
    assert out.results[0].categories.self_harm is True
    raw = httpx.post(
        emu.url("/v1/moderations"),
        json={"input": "x", "model": "text-moderation-stable"},
        headers=AUTH,
    ).json()
    assert "category_applied_input_types" not in raw["results"][0]
    with pytest.raises(openai.BadRequestError, match="does not support image"):
        client.moderations.create(
            model="text-moderation-latest",
            input=[{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
        )
    resp = httpx.post(
        emu.url("/v1/moderations"), json={"model": "omni-moderation-latest"}, headers=AUTH
    )
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "input"
    emu.configure(fail_status=500, fail_times=1)
    with pytest.raises(openai.InternalServerError):
        client.moderations.create(input="x")


# ---------------------------------------------------------------------------------------------
# rerank
# ---------------------------------------------------------------------------------------------


def test_rerank_scores_by_word_overlap(emu: EmulatorServer) -> None:
    body = {
        "model": "jina-reranker-v2",
        "query": "Apple banana",
        "documents": ["banana split", "cherry", {"text": "apple banana pie"}],
    }
    resp = httpx.post(emu.url("/v1/rerank"), json=body, headers=AUTH)
    assert resp.status_code == 200
    out = resp.json()
    assert out["model"] == "jina-reranker-v2"
    assert [(r["index"], r["relevance_score"]) for r in out["results"]] == [
        (2, 1.0),
        (0, 0.5),
        (1, 0.0),
    ]
    assert out["results"][0]["document"] == {"text": "apple banana pie"}
    expected = count_tokens("Apple banana") + sum(
        count_tokens(d) for d in ("banana split", "cherry", "apple banana pie")
    )
    assert out["usage"] == {"total_tokens": expected}
    assert rerank_score("Apple banana", "banana split") == 0.5
    body.update(top_n=1, return_documents=False)
    out = httpx.post(emu.url("/v1/rerank"), json=body, headers=AUTH).json()
    assert out["results"] == [{"index": 2, "relevance_score": 1.0}]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "r", "documents": ["a"]}, "query"),
        ({"model": "r", "query": "q", "documents": []}, "documents"),
        ({"model": "r", "query": "q", "documents": [3]}, "documents[0]"),
        ({"model": "r", "query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
    ],
)
def test_rerank_refusals(emu: EmulatorServer, body: dict[str, object], param: str) -> None:
    resp = httpx.post(emu.url("/v1/rerank"), json=body, headers=AUTH)
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == param


def test_rerank_auth_and_injected_failure(emu: EmulatorServer) -> None:
    body = {"model": "r", "query": "q", "documents": ["q"]}
    assert httpx.post(emu.url("/v1/rerank"), json=body).status_code == 401
    emu.configure(fail_every=2, fail_status=503)
    codes = [
        httpx.post(emu.url("/v1/rerank"), json=body, headers=AUTH).status_code for _ in range(4)
    ]
    assert codes == [200, 503, 200, 503]


def test_deepseek_family_serves_completions_on_both_prefixes() -> None:
    with EmulatorServer("deepseek") as ds:
        for path in ("/v1/completions", "/completions"):
            resp = httpx.post(
                ds.url(path), json={"model": "deepseek-chat", "prompt": "x"}, headers=AUTH
            )
            assert resp.status_code == 200, path
            assert resp.json()["choices"][0]["text"] == DEFAULT_REPLY
