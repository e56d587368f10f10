"""Content safety on the native paths of other client formats (issue 16 × issue 14),
through the running gateway: the anthropic SDK against ``/v1/messages`` on an Anthropic
channel and the openai SDK's Responses client on a channel serving the ``responses``
surface, whole and streamed, with the listed word in the emulator's reply split across
chunks. Lists are made with the admin API. With a list, the word never reaches the client
(block: the notice and a content-filter stop; mask: masked); with no list, the Anthropic
channel still gets the client's body as sent. Requests only the native path can carry
(a ``server_tool_use`` block, a built-in Responses tool) are checked whole."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from gateway import Gateway

from relaygate.emulator import EmulatorServer, Knobs
from relaygate.safety.base import SafetySettings

NOTICE = SafetySettings().notice
MASK = SafetySettings().mask
BLOCKED = "Zorblaxian"
MASKED = "quuxfrob"
REPLY_BLOCK = f"The answer is {BLOCKED} and more text after it."
REPLY_MASK = f"The answer is {MASKED} and more text after it."


class World:
    def __init__(self, gw: Gateway, emus: dict[str, EmulatorServer], key: str) -> None:
        self.gw, self.emus, self.key = gw, emus, key
        self.claude = anthropic.Anthropic(api_key=key, base_url=gw.base, max_retries=0)
        self.oai = openai.OpenAI(api_key=key, base_url=gw.base_url, max_retries=0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    emus = {
        "openai": EmulatorServer("openai", knobs=Knobs(api_key="sk-up-o")).start(),
        "anthropic": EmulatorServer("anthropic", knobs=Knobs(api_key="sk-up-a")).start(),
    }
    gw = Gateway(Path(tmp_path_factory.mktemp("safety-native")), {})
    try:
        gw.start()
        gw.create_channel(
            name="anthropic", provider="anthropic", base_url=emus["anthropic"].base_url,
            keys=["sk-up-a"], models=["claude-s"],
            model_mapping={"claude-s": "claude-sonnet-4-20250514"},
        )  # fmt: skip
        gw.create_channel(
            name="openai", provider="openai_compat", profile="openai",
            base_url=emus["openai"].base_url, keys=["sk-up-o"], models=["resp-s"],
            model_mapping={"resp-s": "gpt-4o-mini"},
        )  # fmt: skip
        uid = gw.create_user("native-safety", balance="100")
        key = gw.create_key(uid, name="native-safety")
        time.sleep(1.2)  # the workers load the configuration
        yield World(gw, emus, key)
    finally:
        gw.stop()
        for emu in emus.values():
            emu.stop()


@pytest.fixture(autouse=True)
def _reset(world: World) -> None:
    for emu in world.emus.values():
        emu.reset(knobs=True, stats=True)


def _admin(gw: Gateway, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gw.admin_token}"}
    return httpx.request(
        method, gw.base + "/admin/api/safety" + path, headers=headers, json=body, timeout=30
    )


def _refused(world: World) -> bool:
    body = {"model": "resp-s", "messages": [{"role": "user", "content": f"say {BLOCKED}"}]}
    with httpx.Client() as c:  # a fresh connection: any worker may take it
        r = c.post(
            world.gw.base_url + "/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {world.key}"},
            timeout=30,
        )
    return r.status_code == 402


@pytest.fixture(scope="module")
def listed(world: World) -> None:
    """A block list and a mask list, live on every worker (10 refusals in a row)."""
    for name, action, word in (("native-block", "block", BLOCKED), ("native-mask", "mask", MASKED)):
        r = _admin(world.gw, "POST", "/lists", {"name": name, "action": action, "words": [word]})
        assert r.status_code == 201, r.text
    time.sleep(1.5)
    deadline = time.monotonic() + 10
    streak = 0
    while streak < 10:
        assert time.monotonic() < deadline, "the lists never became active"
        streak = streak + 1 if _refused(world) else 0
        if not streak:
            time.sleep(0.2)


def _reply(world: World, text: str, chunks: int = 12) -> None:
    for emu in world.emus.values():
        emu.configure(reply=text, chunks=chunks)


# ---------------------------------------------------------------- no list: native fidelity


def test_no_list_keeps_native_fidelity(world: World) -> None:
    body: dict[str, Any] = {
        "model": "claude-s",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Hello"}],
        "metadata": {"user_id": "u-1"},
    }
    _reply(world, REPLY_BLOCK)  # not listed yet: passes
    msg = world.claude.messages.create(**body)
    assert BLOCKED in msg.content[0].text  # type: ignore[union-attr]
    rec = world.emus["anthropic"].stats.last_request
    assert rec is not None and rec.path.endswith("/messages")
    assert rec.body == {**body, "model": "claude-sonnet-4-20250514"}  # as sent
    out = world.oai.responses.create(model="resp-s", input="Hello")
    assert BLOCKED in out.output_text
    assert world.emus["openai"].stats.last_request.path.endswith("/responses")  # type: ignore[union-attr]


# ---------------------------------------------------------------- /v1/messages


def _claude_stream(world: World, **extra: Any) -> tuple[str, str | None, list[str]]:
    with world.claude.messages.stream(
        model="claude-s",
        max_tokens=300,
        messages=extra.pop("messages", [{"role": "user", "content": "Hello"}]),
        **extra,
    ) as stream:
        names = [e.type for e in stream]
        final = stream.get_final_message()
    text = "".join(b.text for b in final.content if b.type == "text")
    return text, final.stop_reason, names


def test_messages_block(world: World, listed: None) -> None:
    _reply(world, REPLY_BLOCK)
    msg = world.claude.messages.create(
        model="claude-s", max_tokens=300, messages=[{"role": "user", "content": "Hello"}]
    )
    text = "".join(b.text for b in msg.content if b.type == "text")
    assert BLOCKED not in text and NOTICE in text
    assert msg.stop_reason == "refusal" or msg.stop_reason == "end_turn"
    text, stop, names = _claude_stream(world)
    assert BLOCKED not in text and NOTICE in text, text
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert stop in ("refusal", "end_turn")


def test_messages_block_raw_bytes(world: World, listed: None) -> None:
    """However the reply is chunked, no byte of the word reaches the client."""
    for chunks in (1, 3, 30):
        _reply(world, REPLY_BLOCK, chunks)
        body = {
            "model": "claude-s",
            "max_tokens": 300,
            "stream": True,
            "messages": [{"role": "user", "content": "Hello"}],
        }
        r = httpx.post(
            world.gw.base + "/v1/messages",
            json=body,
            headers={"x-api-key": world.key, "anthropic-version": "2023-06-01"},
            timeout=30,
        )
        assert r.status_code == 200
        assert BLOCKED[:5] not in r.text.replace("\\", "")
        assert "message_stop" in r.text and NOTICE in r.text


def test_messages_mask(world: World, listed: None) -> None:
    _reply(world, REPLY_MASK)
    msg = world.claude.messages.create(
        model="claude-s", max_tokens=300, messages=[{"role": "user", "content": "Hello"}]
    )
    text = "".join(b.text for b in msg.content if b.type == "text")
    assert MASKED not in text and MASK in text and "more text after it" in text
    text, _, _ = _claude_stream(world)
    assert MASKED not in text and MASK in text and "more text after it" in text


def test_messages_native_only_blocks_checked_whole(world: World, listed: None) -> None:
    """A request chat cannot carry still goes to the Anthropic channel as sent; its answer
    is checked whole (the stream held) before anything is sent."""
    messages: Any = [
        {"role": "user", "content": "Search the web"},
        {
            "role": "assistant",
            "content": [
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
                {"type": "text", "text": "Done."},
            ],
        },
        {"role": "user", "content": "Thanks"},
    ]
    _reply(world, REPLY_BLOCK)
    msg = world.claude.messages.create(model="claude-s", max_tokens=300, messages=messages)
    assert world.emus["anthropic"].stats.last_body["messages"] == messages  # as sent
    text = "".join(b.text for b in msg.content if b.type == "text")
    assert BLOCKED not in text and NOTICE in text
    text, _, names = _claude_stream(world, messages=messages)
    assert BLOCKED not in text and NOTICE in text
    assert names[-1] == "message_stop"
    _reply(world, REPLY_MASK)
    text, _, _ = _claude_stream(world, messages=messages)
    assert MASKED not in text and MASK in text
    _reply(world, "A harmless answer.")  # nothing changed: the upstream's own frames
    text, _, _ = _claude_stream(world, messages=messages)
    assert text == "A harmless answer."


# ---------------------------------------------------------------- /v1/responses


def _resp_stream(world: World, **extra: Any) -> tuple[str, Any]:
    """The streamed text and the last event's response (``response.completed``, or
    ``response.incomplete`` after a content filter)."""
    text: list[str] = []
    final: Any = None
    stream = world.oai.responses.create(model="resp-s", input="Hello", stream=True, **extra)
    for event in stream:
        if event.type == "response.output_text.delta":
            text.append(event.delta)
        if event.type in ("response.completed", "response.incomplete", "response.failed"):
            final = event.response
    assert final is not None, "the stream ended without its last event"
    return "".join(text), final


def test_responses_block(world: World, listed: None) -> None:
    _reply(world, REPLY_BLOCK)
    out = world.oai.responses.create(model="resp-s", input="Hello")
    assert BLOCKED not in out.output_text and NOTICE in out.output_text
    assert out.status == "incomplete"
    text, final = _resp_stream(world)
    assert final.status == "incomplete"
    assert BLOCKED not in text and NOTICE in text
    # the translated way: the channel got chat completions
    assert world.emus["openai"].stats.last_request.path.endswith("/chat/completions")  # type: ignore[union-attr]


def test_responses_mask(world: World, listed: None) -> None:
    _reply(world, REPLY_MASK)
    out = world.oai.responses.create(model="resp-s", input="Hello")
    assert MASKED not in out.output_text and MASK in out.output_text
    text, _ = _resp_stream(world)
    assert MASKED not in text and MASK in text and "more text after it" in text


def test_responses_builtin_tool_checked_whole(world: World, listed: None) -> None:
    """A built-in tool only the Responses API can take: native, checked whole."""
    tools: Any = [{"type": "web_search"}]
    _reply(world, REPLY_BLOCK)
    out = world.oai.responses.create(model="resp-s", input="Hello", tools=tools)
    assert world.emus["openai"].stats.last_request.path.endswith("/responses")  # type: ignore[union-attr]
    assert BLOCKED not in out.output_text and NOTICE in out.output_text
    assert out.status == "incomplete"
    with pytest.raises(openai.NotFoundError):  # not recorded: the upstream's copy has it
        world.oai.responses.retrieve(out.id)
    text, _ = _resp_stream(world, tools=tools)
    assert BLOCKED not in text and NOTICE in text
    _reply(world, REPLY_MASK)
    out = world.oai.responses.create(model="resp-s", input="Hello", tools=tools)
    assert MASKED not in out.output_text and MASK in out.output_text
    text, _ = _resp_stream(world, tools=tools)
    assert MASKED not in text and MASK in text
    _reply(world, "A harmless answer.")
    text, final = _resp_stream(world, tools=tools)
    assert text == "A harmless answer." and final.status == "completed"
