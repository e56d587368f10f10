"""Hostile chat requests against the native providers of issue 12 and a few vendor
profiles, through a real gateway and their emulators, with plain httpx (the SDK would
refuse to send most of these bodies).

One channel per target: Gemini (API key), Gemini on Vertex AI (a generated service-account
key), Baidu v1, Tencent TC3, Spark over WebSocket, and the ``minimax``, ``spark``,
``moonshot`` and ``glm`` profiles of ``openai_compat``. Every probe goes to every target,
non-stream and stream. The gateway must never answer 5xx for them (the client's body is
the client's fault), never a body that is not JSON (a stream: every ``data:`` line JSON
or ``[DONE]``), a 4xx must carry an error object with a message (naming the field when
the gateway or the adaptor refused it), and the gateway's log must hold no traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gateway import Gateway
from test_gemini import UP_KEY as GEMINI_KEY
from test_native_cn import BAIDU_KEY, TENCENT_KEY
from test_spark_ws import KEY as SPARK_WS_KEY

from relaygate.emulator import EmulatorServer
from relaygate.emulator.gemini import GeminiEmulator
from relaygate.emulator.knobs import Knobs

#: public model -> the upstream model its channel maps it to
TARGETS = {
    "p-gemini": "gemini-2.5-flash",
    "p-gemini3": "gemini-3-pro-preview",
    "p-vertex": "gemini-2.5-flash",
    "p-baidu": "ERNIE-4.0-8K",
    "p-tencent": "hunyuan-turbos-latest",
    "p-spark-ws": "generalv3.5",
    "p-minimax": "MiniMax-Text-01",
    "p-spark": "generalv3.5",
    "p-moonshot": "moonshot-v1-8k",
    "p-glm": "glm-4-flash",
}
VENDORS = {"p-minimax": "minimax", "p-spark": "spark", "p-moonshot": "moonshot", "p-glm": "glm"}
USER = {"role": "user", "content": "hi"}
FN = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}
TOOL = {"type": "function", "function": FN}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
BIG_DATA_URL = "data:image/png;base64," + "iVBORw0KGgo" * 80_000  # ~880 kB
MEGABYTE = "x" * 1_000_000


def _turn(call: Any, result: Any = None, *, call_id: Any = "call_1") -> list[dict[str, Any]]:
    """user → assistant with ``tool_calls`` = [call] → tool result."""
    return [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": "sunny" if result is None else result},
    ]


def _parts(*parts: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(parts)}]


def _image(url: Any) -> list[dict[str, Any]]:
    return _parts(
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": url}
    )


def _nested_schema(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


#: probe name -> (changes to a valid body, the words one of which a gateway/adaptor 400 names)
PROBES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    # messages and content
    "messages-empty": ({"messages": []}, ("messages",)),
    "messages-string": ({"messages": "hi"}, ("messages",)),
    "messages-item-number": ({"messages": [5]}, ("messages",)),
    "message-without-role": ({"messages": [{"content": "hi"}]}, ("messages", "role")),
    "message-role-unknown": ({"messages": [{"role": "robot", "content": "hi"}]}, ("role",)),
    "message-only-system": ({"messages": [{"role": "system", "content": "x"}]}, ("messages",)),
    "content-number": ({"messages": [{"role": "user", "content": 42}]}, ("content",)),
    "content-object": ({"messages": [{"role": "user", "content": {"text": "hi"}}]}, ("content",)),
    "content-missing": ({"messages": [{"role": "user"}]}, ("content", "messages")),
    "content-odd-parts": (
        {"messages": _parts(1, "x", None, {"type": "text"}, {"type": "text", "text": 5}, {})},
        ("content",),
    ),
    "content-unknown-part": ({"messages": _parts({"type": "video", "video": 1})}, ("content",)),
    "content-empty-parts": (
        {"messages": [{"role": "user", "content": []}]},
        ("content", "messages"),
    ),
    "system-content-number": (
        {"messages": [{"role": "system", "content": 7}, USER]},
        ("content",),
    ),
    "image-url-number": ({"messages": _image({"url": 5})}, ("image_url", "url", "content")),
    "image-url-string": (
        {"messages": _image("https://example.com/a.png")},
        ("image_url", "content"),
    ),
    "image-url-null": ({"messages": _image(None)}, ("image_url", "content")),
    "image-bad-data-url": (
        {"messages": _image({"url": "data:image/png;base64"})},
        ("image_url", "url", "content"),
    ),
    "image-data-url-no-mime": (
        {"messages": _image({"url": "data:;base64,QUJD"})},
        ("image_url", "url", "content"),
    ),
    "image-huge-data-url": ({"messages": _image({"url": BIG_DATA_URL})}, ("image_url", "content")),
    "name-number": ({"messages": [{"role": "user", "content": "hi", "name": 5}]}, ("name",)),
    "megabyte-message": ({"messages": [{"role": "user", "content": MEGABYTE}]}, ("messages",)),
    "unicode-and-nul": (
        {"messages": [{"role": "user", "content": "nul\u0000 \u202eRTL \u200b zw 😀 \uffff 中文"}]},
        ("content",),
    ),
    # tools
    "tools-object": ({"tools": {"type": "function", "function": FN}}, ("tools",)),
    "tools-string": ({"tools": "get_weather"}, ("tools",)),
    "tools-item-null": ({"tools": [None]}, ("tools",)),
    "tool-without-function": ({"tools": [{"type": "function"}]}, ("tools", "function")),
    "tool-function-string": ({"tools": [{"type": "function", "function": "f"}]}, ("tools",)),
    "tool-name-number": ({"tools": [{"type": "function", "function": {"name": 5}}]}, ("tools",)),
    "tool-parameters-string": (
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": "yes"}}]},
        ("tools", "parameters"),
    ),
    "tool-parameters-list": (
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": [1]}}]},
        ("tools", "parameters"),
    ),
    "tool-properties-odd": (
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {
                            "type": "object",
                            "properties": {"a": 5, "b": "x", "c": {"type": 7, "items": 3}},
                            "required": "a",
                        },
                    },
                }
            ]
        },
        ("tools", "parameters", "properties"),
    ),
    "tool-parameters-deep": (  # 2 x 110 levels: below orjson's encoder limit (254)
        {
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": _nested_schema(110)}}
            ]
        },
        ("tools", "parameters", "nested"),
    ),
    "tool-choice-number": ({"tools": [TOOL], "tool_choice": 5}, ("tool_choice",)),
    "tool-choice-unknown": ({"tools": [TOOL], "tool_choice": "sometimes"}, ("tool_choice",)),
    "tool-choice-no-function": (
        {"tools": [TOOL], "tool_choice": {"type": "function"}},
        ("tool_choice",),
    ),
    "tool-choice-name-number": (
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": 5}}},
        ("tool_choice",),
    ),
    "tool-choice-unknown-name": (
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        ("tool_choice",),
    ),
    "tool-choice-without-tools": ({"tool_choice": "required"}, ("tool_choice", "tools")),
    "functions-string": ({"functions": "f", "function_call": 5}, ("functions", "function_call")),
    "functions-item-number": ({"functions": [5]}, ("functions",)),
    # assistant tool calls and tool results
    "tool-call-args-not-json": (
        {"messages": _turn({**CALL, "function": {"name": "get_weather", "arguments": "{nope"}})},
        ("arguments", "tool_calls"),
    ),
    "tool-call-args-object": (
        {"messages": _turn({**CALL, "function": {"name": "get_weather", "arguments": {"a": 1}}})},
        ("arguments", "tool_calls"),
    ),
    "tool-call-args-json-list": (
        {"messages": _turn({**CALL, "function": {"name": "get_weather", "arguments": "[1]"}})},
        ("arguments", "tool_calls"),
    ),
    "tool-call-args-null": (
        {"messages": _turn({**CALL, "function": {"name": "get_weather", "arguments": None}})},
        ("arguments", "tool_calls"),
    ),
    "tool-call-no-function": ({"messages": _turn({"id": "call_1"})}, ("tool_calls",)),
    "tool-call-function-string": (
        {"messages": _turn({"id": "call_1", "type": "function", "function": "f"})},
        ("tool_calls",),
    ),
    "tool-call-name-number": (
        {"messages": _turn({**CALL, "function": {"name": 5, "arguments": "{}"}})},
        ("tool_calls", "name"),
    ),
    "tool-call-id-number": (
        {"messages": _turn({**CALL, "id": 7}, call_id=7)},
        ("tool_call", "tool call"),
    ),
    "tool-calls-string": (
        {"messages": [USER, {"role": "assistant", "content": None, "tool_calls": "x"}]},
        ("tool_calls",),
    ),
    "tool-calls-item-number": (
        {"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [5]}]},
        ("tool_calls",),
    ),
    "tool-result-unknown-id": (
        {"messages": _turn(CALL, call_id="nope")},
        ("tool_call_id", "tool call"),
    ),
    "tool-result-without-call": (
        {"messages": [USER, {"role": "tool", "tool_call_id": "x", "content": "r"}]},
        ("tool_call_id", "tool"),
    ),
    "tool-result-content-object": ({"messages": _turn(CALL, {"a": 1})}, ("content",)),
    "tool-result-content-number": ({"messages": _turn(CALL, 5)}, ("content",)),
    # sampling and limits
    "temperature-string": ({"temperature": "hot"}, ("temperature",)),
    "temperature-negative": ({"temperature": -1}, ("temperature",)),
    "temperature-huge": ({"temperature": 1e308}, ("temperature",)),
    "temperature-bool": ({"temperature": True}, ("temperature",)),
    "top-p-string": ({"top_p": "0.5"}, ("top_p",)),
    "max-tokens-negative": ({"max_tokens": -5}, ("max_tokens",)),
    "max-tokens-string": ({"max_tokens": "100"}, ("max_tokens",)),
    "max-tokens-fraction": ({"max_tokens": 1.5}, ("max_tokens",)),
    "max-tokens-huge": ({"max_tokens": 10**30}, ("max_tokens",)),
    "max-completion-tokens-object": ({"max_completion_tokens": {}}, ("max_tokens",)),
    "n-zero": ({"n": 0}, ("n",)),
    "n-thousand": ({"n": 1000}, ("n",)),
    "n-string": ({"n": "2"}, ("n",)),
    "stop-number": ({"stop": 5}, ("stop",)),
    "stop-list-of-numbers": ({"stop": [1, None]}, ("stop",)),
    "stop-many": ({"stop": [f"s{i}" for i in range(100)]}, ("stop",)),
    "seed-string": ({"seed": "x"}, ("seed",)),
    "user-number": ({"user": 5}, ("user",)),
    "top-k-string": ({"top_k": "x"}, ("top_k",)),
    "penalty-string": ({"presence_penalty": "x", "frequency_penalty": []}, ("penalty",)),
    # response format and reasoning
    "response-format-string": ({"response_format": "json"}, ("response_format",)),
    "response-format-unknown": ({"response_format": {"type": "xml"}}, ("response_format",)),
    "response-format-no-schema": (
        {"response_format": {"type": "json_schema"}},
        ("response_format",),
    ),
    "response-format-schema-string": (
        {"response_format": {"type": "json_schema", "json_schema": "x"}},
        ("response_format",),
    ),
    "response-format-schema-odd": (
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": 5, "properties": [1], "enum": 3}},
            }
        },
        ("response_format",),
    ),
    "reasoning-effort-unknown": ({"reasoning_effort": "ludicrous"}, ("reasoning_effort",)),
    "reasoning-effort-number": ({"reasoning_effort": 3}, ("reasoning_effort",)),
    "thinking-odd": ({"thinking": "on"}, ("thinking",)),
    "enable-enhancement-string": ({"enable_enhancement": "yes"}, ("enable_enhancement",)),
}


@dataclass
class World:
    gw: Gateway
    emus: list[EmulatorServer]
    key: str


def _service_account_key(emu: EmulatorServer) -> str:
    """A service-account key file whose public half the Gemini emulator trusts (as
    ``test_gemini.py`` makes one)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = "probe@proj-p.iam.gserviceaccount.com"
    assert isinstance(emu.impl, GeminiEmulator)
    emu.impl.trust(
        email,
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "proj-p",
            "private_key_id": "k1",
            "private_key": private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "client_email": email,
            "token_uri": emu.origin + "/token",
        }
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    gemini = EmulatorServer("gemini", knobs=Knobs(api_key=GEMINI_KEY)).start()
    baidu = EmulatorServer("baidu").start()
    tencent = EmulatorServer("tencent").start()
    spark_ws = EmulatorServer("spark_ws").start()
    baidu.configure(api_key=BAIDU_KEY)
    tencent.configure(api_key=TENCENT_KEY)
    vendors = {public: EmulatorServer(name).start() for public, name in VENDORS.items()}
    emus = [gemini, baidu, tencent, spark_ws, *vendors.values()]
    gw = Gateway(
        Path(tmp_path_factory.mktemp("gw-probes")),
        {"RELAYGATE_CHANNEL_TEST_INTERVAL": "0", "RELAYGATE_BREAKER_FAILURES": "100000"},
    )
    try:
        gw.start()

        def channel(public: str, provider: str, base_url: str, key: str, **extra: Any) -> None:
            gw.create_channel(
                name=public,
                provider=provider,
                base_url=base_url,
                keys=[key],
                models=[public],
                model_mapping={public: TARGETS[public]},
                **extra,
            )

        channel("p-gemini", "gemini", gemini.origin, GEMINI_KEY)
        channel("p-gemini3", "gemini", gemini.origin, GEMINI_KEY)
        channel(
            "p-vertex",
            "gemini",
            gemini.origin,
            _service_account_key(gemini),
            profile="vertex",
            config={"location": "us-east5"},
        )
        channel("p-baidu", "baidu", baidu.base_url, BAIDU_KEY, config={"auth_url": baidu.origin})
        channel("p-tencent", "tencent", tencent.base_url, TENCENT_KEY)
        channel("p-spark-ws", "spark_ws", spark_ws.origin, SPARK_WS_KEY)
        for public, srv in vendors.items():
            channel(public, "openai_compat", srv.base_url, "sk-probe", profile=VENDORS[public])
        uid = gw.create_user("prober")
        yield World(gw, emus, gw.create_key(uid, name="probes"))
    finally:
        gw.stop()
        for srv in emus:
            srv.stop()


def _error_problem(status: int, body: Any, names: tuple[str, ...]) -> str | None:
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("message"), str) or not err["message"]:
        return f"{status} without an error object: {str(body)[:300]}"
    if err.get("code") == "invalid_request_error" and names:
        # refused by the gateway or the adaptor (403, or 400 with OpenAI statuses): the
        # message or param names the field
        text = f"{err['message']} {err.get('param') or ''}".lower()
        if not any(n.lower() in text for n in names):
            return f"400 names none of {names}: {err['message']!r} param={err.get('param')!r}"
    return None


def _check_stream(raw: bytes) -> str | None:
    done = False
    for line in raw.split(b"\n"):
        line = line.rstrip(b"\r")
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            continue
        try:
            obj = json.loads(data)
        except ValueError:
            return f"a stream data line is not JSON: {data[:200]!r}"
        if isinstance(obj, dict) and "error" in obj:
            return _error_problem(200, obj, ()) or None
    return None if done else "the stream did not end with [DONE]"


def probe(world: World, body: dict[str, Any], names: tuple[str, ...]) -> tuple[int, str | None]:
    """Send one body; (status, a problem found or None)."""
    stream = body.get("stream") is True
    with httpx.Client(timeout=30) as client:
        r = client.post(
            world.gw.base_url + "/chat/completions",
            headers={"Authorization": f"Bearer {world.key}"},
            json=body,
        )
    status = r.status_code
    if status >= 500:
        return status, f"{status}: {r.text[:400]}"
    if status == 200 and stream:
        return status, _check_stream(r.content)
    try:
        obj = r.json()
    except ValueError:
        return status, f"{status} body is not JSON: {r.text[:200]!r}"
    if status == 200:
        choices = obj.get("choices") if isinstance(obj, dict) else None
        return status, None if isinstance(choices, list) else f"200 without choices: {obj}"
    if 400 <= status < 500:
        return status, _error_problem(status, obj, names)
    return status, f"unexpected status {status}"


def run_probe(world: World, changes: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    problems: list[str] = []
    for public in TARGETS:
        for stream in (False, True):
            body: dict[str, Any] = {"model": public, "messages": [USER], **changes}
            if stream:
                body["stream"] = True
                body["stream_options"] = {"include_usage": True}
            before = len(world.gw.logs())
            _, problem = probe(world, body, names)
            tail = world.gw.logs()[before:]
            if "Traceback" in tail:
                problem = (problem or "") + " | traceback in the gateway log:\n" + tail[-1500:]
            if problem:
                problems.append(f"{public} stream={stream}: {problem}")
    return problems


@pytest.mark.parametrize("name", list(PROBES))
def test_hostile_request(world: World, name: str) -> None:
    changes, names = PROBES[name]
    problems = run_probe(world, changes, names)
    assert not problems, "\n".join(problems)


RAW: dict[str, Callable[[str], bytes]] = {
    "not-json": lambda m: b'{"model": "' + m.encode() + b'", "messages": [',
    "nan": lambda m: (
        b'{"model": "' + m.encode() + b'", "messages": [{"role": "user", '
        b'"content": "hi"}], "temperature": NaN}'
    ),
    "lone-surrogate": lambda m: (
        b'{"model": "' + m.encode() + b'", "messages": [{"role": "user", "content": "\\ud800 x"}]}'
    ),
    "invalid-utf8": lambda m: (
        b'{"model": "' + m.encode() + b'", "messages": [{"role": "user", "content": "\xff\xfe"}]}'
    ),
    "array-body": lambda m: b"[1, 2]",
}


@pytest.mark.parametrize("name", list(RAW))
def test_malformed_body(world: World, name: str) -> None:
    problems: list[str] = []
    for public in TARGETS:
        before = len(world.gw.logs())
        r = httpx.post(
            world.gw.base_url + "/chat/completions",
            headers={"Authorization": f"Bearer {world.key}", "Content-Type": "application/json"},
            content=RAW[name](public),
            timeout=30,
        )
        if r.status_code >= 500 or "Traceback" in world.gw.logs()[before:]:
            problems.append(f"{public}: {r.status_code} {r.text[:300]}")
            continue
        if r.status_code != 200:
            try:
                problem = _error_problem(r.status_code, r.json(), ())
            except ValueError:
                problem = f"{r.status_code} body is not JSON: {r.text[:200]!r}"
            if problem:
                problems.append(f"{public}: {problem}")
    assert not problems, "\n".join(problems)


def test_a_valid_request_still_works_everywhere(world: World) -> None:
    """The probes did not break a channel (no circuit opened, no channel disabled)."""
    for public in TARGETS:
        status, problem = probe(world, {"model": public, "messages": [USER]}, ())
        assert status == 200 and problem is None, (public, status, problem)


def test_no_traceback_in_the_gateway_log(world: World) -> None:
    assert "Traceback" not in world.gw.logs()


def test_tools_nested_deeper_than_the_encoder_allows(world: World) -> None:
    """orjson encodes at most 254 levels (the parser takes 1024): such a body is the
    client's error (403/400 naming the nesting), not a billing outage."""
    deep = {"type": "function", "function": {"name": "f", "parameters": _nested_schema(400)}}
    problems = run_probe(world, {"tools": [deep]}, ("nested", "tools"))
    assert not problems, "\n".join(problems)
