"""Opt-in content logging (``RELAYGATE_LOG_CONTENT=1``).

Off by default: relaygate never logs prompts or answers unless the operator asks.
When on, one ``relaygate.content`` log line per request carries the request's
messages (or embeddings input) and the answer text, each cut to ``limit`` characters.
It is built on the public filter interface: ``before`` keeps the prompt,
``on_chunk`` collects streamed text, ``after`` writes the line.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import orjson

from relaygate.context import RelayContext

__all__ = ["ContentLogFilter"]

log = logging.getLogger("relaygate.content")


class ContentLogFilter:
    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit

    async def before(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        prompt = body.get("messages", body.get("input"))
        ctx.notes["prompt"] = orjson.dumps(prompt).decode()[: self.limit]
        ctx.notes["answer"] = []

    def on_chunk(self, ctx: RelayContext, payload: bytes) -> bytes | None:
        parts = ctx.notes.get("answer")
        if isinstance(parts, list) and b'"content"' in payload:
            # a payload that is not a chunk object carries no answer text to log
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                for choice in orjson.loads(payload).get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if isinstance(text, str):
                        parts.append(text)
        return payload

    async def after(self, ctx: RelayContext) -> None:
        if "prompt" not in ctx.notes:
            return
        answer = ctx.notes.get("answer")
        text = (
            "".join(answer) if isinstance(answer, list) and answer else ctx.notes.get("reply", "")
        )
        log.info(
            "content",
            extra={
                "request_id": ctx.request_id,
                "model": ctx.model,
                "prompt": ctx.notes["prompt"],
                "answer": str(text)[: self.limit],
            },
        )
