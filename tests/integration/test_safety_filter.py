"""Content safety through the running gateway (issue 16): the SafetyFilter with a fixed
word list (tests/integration/plugins/rg_safety_filter.py, loaded through
``RELAYGATE_FILTERS``), spoken to with the openai SDK. A blocked prompt is refused with
402 ``content_policy_violation`` before the upstream is called; a streamed answer whose
listed word is split across chunks ends with the notice and ``content_filter``, the word
never reaches the client, and the row and ledger charge what was delivered; masks;
non-stream and reasoning blocks; every hit in the audit sink."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway import Gateway

from relaygate.billing.tokens import count_text
from relaygate.emulator import EmulatorServer, Knobs
from relaygate.safety.base import SafetySettings

PLUGINS = str(Path(__file__).parent / "plugins")
NOTICE = SafetySettings().notice
IN_PRICE, OUT_PRICE = 2, 8


@dataclass
class World:
    gw: Gateway
    up: EmulatorServer
    ds: EmulatorServer
    audit: Path
    uid: int
    key: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = Path(tmp_path_factory.mktemp("gw-safety"))
    audit = tmp / "audit.jsonl"
    up = EmulatorServer("openai", knobs=Knobs(api_key="sk-up")).start()
    ds = EmulatorServer("deepseek", knobs=Knobs(api_key="sk-ds")).start()
    gw = Gateway(
        tmp,
        {
            "PYTHONPATH": os.pathsep.join([PLUGINS, os.environ.get("PYTHONPATH", "")]),
            "RELAYGATE_FILTERS": "rg_safety_filter:make",
            "RG_SAFETY_AUDIT": str(audit),
        },
    ).start()
    try:
        gw.create_channel(name="up", base_url=up.base_url, keys=["sk-up"], models=["safe-chat"])
        gw.create_channel(
            name="ds",
            provider="openai_compat",
            profile="deepseek",
            base_url=ds.base_url,
            keys=["sk-ds"],
            models=["deepseek-reasoner"],
        )
        gw.admin(
            "POST",
            "/prices",
            {
                "model": "safe-chat",
                "currency": "CNY",
                "per": "1m",
                "input": str(IN_PRICE),
                "output": str(OUT_PRICE),
                "force": True,
            },
        )
        uid = gw.create_user("safety", balance="10")
        key = gw.create_key(uid, name="safety")
        yield World(gw, up, ds, audit, uid, key)
    finally:
        gw.stop()
        up.stop()
        ds.stop()


@pytest.fixture(autouse=True)
def _fresh(world: World) -> None:
    world.up.reset(knobs=True, stats=True)
    world.ds.reset(knobs=True, stats=True)


def client(w: World) -> openai.OpenAI:
    return openai.OpenAI(api_key=w.key, base_url=w.gw.base_url, max_retries=0)


def audit_rows(w: World, rid: str | None = None) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 2
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if w.audit.exists():
            rows = [json.loads(line) for line in w.audit.read_text("utf-8").splitlines()]
            rows = [r for r in rows if rid is None or r["rid"] == rid]
            if rows:
                break
        time.sleep(0.05)
    return rows


def row_for(w: World, rid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        rows = [r for r in w.gw.admin("GET", f"/logs?user_id={w.uid}")["data"]]
        match = [r for r in rows if r.get("request_id") == rid]
        if match and match[0].get("cost_units") is not None:
            return match[0]
        assert time.monotonic() < deadline, rows[:3]
        time.sleep(0.1)


# ---- prompts ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "请谈谈敏 感\u200b词"}],
        [
            {"role": "system", "content": "You say ＦＯＲＢＩＤＤＥＮ-word."},
            {"role": "user", "content": "hi"},
        ],
        [
            {"role": "user", "content": "call it"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "result: 敏感詞"},  # traditional
        ],
        [{"role": "user", "content": [{"type": "text", "text": "forbidden word"}]}],
    ],
    ids=["spaced-zero-width", "system-full-width", "tool-result-traditional", "parts"],
)
def test_a_blocked_prompt_is_refused_before_the_upstream(
    world: World, messages: list[dict[str, Any]]
) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client(world).chat.completions.create(model="safe-chat", messages=messages)  # type: ignore[arg-type]
    err = info.value
    assert err.status_code == 402
    body = err.response.json()
    assert body["error"]["code"] == "content_policy_violation"
    assert "content policy" in body["error"]["message"]
    assert "敏感" not in body["error"]["message"] and "forbidden" not in body["error"]["message"]
    assert world.up.stats.requests == 0
    rid = err.response.headers["x-request-id"]
    assert [r["action"] for r in audit_rows(world, rid)] == ["block"]


def test_a_masked_prompt_reaches_the_upstream_masked(world: World) -> None:
    r = client(world).chat.completions.with_raw_response.create(
        model="safe-chat",
        messages=[{"role": "user", "content": "my maskme is here, watchword too"}],
    )
    assert r.http_response.status_code == 200
    sent = world.up.stats.bodies[-1]["messages"][0]["content"]
    assert sent == "my *** is here, watchword too"
    rows = audit_rows(world, r.http_response.headers["x-request-id"])
    assert sorted(r["action"] for r in rows) == ["log", "mask"]


def test_embeddings_input_is_checked(world: World) -> None:
    r = httpx.post(
        world.gw.base_url + "/embeddings",
        json={"model": "safe-chat", "input": ["fine", "forbiddenword"]},
        headers={"Authorization": f"Bearer {world.key}"},
        timeout=10,
    )
    assert r.status_code == 402
    assert r.json()["error"]["code"] == "content_policy_violation"


# ---- streams ------------------------------------------------------------------------
REPLY = "好的，这是第一部分。这里提到了敏感词，然后还有很多后续内容需要输出。"


def blocked_stream(w: World) -> tuple[str, dict[str, Any], str]:
    """Stream REPLY (one character per chunk); the delivered text, the row, the rid."""
    raw = client(w).chat.completions.with_raw_response.create(
        model="safe-chat",
        messages=[{"role": "user", "content": "write"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    rid = raw.http_response.headers["x-request-id"]
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith(NOTICE)
    delivered = text[: -len(NOTICE)]
    assert REPLY.startswith(delivered)
    assert "敏" not in delivered
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == ["content_filter"]
    assert w.up.stats.requests == 1
    return delivered, row_for(w, rid), rid


def char_tokens(text: str) -> int:
    """Tokens of a stream of one character per chunk (the meter counts chunk by chunk)."""
    return sum(count_text(ch) for ch in text)


def assert_billed_as_produced(w: World, row: dict[str, Any], rid: str, low: str, high: str) -> None:
    """Billed for what the upstream produced up to the stop: at least ``low`` (through the
    blocked word), at most ``high`` (what it had sent when the stop came)."""
    assert char_tokens(low) <= row["completion_tokens"] <= char_tokens(high), row
    assert row["cost_units"] == (
        row["prompt_tokens"] * IN_PRICE + row["completion_tokens"] * OUT_PRICE
    ), row
    ledger = w.gw.admin("GET", f"/users/{w.uid}/ledger")["data"]
    charge = [e for e in ledger if e.get("request_id") == rid]
    assert [e["amount_units"] for e in charge] == [-row["cost_units"]], ledger[:3]


THROUGH_WORD = REPLY[: REPLY.index("敏感词") + 3]  # produced when the block comes, at least


def test_a_stream_with_a_split_word_ends_with_the_notice_and_is_billed_as_produced(
    world: World,
) -> None:
    # one character per chunk, paced: the first characters are written before the word
    world.up.configure(reply=REPLY, chunks=len(REPLY), chunk_interval_ms=15)
    delivered, row, rid = blocked_stream(world)
    # the window holds back the last 12 normalised characters (the longest word has 13):
    # when 词 arrives, 这是第一部分这里提到了敏感 (punctuation aside) is still held
    assert delivered == "好的，这"
    # paced chunks: the upstream had sent the reply through the word, maybe a chunk more
    assert_billed_as_produced(world, row, rid, THROUGH_WORD, REPLY[: len(THROUGH_WORD) + 2])
    assert [(r["action"], r["where"], r["excerpt"]) for r in audit_rows(world, rid)] == [
        ("block", "stream", "敏感词")
    ]


def test_a_stream_blocked_in_its_first_read_is_billed_as_produced(world: World) -> None:
    """Stopped before anything was written: the response starts with the released text and
    the notice, and the row charges what the upstream had sent by then (not 0, not the
    upstream's whole usage unless it had all arrived)."""
    world.up.configure(reply=REPLY, chunks=len(REPLY))  # most chunks in one read
    _, row, rid = blocked_stream(world)
    assert_billed_as_produced(world, row, rid, THROUGH_WORD, REPLY)


@pytest.mark.parametrize("chunks", [1, 3, 7, 40])
def test_a_stream_masks_across_any_chunking(world: World, chunks: int) -> None:
    reply = "Call me at 电 话 号 码 or ｍａｓｋｍｅ please, the maskme again."
    world.up.configure(reply=reply, chunks=chunks)
    stream = client(world).chat.completions.create(
        model="safe-chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    out = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in out if c.choices)
    assert text == "Call me at *** or *** please, the *** again."
    assert [c.choices[0].finish_reason for c in out if c.choices][-1] == "stop"


def test_a_non_stream_answer_is_blocked(world: World) -> None:
    world.up.configure(reply="Sure: forbiddenword and more.")
    r = client(world).chat.completions.create(
        model="safe-chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert r.choices[0].message.content == NOTICE
    assert r.choices[0].finish_reason == "content_filter"


def test_a_non_stream_answer_is_masked(world: World) -> None:
    world.up.configure(reply="Your maskme is safe.")
    r = client(world).chat.completions.create(
        model="safe-chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert r.choices[0].message.content == "Your *** is safe."
    assert r.choices[0].finish_reason == "stop"


def test_reasoning_is_checked_in_streams_and_answers(world: World) -> None:
    world.ds.configure(reasoning="I should not say forbidden word here.", reply="Fine.", chunks=6)
    stream = client(world).chat.completions.create(
        model="deepseek-reasoner", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    out = list(stream)
    reasoning = "".join(
        getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in out if c.choices
    )
    content = "".join(c.choices[0].delta.content or "" for c in out if c.choices)
    assert "forbidden" not in reasoning.replace(" ", "")
    assert content == NOTICE
    assert [c.choices[0].finish_reason for c in out if c.choices][-1] == "content_filter"
    r = client(world).chat.completions.create(
        model="deepseek-reasoner", messages=[{"role": "user", "content": "hi"}]
    )
    assert r.choices[0].message.content == NOTICE
    assert getattr(r.choices[0].message, "reasoning_content", None) is None
    assert r.choices[0].finish_reason == "content_filter"
