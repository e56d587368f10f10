"""iFlytek Spark over WebSocket through a running gateway (provider ``spark_ws``) against the
Spark WebSocket emulator, with the official ``openai`` SDK: chat, streams with usage, tool
calls, Spark's error codes mapped to the error table, a cut stream, a wrong APISecret.
Runs on whichever ``RELAYGATE_HTTP_CLIENT`` the environment names (CI runs both)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from gateway import Gateway

from relaygate.emulator import EmulatorServer
from relaygate.emulator.knobs import DEFAULT_REPLY

KEY = "spark-app|spark-secret|spark-key"
MSG = [{"role": "user", "content": "hi"}]
#: models whose channel sends the emulator the domain without "-stream" (an error trigger)
ERROR_MODELS = [
    f"{m}{suffix}"
    for m in ("error-400", "error-401", "error-429", "error-500", "error-10013")
    for suffix in ("", "-stream")
] + ["error-cut", "error-cut-stream", "error-midstream-stream"]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@dataclass
class Env:
    gw: Gateway
    emu: EmulatorServer
    key: str


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    emu = EmulatorServer("spark_ws").start()
    gw = Gateway(
        Path(tmp_path_factory.mktemp("gw-spark")),
        {"RELAYGATE_CHANNEL_TEST_INTERVAL": "0", "RELAYGATE_BREAKER_FAILURES": "1000"},
    ).start()
    try:
        uid = gw.create_user("spark")

        def channel(name: str, models: list[str], key: str = KEY, **config: Any) -> None:
            gw.create_channel(
                name=name,
                provider="spark_ws",
                base_url=emu.origin,  # http://…: the adaptor connects with ws://
                keys=[key],
                models=models,
                config=config,
            )

        channel("spark", ["generalv3.5", "lite"])
        # one channel per failing model: circuits and rejected keys stay apart
        for model in ERROR_MODELS:
            domain = model.removesuffix("-stream")
            channel(f"spark-{model}", [model], domains={model: ["/v3.5/chat", domain]})
        for name in ("bad-secret", "bad-secret-stream", "bad-secret-upgrade"):
            channel(name, [name], key="spark-app|not-the-secret|spark-key")
        yield Env(gw, emu, gw.create_key(uid, name="spark"))
    finally:
        gw.stop()
        emu.stop()


@pytest.fixture(autouse=True)
def _fresh(spark: Env) -> None:
    spark.emu.reset()


def client(env: Env) -> openai.OpenAI:
    return openai.OpenAI(api_key=env.key, base_url=env.gw.base_url, max_retries=0, timeout=20)


def last_frame(env: Env) -> dict[str, Any]:
    frames = [r.body for r in env.emu.stats.recorded if r.method == "WS"]
    assert frames, "the emulator received no request frame"
    body = frames[-1]
    assert isinstance(body, dict)
    return body


def test_chat_non_stream(spark: Env) -> None:
    resp = client(spark).chat.completions.create(
        model="generalv3.5",
        messages=[{"role": "system", "content": "Be brief."}, *MSG],
        temperature=1.5,
        max_tokens=50,
    )
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content == DEFAULT_REPLY
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.total_tokens == (
        resp.usage.prompt_tokens + resp.usage.completion_tokens
    )
    assert resp.usage.completion_tokens > 0
    frame = last_frame(spark)
    assert frame["header"]["app_id"] == "spark-app"
    assert frame["parameter"]["chat"] == {
        "domain": "generalv3.5",
        "temperature": 1.0,
        "max_tokens": 50,
    }
    assert frame["payload"]["message"]["text"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]


def test_lite_folds_the_system_message(spark: Env) -> None:
    client(spark).chat.completions.create(
        model="lite", messages=[{"role": "system", "content": "Be brief."}, *MSG]
    )
    assert last_frame(spark)["payload"]["message"]["text"] == [
        {"role": "user", "content": "Be brief.\n\nhi"}
    ]


def test_stream_with_usage(spark: Env) -> None:
    spark.emu.configure(chunks=4)
    chunks = list(
        client(spark).chat.completions.create(
            model="generalv3.5",
            messages=MSG,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_REPLY
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1] and chunks[-1].choices == []
    assert with_usage[0].usage is not None and with_usage[0].usage.completion_tokens > 0
    assert spark.emu.stats.streams_completed == 1


def test_stream_without_usage(spark: Env) -> None:
    chunks = list(
        client(spark).chat.completions.create(model="generalv3.5", messages=MSG, stream=True)
    )
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == DEFAULT_REPLY


def test_tool_calls_non_stream_and_the_second_turn(spark: Env) -> None:
    c = client(spark)
    messages: list[Any] = [{"role": "user", "content": "Weather in Florence?"}]
    resp = c.chat.completions.create(model="generalv3.5", messages=messages, tools=[WEATHER])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Florence"}
    assert last_frame(spark)["payload"]["functions"]["text"][0]["name"] == "get_weather"
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 25C"})
    resp = c.chat.completions.create(model="generalv3.5", messages=messages, tools=[WEATHER])
    assert resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].message.content == (
        "The tool returned: [function result] get_weather: sunny, 25C"
    )
    assert last_frame(spark)["payload"]["message"]["text"][1:] == [
        {"role": "assistant", "content": '[function call] get_weather({"city":"Florence"})'},
        {"role": "user", "content": "[function result] get_weather: sunny, 25C"},
    ]


def test_tool_calls_stream(spark: Env) -> None:
    chunks = list(
        client(spark).chat.completions.create(
            model="generalv3.5",
            messages=MSG,
            tools=[WEATHER],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert len(calls) == 1 and calls[0].function is not None
    assert calls[0].function.name == "get_weather" and calls[0].id
    assert json.loads(calls[0].function.arguments or "") == {"city": "Florence"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("model", "exc", "status", "code"),
    [
        ("error-429", openai.RateLimitError, 429, "rate_limit_exceeded"),  # 11202
        ("error-400", openai.BadRequestError, 400, "10163"),
        ("error-401", openai.InternalServerError, 502, "upstream_auth_failed"),  # 11200
        ("error-500", openai.InternalServerError, 502, "upstream_error"),  # 10012
        ("bad-secret", openai.InternalServerError, 502, "upstream_auth_failed"),  # HTTP 401
    ],
)
def test_errors_mapped(
    spark: Env, model: str, exc: type[openai.APIStatusError], status: int, code: str, stream: bool
) -> None:
    with pytest.raises(exc) as info:
        name = model + "-stream" if stream else model
        result = client(spark).chat.completions.create(model=name, messages=MSG, stream=stream)
        if stream:
            list(result)  # type: ignore[arg-type]
    assert info.value.status_code == status
    body = info.value.body
    assert isinstance(body, dict) and body.get("code") == code, body
    assert "spark-secret" not in str(body) and "not-the-secret" not in str(body)


def test_bad_secret_is_refused_at_the_upgrade(spark: Env) -> None:
    with pytest.raises(openai.InternalServerError):
        client(spark).chat.completions.create(model="bad-secret-upgrade", messages=MSG)
    upgrades = [r for r in spark.emu.stats.recorded if r.method == "GET"]
    assert upgrades and not [r for r in spark.emu.stats.recorded if r.method == "WS"]


@pytest.mark.parametrize("stream", [False, True])
def test_content_moderation_is_content_filter(spark: Env, stream: bool) -> None:
    c = client(spark)
    if stream:
        chunks = list(
            c.chat.completions.create(model="error-10013-stream", messages=MSG, stream=True)
        )
        finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
        assert finishes[-1] == "content_filter"
    else:
        resp = c.chat.completions.create(model="error-10013", messages=MSG)
        assert resp.choices[0].finish_reason == "content_filter"
        assert resp.choices[0].message.content == ""


def test_cut_stream_ends_with_an_error_event(spark: Env) -> None:
    got: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client(spark).chat.completions.create(
            model="error-cut-stream", messages=MSG, stream=True
        ):
            if chunk.choices:
                got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) and "".join(got) != DEFAULT_REPLY  # some text, then the error
    assert "interrupted" in info.value.message
    assert spark.emu.stats.streams_cut == 1


def test_cut_non_stream_is_502(spark: Env) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client(spark).chat.completions.create(model="error-cut", messages=MSG)
    assert info.value.status_code == 502


def test_midstream_error_event(spark: Env) -> None:
    got: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client(spark).chat.completions.create(
            model="error-midstream-stream", messages=MSG, stream=True
        ):
            if chunk.choices:
                got.append(chunk.choices[0].delta.content or "")
    assert "".join(got)
    assert "10012" in info.value.message
