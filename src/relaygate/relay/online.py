"""The relay's side of an online request (``online/stage.py`` does the search): seed 001's
two stream notice chunks around the search, the search itself with the operator's rewrite
model, and the citation tap on the answer.

Notices (``RELAYGATE_SEARCH_NOTICE``, on by default, plain chat streams only): before the
search the stream opens with a chunk whose delta is ``{"role": "assistant", "content":
null, "function_call": {"name": "web_search", "arguments": ""}}``, and once the search is
done a chunk with an empty delta and ``finish_reason: "function_call"`` (it also carries
``online``, the search's outcome); then the normal answer stream follows on the same
response (``relay/stream.py`` OPEN_WRITER)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from relaygate.asgi import Request
from relaygate.context import RelayContext
from relaygate.online.base import Hit
from relaygate.online.citations import CitationTap
from relaygate.online.query import read_rewrite, rewrite_prompt
from relaygate.online.stage import ONLINE, OnlineStage, Rewrite, Screen
from relaygate.relay.attempt import build_request, fetch
from relaygate.relay.present import PRESENTER, open_writer
from relaygate.relay.stream import OPEN_WRITER, SSEWriter
from relaygate.safety.matcher import mask_text
from relaygate.stages import TAP
from relaygate.state import AppState

__all__ = ["ground"]

log = logging.getLogger("relaygate.online")


def _notice(ctx: RelayContext, delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "id": f"chatcmpl-{ctx.request_id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": ctx.model or "",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
    )


_SEARCHING = {
    "role": "assistant",
    "content": None,
    "function_call": {"name": "web_search", "arguments": ""},
}


async def ground(state: AppState, req: Request, ctx: RelayContext, body: dict[str, Any]) -> None:
    """Run ``ctx``'s search (if it is online) and put the sources into ``body``; a stream
    gets the notice chunks around it. Called once, after the before-filters and before
    the first attempt (``relay/pipeline.py``)."""
    stage = state.online
    if stage is None or ctx.get(ONLINE) is None:
        return
    notices = ctx.stream and stage.settings.notice and ctx.get(PRESENTER) is None
    out: SSEWriter | None = None
    if notices:
        out = open_writer(state, req, ctx)
        ctx.put(OPEN_WRITER, out)
        await out.emit([_notice(ctx, _SEARCHING, None)])
    rewrite = _rewriter(state, ctx, stage) if stage.settings.rewrite_model else None
    job = await stage.search(ctx, body, rewrite, _screen(state, ctx))
    assert job is not None
    summary = job.summary()
    ctx.search = orjson.dumps({"status": job.status, "hits": len(job.hits), "ms": job.ms}).decode()
    if out is not None:
        await out.emit([_notice(ctx, {}, "function_call", online=summary)])
    ctx.put(TAP, CitationTap(job.hits, summary, announce=out is None))


def _screen(state: AppState, ctx: RelayContext) -> Screen | None:
    """Content safety on search results (issue 16): a hit with a blocked word is dropped,
    masked words are masked; every hit is audited as ``search``. None when no list is on."""
    safety = state.safety
    if safety is None or safety.holder.policy is None:
        return None
    mask = safety.settings.mask

    def screen(hit: Hit) -> Hit | None:
        for name in ("title", "snippet", "text"):
            value: str = getattr(hit, name)
            found = safety.check(ctx, value, "search")
            if any(h.action == "block" for h in found):
                return None
            spans = [(h.start, h.end) for h in found if h.action == "mask"]
            if spans:
                setattr(hit, name, mask_text(value, spans, mask))
        return hit

    return screen


def _rewriter(state: AppState, ctx: RelayContext, stage: OnlineStage) -> Rewrite:
    """The operator's rewrite model, called on its first channel (no failover: a failure
    falls back to the last user turn). Its tokens are part of the search fee."""
    model = stage.settings.rewrite_model

    async def rewrite(messages: list[Any]) -> str:
        assert ctx.key is not None and ctx.user is not None
        router = state.router
        candidates = router.candidates(model, ctx.key, ctx.user.group_name, None)
        if not candidates:
            return ""
        ch, name = candidates[0]
        target = router.target(ch, name, None)
        adaptor = state.adaptors.get(target.provider)
        today = datetime.now(UTC).date().isoformat()
        body = rewrite_prompt(messages, target.upstream_model, today)
        ureq = build_request(target, lambda: adaptor.chat_request(target, body, False))
        raw = await fetch(state, adaptor, target, ureq)
        obj, _ = adaptor.chat_response(target, raw, legacy_functions=ureq.legacy_functions)
        choices = obj.get("choices") or [{}]
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        return read_rewrite(content) if isinstance(content, str) else ""

    return rewrite
