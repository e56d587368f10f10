"""A filter loaded through ``RELAYGATE_FILTERS`` that writes what it sees, one JSON line per
observation, to the file named by ``RG_RECORD_FILE``: the prepare stage's body, each chunk's
text and the whole answers' text, with the request id (the gateway runs in another
process; the test reads the file)."""

from __future__ import annotations

import json
import os
from typing import Any

from relaygate.context import RelayContext
from relaygate.stages import Chunk


def _write(ctx: RelayContext, kind: str, value: Any) -> None:
    path = os.environ.get("RG_RECORD_FILE")
    if not path:
        return
    line = json.dumps({"rid": ctx.request_id, "kind": kind, "value": value})
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


class RecordFilter:
    async def prepare(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        _write(ctx, "prepare", {"model": body.get("model"), "n": len(body.get("messages") or [])})
        if body.get("user") == "add-system":  # a stage that adds a message
            body["messages"].insert(0, {"role": "system", "content": "Injected by a stage."})

    def on_response(self, ctx: RelayContext, obj: dict[str, Any]) -> None:
        choices = obj.get("choices") or [{}]
        _write(ctx, "response", (choices[0].get("message") or {}).get("content"))

    def on_chunk(self, ctx: RelayContext, chunk: Chunk) -> list[Chunk]:
        text = chunk.delta_text()
        if text:
            _write(ctx, "chunk", text)
        obj = chunk.obj or {}
        if obj.get("usage"):
            _write(ctx, "usage", obj["usage"])
        return [chunk]

    def on_end(self, ctx: RelayContext) -> list[Chunk]:
        return []
