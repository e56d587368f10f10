"""The other client formats as an attacker sends them: every field of /v1/messages,
/v1/messages/count_tokens, /v1/responses and Gemini generateContent/countTokens with wrong
types, empty, huge and negative values, and bodies that are not JSON objects — on the
translated paths (an OpenAI-compatible channel) and on the native ones (``@native``: an
Anthropic channel for the Messages API, a channel serving the Responses API). Every answer is
a JSON error in the format's own shape (or an answer), never a 5xx from the gateway or plain
text, and the gateway logs no traceback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway import Gateway

from relaygate.emulator import EmulatorServer, Knobs

BAD: list[Any] = [None, 1, -1, 10**30, "", "x" * 100_000, [], {}, [None], [1], {"a": None}, True]
BASES: dict[str, dict[str, Any]] = {
    "/v1/messages": {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    },
    "/v1/messages/count_tokens": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/responses": {"model": "m", "input": "hi"},
    "/v1beta/models/m:generateContent": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    "/v1beta/models/m:countTokens": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
}
EXTRA = {
    "/v1/messages": ["system", "tools", "tool_choice", "thinking", "stream", "temperature",
                     "stop_sequences", "metadata"],
    "/v1/responses": ["instructions", "tools", "tool_choice", "previous_response_id", "text",
                      "reasoning", "max_output_tokens", "stream", "store"],
    "/v1beta/models/m:generateContent": ["systemInstruction", "tools", "toolConfig",
                                         "generationConfig"],
}  # fmt: skip
# the native paths: the same bodies on a model of an Anthropic channel, and of a channel
# that serves the Responses API (the request goes there as sent)
NATIVE = {
    "/v1/messages@native": "an",
    "/v1/messages/count_tokens@native": "an",
    "/v1/responses@native": "rn",
}
for _label, _model in NATIVE.items():
    _path = _label.split("@")[0]
    BASES[_label] = {**BASES[_path], "model": _model}
    if _path in EXTRA:
        EXTRA[_label] = EXTRA[_path]
CASES = [(p, f) for p, base in BASES.items() for f in [*base, *EXTRA.get(p, [])]]


class World:
    def __init__(self, gw: Gateway, emu: EmulatorServer, key: str) -> None:
        self.gw, self.emu, self.key = gw, emu, key


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    emu = EmulatorServer("openai", knobs=Knobs(api_key="sk-up")).start()
    ant = EmulatorServer("anthropic", knobs=Knobs(api_key="sk-ant")).start()
    gw = Gateway(Path(tmp_path_factory.mktemp("inprobes")))
    try:
        gw.start()
        gw.create_channel(name="up", provider="openai_compat", profile="deepseek",
                          base_url=emu.base_url, keys=["sk-up"], models=["m"],
                          model_mapping={"m": "gpt-4o-mini"})  # fmt: skip
        gw.create_channel(name="native", provider="openai_compat", profile="openai",
                          base_url=emu.base_url, keys=["sk-up"], models=["rn"],
                          model_mapping={"rn": "gpt-4o-mini"})  # fmt: skip
        gw.create_channel(name="ant", provider="anthropic", base_url=ant.base_url,
                          keys=["sk-ant"], models=["an"],
                          model_mapping={"an": "claude-sonnet-4-20250514"})  # fmt: skip
        uid = gw.create_user("prober", balance="100")
        key = gw.create_key(uid, name="probe")
        time.sleep(1.2)
        yield World(gw, emu, key)
    finally:
        gw.stop()
        emu.stop()
        ant.stop()


def _check(r: httpx.Response, path: str = "") -> None:
    assert r.status_code < 500 or r.status_code in (502, 503, 504), (r.status_code, r.text[:300])
    if "event-stream" not in r.headers.get("content-type", ""):
        obj = r.json()  # JSON, never plain text
        if r.status_code >= 400 and isinstance(obj, dict):  # in the format's own shape
            if path.startswith("/v1/messages"):
                assert obj.get("type") == "error" and obj["error"]["type"], r.text[:300]
            elif path.startswith("/v1beta"):
                assert obj["error"]["status"] and obj["error"]["code"], r.text[:300]
            else:
                assert obj["error"]["message"], r.text[:300]
    if r.status_code >= 400:
        assert "internal" not in r.text.lower(), r.text[:300]


@pytest.mark.parametrize(("path", "field"), CASES)
def test_every_field_with_hostile_values(world: World, path: str, field: str) -> None:
    headers = {"Authorization": f"Bearer {world.key}", "x-api-key": world.key}
    url = world.gw.base + path.split("@")[0]
    for value in BAD:
        body = {**BASES[path], field: value}
        _check(httpx.post(url, headers=headers, json=body, timeout=20), path)


@pytest.mark.parametrize("path", list(BASES))
def test_bodies_that_are_not_objects(world: World, path: str) -> None:
    headers = {"Authorization": f"Bearer {world.key}", "content-type": "application/json"}
    for raw in (b"[]", b"nope", b"", b"{" * 1000, b'"x"', b"null"):
        r = httpx.post(world.gw.base + path.split("@")[0], headers=headers, content=raw, timeout=20)
        _check(r, path)
        assert r.status_code >= 400


def test_no_traceback_was_logged(world: World) -> None:
    """Runs after the probes above (pytest keeps the file's order)."""
    assert "Traceback" not in world.gw.logs()
