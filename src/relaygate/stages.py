"""The stage interfaces: how web search, content safety, limits and billing plug in.

A request passes these stages in order (``relay/`` drives them)::

    prepare(ctx, body)      before routing: may rewrite ``ctx.model`` / ``body``
                            (strip an ``:online`` suffix, add defaults, inject search
                            results) or refuse with a RelayError
    route                   routing/ picks the ordered candidates for ctx.model
    billing.reserve(ctx)    after routing, before the upstream call (may refuse)
    before(ctx, body)       after routing: limits, content policy (may refuse)
    … upstream attempts …
    on_response(ctx, obj)   a non-streamed answer, parsed once (may change it)
    on_chunk(ctx, chunk)    each streamed chunk, parsed at most once for all
                            filters; returns the chunks to pass on (none: hold or
                            drop; several: release held ones); ``StopStream`` ends
                            the stream cleanly
    on_end(ctx)             the stream is ending: release anything held
    gate(ctx, answer)       awaited by the chat relay just before its first write: checks
                            started beside the upstream call (a moderation model)
    after(ctx)              always, once the request is over (must not raise)
    billing.settle(ctx)     always, in ``finally`` (must not raise)

A filter implements any subset of the hooks; :class:`FilterChain` calls only the
filters that implement a hook, so a relay with no chunk filters does no per-chunk
work at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import orjson

from relaygate.context import RelayContext, Slot

__all__ = [
    "GATED",
    "PLAN_LIMITS",
    "TAP",
    "AfterFilter",
    "BeforeFilter",
    "BillingStage",
    "Chunk",
    "ChunkFilter",
    "FilterChain",
    "GateFilter",
    "NoBilling",
    "PlanLimits",
    "PrepareStage",
    "RequestTap",
    "ResponseFilter",
    "StopStream",
]

log = logging.getLogger("relaygate.filters")


class Chunk:
    """One OpenAI chunk on its way to the client: the payload bytes, parsed at most
    once however many filters look at it. A filter that changes the object calls
    :meth:`replace`; the bytes are re-encoded once, when they are written."""

    __slots__ = ("_obj", "_raw")

    def __init__(self, raw: bytes | None = None, obj: dict[str, Any] | None = None) -> None:
        self._raw = raw
        self._obj = obj

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Chunk:
        return cls(None, obj)

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = orjson.dumps(self._obj)
        return self._raw

    @property
    def obj(self) -> dict[str, Any] | None:
        """The parsed chunk object (``None`` when the payload is not a JSON object)."""
        if self._obj is None and self._raw is not None:
            try:
                parsed = orjson.loads(self._raw)
            except orjson.JSONDecodeError:
                return None
            self._obj = parsed if isinstance(parsed, dict) else None
        return self._obj

    def replace(self, obj: dict[str, Any]) -> None:
        self._obj = obj
        self._raw = None

    def delta_text(self) -> str:
        """The concatenated ``delta.content`` of every choice ("" when none)."""
        if self._raw is not None and self._obj is None and b'"content"' not in self._raw:
            return ""  # cheap reject: most filters only want text
        obj = self.obj
        if obj is None:
            return ""
        parts = []
        for choice in obj.get("choices") or ():
            if isinstance(choice, dict):
                text = (choice.get("delta") or {}).get("content")
                if isinstance(text, str):
                    parts.append(text)
        return "".join(parts)


class StopStream(Exception):
    """Raised by a chunk filter to end a stream cleanly: ``final`` chunks (for
    example one with ``finish_reason: "content_filter"``) are sent, then
    ``[DONE]``; the upstream call is closed."""

    def __init__(self, final: list[Chunk] | None = None) -> None:
        super().__init__("stream stopped by filter")
        self.final = final or []


class RequestTap(Protocol):
    """One request's own watcher of its answer, put in :data:`TAP` by a stage that needs
    it (an online request's citations, ``online/citations.py``), so requests without one
    pay nothing: it sees a whole answer after the response filters, and each batch of
    stream chunk payloads after the chunk filters, and may add payloads."""

    def on_response(self, obj: dict[str, Any]) -> None: ...

    def chunks(self, payloads: list[bytes]) -> list[bytes]: ...


TAP: Slot[RequestTap] = Slot("stages.tap")


@runtime_checkable
class PrepareStage(Protocol):
    async def prepare(self, ctx: RelayContext, body: dict[str, Any]) -> None: ...


@runtime_checkable
class BeforeFilter(Protocol):
    async def before(self, ctx: RelayContext, body: dict[str, Any]) -> None: ...


@runtime_checkable
class ResponseFilter(Protocol):
    def on_response(self, ctx: RelayContext, obj: dict[str, Any]) -> None: ...


@runtime_checkable
class ChunkFilter(Protocol):
    def on_chunk(self, ctx: RelayContext, chunk: Chunk) -> list[Chunk]: ...

    def on_end(self, ctx: RelayContext) -> list[Chunk]: ...


@runtime_checkable
class GateFilter(Protocol):
    """A check started beside the upstream call (in ``before``) whose verdict the chat
    relay awaits just before it writes the first byte of an answer: ``answer`` is the
    whole non-stream answer (the filter may check and change it), None for a stream. It
    raises a RelayError to refuse (nothing has been written yet). A relay that cannot
    await it says so by leaving :data:`GATED` unset, and the filter waits in ``before``."""

    async def gate(self, ctx: RelayContext, answer: dict[str, Any] | None) -> None: ...


#: set by a relay that awaits the gate filters before its first write (``relay/chat.py``)
GATED: Slot[bool] = Slot("stages.gated")


@runtime_checkable
class AfterFilter(Protocol):
    async def after(self, ctx: RelayContext) -> None: ...


class BillingStage(Protocol):
    """Reserve before the upstream call; settle (fix the charge) when the request's row
    is recorded; spool a running stream's progress (billing/stage.py)."""

    async def reserve(self, ctx: RelayContext, body: dict[str, Any]) -> None: ...

    def settle(self, ctx: RelayContext) -> None: ...

    def progress(self, ctx: RelayContext) -> bytes | None: ...

    def spool(self, line: bytes) -> None: ...

    async def charge_deferred(
        self, ctx: RelayContext, model: str, usage: Any, measure: Any
    ) -> None:
        """Charge work an upstream job reported done only now (``billing/stage.py``)."""
        ...

    async def require_funds(self, ctx: RelayContext) -> None:
        """Refuse to start work charged later when the balance is used up."""
        ...


@dataclass(frozen=True, slots=True)
class PlanLimits:
    """The fair-use limits of the plan (套餐) paying for this request. The billing stage
    puts them in :data:`PLAN_LIMITS` (only when the plan has any) in ``reserve``; the limits
    filter (``filters/limits.py``) enforces them in ``before``, per user and plan.
    Defined here because billing sits below the filters and both must see it."""

    plan_id: int
    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens per minute
    daily_requests: int | None = None  # requests per UTC day
    name: str = ""  # shown in refusals


PLAN_LIMITS: Slot[PlanLimits] = Slot("billing.plan_limits")


class NoBilling:
    """Billing switched off (``RELAYGATE_BILLING=0``): reserves and charges nothing."""

    async def reserve(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        return None

    def settle(self, ctx: RelayContext) -> None:
        return None

    def progress(self, ctx: RelayContext) -> bytes | None:
        return None

    def spool(self, line: bytes) -> None:
        return None

    async def charge_deferred(
        self, ctx: RelayContext, model: str, usage: Any, measure: Any
    ) -> None:
        return None

    async def require_funds(self, ctx: RelayContext) -> None:
        return None


class FilterChain:
    def __init__(self, filters: list[object] | None = None) -> None:
        filters = filters or []
        self.prepare_stages = [f for f in filters if isinstance(f, PrepareStage)]
        self.before_filters = [f for f in filters if isinstance(f, BeforeFilter)]
        self.response_filters = [f for f in filters if isinstance(f, ResponseFilter)]
        self.chunk_filters = [f for f in filters if isinstance(f, ChunkFilter)]
        self.after_filters = [f for f in filters if isinstance(f, AfterFilter)]
        self.gate_filters = [f for f in filters if isinstance(f, GateFilter)]
        # answer-checking filters that may change answers declare ``modifies_output``
        hooks = (*self.response_filters, *self.chunk_filters, *self.gate_filters)
        self._modifiers = [f for f in hooks if hasattr(f, "modifies_output")]

    def output_filtered(self) -> bool:
        """Whether a filter of this chain may change (mask, block) an answer right now:
        a filter says so with a ``modifies_output`` attribute (``filters/safety.py``:
        output checks on and some list holds a word). The native paths of other client
        formats, which relay upstream frames as sent, use the translated path (or check
        the whole answer) while this is true (docs/safety.md)."""
        return any(bool(getattr(f, "modifies_output", False)) for f in self._modifiers)

    async def gate(self, ctx: RelayContext, answer: dict[str, Any] | None) -> None:
        for f in self.gate_filters:
            await f.gate(ctx, answer)

    async def prepare(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        for f in self.prepare_stages:
            await f.prepare(ctx, body)

    async def before(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        for f in self.before_filters:
            await f.before(ctx, body)

    def on_response(self, ctx: RelayContext, obj: dict[str, Any]) -> None:
        for f in self.response_filters:
            f.on_response(ctx, obj)

    def on_chunks(self, ctx: RelayContext, payloads: list[bytes]) -> list[bytes]:
        """Run the chunk filters over one read's payloads, in order. When a filter
        raises ``StopStream``, the chunks of this read that already passed every
        filter go out before the stop's own final chunks (which pass no later filter)."""
        out: list[Chunk] = []
        for p in payloads:
            chunks = [Chunk(p)]
            try:
                for f in self.chunk_filters:
                    nxt: list[Chunk] = []
                    for c in chunks:
                        nxt.extend(f.on_chunk(ctx, c))
                    chunks = nxt
            except StopStream as stop:
                stop.final = out + stop.final
                raise
            out.extend(chunks)
        return [c.raw for c in out]

    def on_end(self, ctx: RelayContext) -> list[bytes]:
        """The stream ends: each filter releases what it holds; the chunks a filter
        releases still pass the filters after it."""
        out: list[Chunk] = []
        for f in self.chunk_filters:
            nxt: list[Chunk] = []
            for c in out:
                nxt.extend(f.on_chunk(ctx, c))
            nxt.extend(f.on_end(ctx))
            out = nxt
        return [c.raw for c in out]

    async def after(self, ctx: RelayContext) -> None:
        for f in self.after_filters:
            try:
                await f.after(ctx)
            except Exception:  # an after-hook must never break the response path
                log.exception("after-filter %r failed", f)
