"""Stage plumbing: chunks parsed once whatever the number of filters, lists out,
StopStream keeps what already passed, on_end releases held chunks."""

from __future__ import annotations

import orjson
import pytest

from relaygate.context import RelayContext, Slot
from relaygate.stages import Chunk, FilterChain, StopStream

N: Slot[int] = Slot("n")


def payload(text: str) -> bytes:
    return orjson.dumps({"choices": [{"index": 0, "delta": {"content": text}}]})


class Upper:
    def on_chunk(self, ctx: RelayContext, chunk: Chunk) -> list[Chunk]:
        obj = chunk.obj
        assert obj is not None
        obj["choices"][0]["delta"]["content"] = chunk.delta_text().upper()
        chunk.replace(obj)
        return [chunk]

    def on_end(self, ctx: RelayContext) -> list[Chunk]:
        return []


class Holder:
    def __init__(self) -> None:
        self.held: list[Chunk] = []

    def on_chunk(self, ctx: RelayContext, chunk: Chunk) -> list[Chunk]:
        self.held.append(chunk)
        if len(self.held) == 2:  # release two at once
            out, self.held = self.held, []
            return out
        return []

    def on_end(self, ctx: RelayContext) -> list[Chunk]:
        out, self.held = self.held, []
        return out


class StopOnX:
    def on_chunk(self, ctx: RelayContext, chunk: Chunk) -> list[Chunk]:
        if "x" in chunk.delta_text().lower():
            raise StopStream([Chunk.of({"choices": [{"finish_reason": "content_filter"}]})])
        return [chunk]

    def on_end(self, ctx: RelayContext) -> list[Chunk]:
        return []


def ctx() -> RelayContext:
    return RelayContext("rid", "chat")


def test_chunk_is_parsed_once_for_all_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = orjson.loads

    def counting(data: bytes) -> object:
        nonlocal calls
        calls += 1
        return real(data)

    monkeypatch.setattr("relaygate.stages.orjson.loads", counting)
    chain = FilterChain([Upper(), Upper(), Upper()])
    out = chain.on_chunks(ctx(), [payload("ab")])
    assert calls == 1
    assert orjson.loads(out[0])["choices"][0]["delta"]["content"] == "AB"


def test_filters_return_lists_and_release_on_end() -> None:
    chain = FilterChain([Holder(), Upper()])
    c = ctx()
    assert chain.on_chunks(c, [payload("a")]) == []
    two = chain.on_chunks(c, [payload("b"), payload("c")])
    assert [orjson.loads(p)["choices"][0]["delta"]["content"] for p in two] == ["A", "B"]
    tail = chain.on_end(c)  # the held "c" still passes the filters after the holder
    assert [orjson.loads(p)["choices"][0]["delta"]["content"] for p in tail] == ["C"]


def test_stop_stream_keeps_chunks_that_already_passed() -> None:
    chain = FilterChain([StopOnX()])
    with pytest.raises(StopStream) as stop:
        chain.on_chunks(ctx(), [payload("fine"), payload("xx"), payload("never")])
    final = [c.obj for c in stop.value.final]
    assert final[0] == orjson.loads(payload("fine"))
    assert final[-1] == {"choices": [{"finish_reason": "content_filter"}]}
    assert len(final) == 2


def test_typed_slots() -> None:
    c = ctx()
    assert c.get(N) is None
    c.put(N, 3)
    assert c.get(N) == 3 and c.pop(N) == 3 and c.get(N) is None
