"""The other client formats, second part (issue 14): the ``code``/``msg`` envelope per format
(``RELAYGATE_ENVELOPE_FORMATS=openai,anthropic,gemini``: Responses left out), the prepare
stages, the reservation and the filters on native Responses requests, the gateway's thinking
signatures, Gemini's ``topK`` and built-in tools, and the Google Gen AI SDK on an
Anthropic channel. Real SDKs (anthropic, google-genai, openai) and raw HTTP against a
running gateway with emulated upstreams and a recording filter plug-in."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from gateway import Gateway
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from relaygate.emulator import EmulatorServer, Knobs

PLUGINS = str(Path(__file__).parent / "plugins")
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather in a city",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


class World:
    def __init__(
        self, gw: Gateway, emus: dict[str, EmulatorServer], key: str, poor: str, record: Path
    ) -> None:
        self.gw, self.emus, self.key, self.poor, self.record = gw, emus, key, poor, record
        self.anthropic = anthropic.Anthropic(api_key=key, base_url=gw.base, max_retries=0)
        self.openai = openai.OpenAI(api_key=key, base_url=gw.base + "/v1", max_retries=0)
        self.genai = genai.Client(
            api_key=key,
            http_options=types.HttpOptions(
                base_url=gw.base,
                api_version="v1beta",
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    def post(self, path: str, body: Any, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.key}", "anthropic-version": "2023-06-01"}
        return httpx.post(self.gw.base + path, headers=headers, json=body, timeout=20)

    def seen(self, rid: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 3
        while True:
            lines = self.record.read_text().splitlines() if self.record.exists() else []
            rows = [json.loads(x) for x in lines]
            mine = [r for r in rows if r["rid"] == rid]
            if (mine and any(r["kind"] != "prepare" for r in mine)) or time.monotonic() > deadline:
                return mine
            time.sleep(0.05)

    def upstream(self, name: str) -> dict[str, Any]:
        rec = self.emus[name].stats.last_request
        assert rec is not None
        body: dict[str, Any] = rec.body
        return body


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    emus = {
        "openai": EmulatorServer("openai", knobs=Knobs(api_key="sk-up-oa")).start(),
        "deepseek": EmulatorServer("deepseek", knobs=Knobs(api_key="sk-up-ds")).start(),
        "anthropic": EmulatorServer("anthropic", knobs=Knobs(api_key="sk-up-an")).start(),
    }
    tmp = Path(tmp_path_factory.mktemp("formats-more"))
    record = tmp / "record.jsonl"
    gw = Gateway(
        tmp / "gw",
        {
            "PYTHONPATH": os.pathsep.join([PLUGINS, os.environ.get("PYTHONPATH", "")]),
            "RELAYGATE_FILTERS": "rg_test_filters:TestFilter,rg_record_filter:RecordFilter",
            "RG_RECORD_FILE": str(record),
            "RELAYGATE_ENVELOPE_FORMATS": "openai, anthropic, gemini",
        },
    )
    try:
        gw.start()
        gw.create_channel(
            name="oa", provider="openai_compat", profile="openai",
            base_url=emus["openai"].base_url, keys=["sk-up-oa"],
            models=["oa-model", "gpt-4o-mini"], model_mapping={"oa-model": "gpt-4o-mini"},
        )  # fmt: skip
        gw.create_channel(
            name="ds", provider="openai_compat", profile="deepseek",
            base_url=emus["deepseek"].base_url, keys=["sk-up-ds"], models=["ds-model", "ds-chat"],
            model_mapping={"ds-model": "deepseek-reasoner", "ds-chat": "deepseek-chat"},
        )  # fmt: skip
        gw.create_channel(
            name="an", provider="anthropic", base_url=emus["anthropic"].base_url,
            keys=["sk-up-an"], models=["claude-model"],
            model_mapping={"claude-model": "claude-sonnet-4-20250514"},
        )  # fmt: skip
        for model in ("oa-model", "gpt-4o-mini", "ds-model", "ds-chat", "claude-model"):
            gw.admin("POST", "/prices", {"currency": "CNY", "per": "1m", "model": model,
                                         "input": "1000", "output": "8"})  # fmt: skip
        uid = gw.create_user("formats", balance="100")
        key = gw.create_key(uid, name="formats")
        poor_uid = gw.create_user("poor", balance="1")
        poor = gw.create_key(poor_uid, name="poor")
        time.sleep(1.2)  # the workers load the configuration
        yield World(gw, emus, key, poor, record)
    finally:
        gw.stop()
        for emu in emus.values():
            emu.stop()


@pytest.fixture(autouse=True)
def _reset(world: World) -> None:
    for emu in world.emus.values():
        emu.reset(knobs=True, stats=True)


MSG = {"max_tokens": 64, "messages": [{"role": "user", "content": "Say hello"}]}
GEN = {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}


# ---- 1. the envelope per format ---------------------------------------------------------
@pytest.mark.parametrize("model", ["oa-model", "claude-model"])
def test_anthropic_answers_carry_the_envelope(world: World, model: str) -> None:
    msg = world.anthropic.messages.create(model=model, **MSG)  # type: ignore[call-overload]
    assert msg.type == "message" and msg.content[0].text
    raw = world.post("/v1/messages", {"model": model, **MSG})
    body = raw.json()
    assert raw.status_code == 200
    assert body["code"] == 0 and body["msg"] == "ok" and body["type"] == "message"
    count = world.post("/v1/messages/count_tokens", {"model": model, "messages": MSG["messages"]})
    assert count.json()["code"] == 0 and count.json()["input_tokens"] > 0


def test_anthropic_errors_carry_the_envelope(world: World) -> None:
    with pytest.raises(anthropic.NotFoundError):
        world.anthropic.messages.create(model="nope", **MSG)  # type: ignore[call-overload]
    raw = world.post("/v1/messages", {"model": "nope", **MSG})
    body = raw.json()
    assert raw.status_code == 404
    assert body["code"] == 404 and body["msg"] == body["error"]["message"]
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    bad = world.post("/v1/messages/count_tokens", {"model": "oa-model"})
    assert bad.status_code == 400 and bad.json()["code"] == 400 and bad.json()["type"] == "error"


@pytest.mark.parametrize("model", ["oa-model", "claude-model"])
def test_gemini_answers_carry_the_envelope(world: World, model: str) -> None:
    resp = world.genai.models.generate_content(model=model, contents="Say hello")
    assert resp.text
    raw = world.post(f"/v1beta/models/{model}:generateContent", GEN)
    body = raw.json()
    assert raw.status_code == 200
    assert body["code"] == 0 and body["msg"] == "ok" and body["candidates"]
    count = world.post(f"/v1beta/models/{model}:countTokens", GEN)
    assert count.json()["code"] == 0 and count.json()["totalTokens"] > 0


def test_gemini_errors_carry_the_envelope(world: World) -> None:
    with pytest.raises(genai_errors.ClientError) as caught:
        world.genai.models.generate_content(model="nope", contents="hi")
    assert caught.value.code == 404
    raw = world.post("/v1beta/models/nope:generateContent", GEN)
    body = raw.json()
    assert raw.status_code == 404
    assert body["code"] == 404 and body["msg"] == body["error"]["message"]
    assert body["error"]["status"] == "NOT_FOUND"


def test_responses_left_out_of_the_envelope(world: World) -> None:
    for model in ("oa-model", "ds-chat"):  # native, translated
        made = world.openai.responses.create(model=model, input="Say hello")
        assert made.output_text
        raw = world.post("/v1/responses", {"model": model, "input": "Say hello"})
        assert raw.status_code == 200 and "code" not in raw.json() and "msg" not in raw.json()
        got = httpx.get(world.gw.base + f"/v1/responses/{made.id}",
                        headers={"Authorization": f"Bearer {world.key}"})  # fmt: skip
        assert got.status_code == 200 and "msg" not in got.json(), got.text
    err = world.post("/v1/responses", {"model": "nope", "input": "hi"})
    assert err.status_code == 404 and set(err.json()) == {"error"}
    gone = httpx.get(world.gw.base + "/v1/responses/resp_missing",
                     headers={"Authorization": f"Bearer {world.key}"})  # fmt: skip
    assert gone.status_code == 404 and set(gone.json()) == {"error"}


def test_openai_chat_keeps_the_envelope(world: World) -> None:
    raw = world.post("/v1/chat/completions", {"model": "oa-model", **MSG})
    assert raw.status_code == 200 and raw.json()["code"] == 0


# ---- 2. native Responses: prepare stages, reservation -----------------------------------
def test_native_responses_run_the_prepare_stages(world: World) -> None:
    # the test filter renames the model (to one served natively) before routing
    made = world.openai.responses.with_raw_response.create(
        model="ds-chat", input="Say hello", user="rename-test"
    )
    rid = made.headers["x-request-id"]
    assert made.parse().output_text
    sent = world.upstream("openai")
    assert sent["model"] == "gpt-4o-mini" and world.emus["deepseek"].stats.last_request is None
    seen = world.seen(rid)
    # (the test filter runs first: the recording filter sees the renamed view)
    assert {"kind": "prepare", "rid": rid, "value": {"model": "gpt-4o-mini", "n": 1}} in seen


def test_native_responses_take_messages_a_stage_added(world: World) -> None:
    world.openai.responses.create(model="oa-model", input="Say hello", user="add-system",
                                  instructions="Be brief.")  # fmt: skip
    sent = world.upstream("openai")
    assert sent["instructions"] == "Injected by a stage.\n\nBe brief."
    assert sent["input"] == "Say hello" or sent["input"][-1]["content"] in ("Say hello", [
        {"type": "input_text", "text": "Say hello"}])  # fmt: skip


def test_untranslatable_native_request_is_reserved_by_its_text(world: World) -> None:
    # an input_file part: only a native channel takes it; the text still counts
    big = "word " * 20_000  # ~20k tokens at 1000 CNY / 1M: 20 CNY > the poor user's 1
    body = {"model": "oa-model", "max_output_tokens": 16, "input": [{"role": "user", "content": [
        {"type": "input_text", "text": big},
        {"type": "input_file", "file_id": "file-abc"}]}]}  # fmt: skip
    refused = world.post("/v1/responses", body, key=world.poor)
    # Responses is out of the envelope here: OpenAI's statuses, as the other formats'
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "insufficient_quota"
    small = {**body, "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "hi"}, {"type": "input_file", "file_id": "file-abc"}]}]}  # fmt: skip
    ok = world.post("/v1/responses", small, key=world.poor)
    assert ok.status_code == 200, ok.text
    # the same on a channel without the Responses API: the translation's own error
    bad = world.post("/v1/responses", {**small, "model": "ds-chat"})
    assert bad.status_code == 400 and "input_file" in bad.json()["error"]["message"]


# ---- 3. filters observe the native Responses answers ------------------------------------
def test_native_responses_stream_is_observed_by_chunk_filters(world: World) -> None:
    with world.openai.responses.with_streaming_response.create(
        model="oa-model", input="Say hello", stream=True
    ) as resp:
        rid = resp.headers["x-request-id"]
        text = "".join(
            json.loads(line[5:]).get("delta", "")
            for line in resp.iter_lines()
            if line.startswith("data:") and "output_text.delta" in line
        )
    seen = world.seen(rid)
    assert text and "".join(r["value"] for r in seen if r["kind"] == "chunk") == text
    usage = [r["value"] for r in seen if r["kind"] == "usage"]
    assert usage and usage[-1]["completion_tokens"] > 0


def test_native_responses_answer_is_observed_by_response_filters(world: World) -> None:
    made = world.openai.responses.with_raw_response.create(model="oa-model", input="Say hello")
    seen = world.seen(made.headers["x-request-id"])
    assert [r["value"] for r in seen if r["kind"] == "response"] == [made.parse().output_text]


# ---- 4. thinking signatures, stop sequences ---------------------------------------------
def test_translated_thinking_is_signed_and_accepted_back(world: World) -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    msg = world.anthropic.messages.create(model="ds-model", thinking=thinking, **MSG)  # type: ignore[call-overload]
    block = msg.content[0]
    assert block.type == "thinking" and block.thinking and len(block.signature) == 44
    with world.anthropic.messages.stream(model="ds-model", thinking=thinking, **MSG) as s:  # type: ignore[call-overload]
        final = s.get_final_message()
    assert final.content[0].type == "thinking" and final.content[0].signature  # type: ignore[union-attr]
    turn = [
        MSG["messages"][0],
        {"role": "assistant", "content": [b.model_dump() for b in msg.content]},
        {"role": "user", "content": "And again?"},
    ]
    for model, emu in (("oa-model", "openai"), ("claude-model", "anthropic")):
        again = world.anthropic.messages.create(model=model, max_tokens=64, messages=turn)  # type: ignore[arg-type]
        assert again.content
        sent = json.dumps(world.upstream(emu))
        assert block.thinking not in sent  # the gateway's thinking never goes upstream


# ---- 5. Gemini: topK, built-in tools, an Anthropic channel -------------------------------
def test_gemini_top_k_goes_where_it_is_taken(world: World) -> None:
    cfg = types.GenerateContentConfig(top_k=7)
    world.genai.models.generate_content(model="claude-model", contents="hi", config=cfg)
    assert world.upstream("anthropic")["top_k"] == 7
    world.genai.models.generate_content(model="oa-model", contents="hi", config=cfg)
    assert "top_k" not in world.upstream("openai")


@pytest.mark.parametrize("tool", ["codeExecution", "urlContext"])
def test_gemini_builtin_tools_are_refused_by_name(world: World, tool: str) -> None:
    raw = world.post("/v1beta/models/oa-model:generateContent", {**GEN, "tools": [{tool: {}}]})
    assert raw.status_code == 400, raw.text
    err = raw.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT" and f"`{tool}`" in err["message"]
    assert world.emus["openai"].stats.last_request is None
    with pytest.raises(genai_errors.ClientError):
        world.genai.models.generate_content(
            model="oa-model", contents="hi",
            config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution())]),
        )  # fmt: skip


def test_gemini_google_search_is_the_gateways_online_search(world: World) -> None:
    """googleSearch makes the request online (docs/online.md); this gateway has no search
    backend, so it is answered without search and no tool reaches the upstream."""
    resp = world.genai.models.generate_content(
        model="oa-model", contents="hi",
        config=types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())]),
    )  # fmt: skip
    assert resp.text
    sent = world.upstream("openai")
    assert "online" not in sent and "tools" not in sent


def test_gemini_sdk_on_an_anthropic_channel(world: World) -> None:
    resp = world.genai.models.generate_content(model="claude-model", contents="Say hello")
    assert resp.text and resp.usage_metadata and resp.usage_metadata.prompt_token_count
    assert world.upstream("anthropic")["messages"][0]["role"] == "user"
    chunks = list(world.genai.models.generate_content_stream(model="claude-model",
                                                             contents="Say hello"))  # fmt: skip
    assert "".join(c.text or "" for c in chunks) == resp.text
    cfg = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    called = world.genai.models.generate_content(
        model="claude-model", contents="Weather in Paris?", config=cfg
    )
    assert called.function_calls and called.function_calls[0].name == "get_weather"
    assert world.upstream("anthropic")["tools"][0]["name"] == "get_weather"
    streamed = list(world.genai.models.generate_content_stream(
        model="claude-model", contents="Weather in Paris?", config=cfg))  # fmt: skip
    calls = [fc for c in streamed for fc in (c.function_calls or [])]
    assert calls and calls[0].name == "get_weather"
