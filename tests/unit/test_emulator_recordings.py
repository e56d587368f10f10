"""The emulators against recorded real traffic: each recorded request (OpenAI, Azure,
Anthropic, Gemini, Gemini and Claude on Vertex) is sent to the matching emulator at the
recorded path, and the answer must have the recorded wire format — the same status, the
same framing (SSE line endings, ``[DONE]`` or none, ``event:`` lines), the same kinds of
events in the same order, and every key the real provider sent (text, tool calls, usage,
finish reason), so the integration tests that run on emulators test what real upstreams
send. The vendor emulators are checked the same way in ``test_vendor_profiles.py``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from recordings import Interaction, load_cassette, recordings_dir
from relaygate.emulator import EmulatorServer
from relaygate.emulator.gemini_request import SIGNATURE
from relaygate.relay.sse import SSEDecoder

ROOT = recordings_dir()
_SIGNED = re.compile(rb'"thoughtSignature":\s*"[^"]*"')
pytestmark = pytest.mark.skipif(ROOT is None, reason="provider recordings not available")

#: recording folder -> emulator
FOLDERS = {
    "TestOpenAICommon": "openai",
    "TestAzureCommon": "azure",
    "TestAnthropicCommon": "anthropic",
    "TestGoogleCommon": "gemini",
}
#: keys a real provider sends that an emulator need not (ids of the provider's own
#: infrastructure, billing tiers, filter annotations, logprob statistics)
VOLATILE = {
    "system_fingerprint",
    "service_tier",
    "obfuscation",
    "prompt_filter_results",
    "content_filter_results",
    "avgLogprobs",
    "createTime",
    "trafficType",
    "candidatesTokensDetails",
    "promptTokensDetails",
    "container",
    "logprobs",
    "latency_checkpoint",
    "cache_creation",
    "server_tool_use",
    "inference_geo",
}


def _cases() -> list[tuple[str, Path]]:
    if ROOT is None:
        return []
    out = []
    for folder, emu in FOLDERS.items():
        for path in sorted((ROOT / folder).glob("*/*.yaml")):
            out.append((emu, path))
    return out


CASES = _cases()


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, EmulatorServer]]:
    started = {name: EmulatorServer(name).start() for name in set(FOLDERS.values())}
    try:
        yield started
    finally:
        for srv in started.values():
            srv.stop()


def _send(srv: EmulatorServer, it: Interaction) -> httpx.Response:
    parts = urlsplit(it.request_url)
    url = srv.origin + parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {
        "content-type": "application/json",
        "authorization": "Bearer k",
        "api-key": "k",
        "x-api-key": "k",
        "x-goog-api-key": "k",
        "anthropic-version": it.request_headers.get("anthropic-version", "2023-06-01"),
    }
    body = it.request_body
    if srv.provider == "gemini":
        # a later turn sends back the signatures Google made; the emulator checks its own
        body = _SIGNED.sub(b'"thoughtSignature":"' + SIGNATURE.encode() + b'"', body)
    return httpx.post(url, content=body, headers=headers, timeout=15)


def _keys(obj: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON value (lists merged, volatile keys left out)."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in VOLATILE:
                continue
            path = f"{prefix}.{k}" if prefix else k
            out.add(path)
            out |= _keys(v, path)
    elif isinstance(obj, list):
        for item in obj:
            out |= _keys(item, prefix + "[]")
    return out


def _events(raw: bytes) -> list[tuple[str | None, Any]]:
    dec = SSEDecoder()
    out = []
    for ev, data in dec.feed(raw) + dec.flush():
        out.append((ev, data if data == b"[DONE]" else orjson.loads(data)))
    return out


def _kind(ev: str | None, obj: Any) -> str:
    """What one stream event is, independent of its text."""
    if obj == b"[DONE]":
        return "[DONE]"
    if isinstance(obj, dict) and "type" in obj:  # Anthropic
        delta = obj.get("delta") or obj.get("content_block") or {}
        sub = delta.get("type", "") if isinstance(delta, dict) else ""
        return f"{ev}:{obj['type']}:{sub}"
    if isinstance(obj, dict) and "candidates" in obj:  # Gemini
        cand = obj["candidates"][0]
        parts = (cand.get("content") or {}).get("parts") or []
        kinds = sorted({"call" if "functionCall" in p else "text" for p in parts})
        return "gemini:" + "+".join(kinds) + (":finish" if cand.get("finishReason") else "")
    choices = obj.get("choices") if isinstance(obj, dict) else None
    if not choices:
        return "usage" if isinstance(obj, dict) and obj.get("usage") else "empty"
    c = choices[0]
    d = c.get("delta") or {}
    if c.get("finish_reason"):
        return "finish"
    if d.get("tool_calls"):
        return "tool"
    return "content" if d.get("content") or d.get("role") else "other"


def _normal(kinds: list[str]) -> list[str]:
    """Kinds that depend on timing or answer length left out: Anthropic's pings come when
    it likes; Gemini's text arrives in as many chunks as it likes, the last one with the
    finish reason (a short answer: in that chunk alone)."""
    kept = [k for k in kinds if "ping" not in k]
    out = []
    for i, k in enumerate(kept):
        if k == "gemini:text" and i + 1 < len(kept) and kept[i + 1] == "gemini:text:finish":
            continue
        out.append(k)
    return _collapse(out)


def _collapse(kinds: list[str]) -> list[str]:
    """Runs of one kind as one (the number of text pieces differs)."""
    out: list[str] = []
    for k in kinds:
        if not out or out[-1] != k:
            out.append(k)
    return out


@pytest.mark.parametrize(
    ("emu", "path"), CASES, ids=[f"{p.parent.name}/{p.stem}" for _, p in CASES]
)
def test_emulator_answers_in_the_recorded_wire_format(
    servers: dict[str, EmulatorServer], emu: str, path: Path
) -> None:
    srv = servers[emu]
    for it in load_cassette(path):
        if it.response_status != 200:
            continue
        r = _send(srv, it)
        assert r.status_code == 200, (path, r.text[:300])
        if not it.is_stream:
            want, got = _keys(it.response_json()), _keys(r.json())
            assert want <= got, (path.name, sorted(want - got))
            continue
        assert "text/event-stream" in r.headers.get("content-type", "")
        raw_want, raw_got = it.response_body, r.content
        # framing: Gemini separates events with \r\n\r\n, the others with \n\n
        assert (b"\r\n\r\n" in raw_want) == (b"\r\n\r\n" in raw_got), path
        assert raw_want.rstrip().endswith(b"[DONE]") == raw_got.rstrip().endswith(b"[DONE]")
        assert (b"event:" in raw_want) == (b"event:" in raw_got)
        want_ev, got_ev = _events(raw_want), _events(raw_got)
        want_kinds = _collapse([_kind(e, o) for e, o in want_ev if _kind(e, o) != "empty"])
        got_kinds = _collapse([_kind(e, o) for e, o in got_ev if _kind(e, o) != "empty"])
        want_kinds, got_kinds = _normal(want_kinds), _normal(got_kinds)
        assert got_kinds == want_kinds, (path.name, got_kinds, want_kinds)
        # every key of every recorded event kind is in the emulator's event of that kind
        want_by: dict[str, set[str]] = {}
        got_by: dict[str, set[str]] = {}
        for events, by in ((want_ev, want_by), (got_ev, got_by)):
            for e, o in events:
                if isinstance(o, dict):
                    by.setdefault(_kind(e, o), set()).update(_keys(o))
        for kind, keys in want_by.items():
            assert keys <= got_by.get(kind, set()), (path.name, kind, sorted(keys - got_by[kind]))
