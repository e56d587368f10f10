"""The other client formats as an attacker sends them: every field of /v1/messages,
/v1/messages/count_tokens, /v1/responses and Gemini generateContent/countTokens with wrong
types, empty, huge and negative values, and bodies that are not JSON objects. Every answer is
a JSON error (or an answer), never a 5xx from the gateway or plain text."""

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
CASES = [(p, f) for p, base in BASES.items() for f in [*base, *EXTRA.get(p, [])]]


class World:
    def __init__(self, gw: Gateway, emu: EmulatorServer, key: str) -> None:
        self.gw, self.emu, self.key = gw, emu, key


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    emu = EmulatorServer("openai", knobs=Knobs(api_key="sk-up")).start()
    gw = Gateway(Path(tmp_path_factory.mktemp("inprobes")))
    try:
        gw.start()
        gw.create_channel(name="up", provider="openai_compat", profile="deepseek",
                          base_url=emu.base_url, keys=["sk-up"], models=["m"],
                          model_mapping={"m": "gpt-4o-mini"})  # fmt: skip
        uid = gw.create_user("prober", balance="100")
        key = gw.create_key(uid, name="probe")
        time.sleep(1.2)
        yield World(gw, emu, key)
    finally:
        gw.stop()
        emu.stop()


def _check(r: httpx.Response) -> None:
    assert r.status_code < 500 or r.status_code in (502, 503, 504), (r.status_code, r.text[:300])
    if "event-stream" not in r.headers.get("content-type", ""):
        r.json()  # JSON, never plain text
    if r.status_code >= 400:
        assert "internal" not in r.text.lower(), r.text[:300]


@pytest.mark.parametrize(("path", "field"), CASES)
def test_every_field_with_hostile_values(world: World, path: str, field: str) -> None:
    headers = {"Authorization": f"Bearer {world.key}", "x-api-key": world.key}
    for value in BAD:
        body = {**BASES[path], field: value}
        _check(httpx.post(world.gw.base + path, headers=headers, json=body, timeout=20))


@pytest.mark.parametrize("path", list(BASES))
def test_bodies_that_are_not_objects(world: World, path: str) -> None:
    headers = {"Authorization": f"Bearer {world.key}", "content-type": "application/json"}
    for raw in (b"[]", b"nope", b"", b"{" * 1000, b'"x"', b"null"):
        r = httpx.post(world.gw.base + path, headers=headers, content=raw, timeout=20)
        _check(r)
        assert r.status_code >= 400
