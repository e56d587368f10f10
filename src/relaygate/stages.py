"""The filter interface: how content safety, web search and billing plug into the relay.

A filter may implement any of three hooks; the chain calls only filters that
implement a hook, so a relay with no chunk filters does no per-chunk work.

* ``before(ctx, body)`` — before the upstream call; may rewrite ``body`` (web
  search adds context) or raise a :class:`~relaygate.errors.RelayError` to refuse
  the request (content policy, quota).
* ``on_chunk(ctx, payload) -> payload | None`` — each OpenAI chunk (JSON bytes)
  on its way to the client; return ``None`` to drop it. May raise ``StopStream``
  to end the stream with a final chunk (content filter cut).
* ``after(ctx)`` — once the request is over, success or not (settle billing,
  audit). Must not raise.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

from relaygate.context import RelayContext

__all__ = ["AfterFilter", "BeforeFilter", "ChunkFilter", "FilterChain", "StopStream"]

log = logging.getLogger("relaygate.filters")


class StopStream(Exception):
    """Raised by a chunk filter to end a stream; ``final`` is sent before ``[DONE]``."""

    def __init__(self, final: bytes | None = None) -> None:
        super().__init__("stream stopped by filter")
        self.final = final


@runtime_checkable
class BeforeFilter(Protocol):
    async def before(self, ctx: RelayContext, body: dict[str, Any]) -> None: ...


@runtime_checkable
class ChunkFilter(Protocol):
    def on_chunk(self, ctx: RelayContext, payload: bytes) -> bytes | None: ...


@runtime_checkable
class AfterFilter(Protocol):
    async def after(self, ctx: RelayContext) -> None: ...


class FilterChain:
    def __init__(self, filters: list[object] | None = None) -> None:
        filters = filters or []
        self.before_filters = [f for f in filters if isinstance(f, BeforeFilter)]
        self.chunk_filters = [f for f in filters if isinstance(f, ChunkFilter)]
        self.after_filters = [f for f in filters if isinstance(f, AfterFilter)]

    async def before(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        for f in self.before_filters:
            await f.before(ctx, body)

    def on_chunks(self, ctx: RelayContext, payloads: list[bytes]) -> list[bytes]:
        if not self.chunk_filters:
            return payloads
        out: list[bytes] = []
        for p in payloads:
            cur = p
            for f in self.chunk_filters:
                nxt = f.on_chunk(ctx, cur)
                if nxt is None:
                    break
                cur = nxt
            else:
                out.append(cur)
        return out

    async def after(self, ctx: RelayContext) -> None:
        for f in self.after_filters:
            try:
                await f.after(ctx)
            except Exception:  # an after-hook must never break the response path
                log.exception("after-filter %r failed", f)
