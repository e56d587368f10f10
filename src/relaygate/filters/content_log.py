"""Opt-in content logging (``RELAYGATE_LOG_CONTENT=1``).

Off by default: relaygate never logs prompts or answers unless the operator asks.
When on, one ``relaygate.content`` log line per request carries the request's
messages (or embeddings input) and the answer text, each cut to ``limit`` characters.
It is built on the public stage interface: ``before`` keeps the prompt,
``on_response`` / ``on_chunk`` collect the answer, ``after`` writes the line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from relaygate.context import RelayContext, Slot
from relaygate.stages import Chunk

__all__ = ["ContentLogFilter"]

log = logging.getLogger("relaygate.content")


@dataclass(slots=True)
class _Capture:
    prompt: str
    answer: list[str] = field(default_factory=list)


CAPTURE: Slot[_Capture] = Slot("content_log.capture")


class ContentLogFilter:
    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit

    async def before(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        prompt = body.get("messages", body.get("input"))
        ctx.put(CAPTURE, _Capture(orjson.dumps(prompt).decode()[: self.limit]))

    def on_response(self, ctx: RelayContext, obj: dict[str, Any]) -> None:
        cap = ctx.get(CAPTURE)
        if cap is None:
            return
        choices = obj.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message")
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                cap.answer.append(message["content"])

    def on_chunk(self, ctx: RelayContext, chunk: Chunk) -> list[Chunk]:
        cap = ctx.get(CAPTURE)
        if cap is not None:
            text = chunk.delta_text()
            if text:
                cap.answer.append(text)
        return [chunk]

    def on_end(self, ctx: RelayContext) -> list[Chunk]:
        return []

    async def after(self, ctx: RelayContext) -> None:
        cap = ctx.pop(CAPTURE)
        if cap is None:
            return
        log.info(
            "content",
            extra={
                "request_id": ctx.request_id,
                "model": ctx.model,
                "prompt": cap.prompt,
                "answer": "".join(cap.answer)[: self.limit],
            },
        )
