"""Filters loaded into a test gateway through ``RELAYGATE_FILTERS`` (the operator's
plug-in path): each acts only on requests whose ``user`` field names it."""

from __future__ import annotations

from typing import Any

from relaygate.context import RelayContext, Slot
from relaygate.stages import Chunk, StopStream

MODE: Slot[str] = Slot("test.mode")
HELD: Slot[list[Chunk]] = Slot("test.held")
SEEN: Slot[int] = Slot("test.seen")


class TestFilter:
    async def prepare(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        if body.get("user") == "rename-test":  # a prepare stage may rewrite the model
            body["model"] = ctx.model = "gpt-4o-mini"

    async def before(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        mode = body.get("user")
        if mode == "crash-test":
            raise RuntimeError("a filter bug")
        if isinstance(mode, str):
            ctx.put(MODE, mode)

    def on_chunk(self, ctx: RelayContext, chunk: Chunk) -> list[Chunk]:
        mode = ctx.get(MODE)
        if mode == "stop-test" and chunk.delta_text():
            seen = (ctx.get(SEEN) or 0) + 1
            ctx.put(SEEN, seen)
            if seen == 2:  # cut after the second piece of text
                obj = chunk.obj or {}
                final = {
                    "id": obj.get("id", "x"),
                    "object": "chat.completion.chunk",
                    "created": obj.get("created", 0),
                    "model": obj.get("model", ""),
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}],
                }
                raise StopStream([chunk, Chunk.of(final)])
        if mode == "hold-test" and chunk.delta_text():
            held = ctx.get(HELD)
            if held is None:
                held = []
                ctx.put(HELD, held)
            held.append(chunk)
            return []
        return [chunk]

    def on_end(self, ctx: RelayContext) -> list[Chunk]:
        return ctx.pop(HELD) or []
