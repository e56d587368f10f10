"""The calls on an existing response (``GET``/``DELETE /v1/responses/{id}``,
``GET /v1/responses/{id}/input_items``, ``POST /v1/responses/{id}/cancel``): a native one's
go to the channel that made it, a translated one's are answered from the gateway's copy
(``relay/responses_state.py``); and what ``relay/responses.py`` shares with them (the error
shape, the surface adaptor, sending a whole answer)."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qsl

from relaygate.asgi import Request, send_json
from relaygate.context import RelayContext
from relaygate.errors import InvalidRequest, UpstreamError
from relaygate.providers.base import Adaptor, SurfaceAdaptor, Target, parse_json_object
from relaygate.providers.surfaces import SurfaceCall
from relaygate.relay.attempt import build_request, fetch, run_attempts
from relaygate.relay.envelope import envelope_on, plain_openai_error, wrap_ok
from relaygate.relay.passthrough import Reply, exchange
from relaygate.relay.pipeline import (
    answer_failure,
    authenticate,
    end_request,
    record,
    run_watched,
)
from relaygate.relay.present import ERROR_RENDER
from relaygate.relay.responses_state import Stored, owned_response
from relaygate.state import AppState

__all__ = ["FORMAT", "error_shape", "on_response", "send_answer", "surface_of"]

#: the client format's name in RELAYGATE_ENVELOPE_FORMATS
FORMAT = "responses"


def error_shape(state: AppState, ctx: RelayContext) -> None:
    """With the envelope on but ``responses`` left out of RELAYGATE_ENVELOPE_FORMATS,
    errors are plain OpenAI ones (with OpenAI's statuses, as the other formats')."""
    if state.settings.envelope and not envelope_on(state.settings, FORMAT):
        ctx.put(ERROR_RENDER, plain_openai_error)


def surface_of(adaptor: Adaptor) -> SurfaceAdaptor:
    if not isinstance(adaptor, SurfaceAdaptor):  # routing keeps such channels out
        raise UpstreamError("This channel's provider cannot serve this endpoint.")
    return adaptor


async def send_answer(
    state: AppState, req: Request, ctx: RelayContext, target: Target, obj: dict[str, Any]
) -> None:
    """A whole native answer: the row recorded, then the body (with the envelope when
    RELAYGATE_ENVELOPE_FORMATS says so)."""
    ctx.claim(target)  # hedged: the first answer wins
    ctx.first_byte_at = time.perf_counter()
    ctx.finished = True
    record(state, ctx)
    body = wrap_ok(obj, envelope_on(state.settings, FORMAT))
    await send_json(req.send, 200, body, req.request_id)


async def on_response(state: AppState, req: Request, resp_id: str, sub: str) -> None:
    ctx = RelayContext(req.request_id, "responses", client_ip=req.client_ip)
    error_shape(state, ctx)
    try:
        authenticate(state, req, ctx)
        assert ctx.user is not None
        stored = await owned_response(state, resp_id, ctx.user.id)
        ctx.model = stored.record.model
        if stored.mode == "translated":
            await _answer_local(state, req, ctx, stored, sub)
            return
        candidates = state.router.channel_candidate(stored.record.channel_id, None)
        method = req.method

        async def on_json(obj: dict[str, Any], target: Target) -> None:
            if method == "DELETE" and obj.get("deleted") is True:
                await state.repo.objects.update(resp_id, deleted=True)

        query = req.scope.get("query_string", b"")
        sc = SurfaceCall(method, f"/responses/{resp_id}{sub}", query, set_model=False)
        if method == "POST":
            sc.json = {}

        same = envelope_on(state.settings, FORMAT) == state.settings.envelope
        streamed = b"stream=true" in query.lower()

        async def call(adaptor: Adaptor, target: Target) -> None:
            if same or streamed:  # the envelope as for the OpenAI endpoints
                await exchange(state, req, ctx, adaptor, target, sc, Reply(on_json=on_json))
                return
            ureq = build_request(target, lambda: surface_of(adaptor).surface_request(target, sc))
            obj = parse_json_object(await fetch(state, adaptor, target, ureq))
            await on_json(obj, target)
            await send_answer(state, req, ctx, target, obj)

        await run_watched(req, ctx, lambda: run_attempts(state, ctx, candidates, call))
    except (Exception, asyncio.CancelledError) as exc:
        await answer_failure(state, req, ctx, exc)
    finally:
        await end_request(state, req, ctx)


async def _answer_local(
    state: AppState, req: Request, ctx: RelayContext, stored: Stored, sub: str
) -> None:
    """A translated response's calls, answered from the gateway's copy."""
    resp_id = stored.record.id
    if req.method == "POST":  # cancel: only background responses can be cancelled
        raise InvalidRequest(
            "Only responses created with background=true can be cancelled.", param="response_id"
        )
    if req.method == "DELETE":
        await state.repo.objects.update(resp_id, deleted=True)
        out: dict[str, Any] = {"id": resp_id, "object": "response", "deleted": True}
    elif sub == "/input_items":
        out = _items_page(stored.input, req)
    else:
        out = stored.response
    ctx.first_byte_at = ctx.started
    ctx.finished = True
    record(state, ctx)
    await send_json(
        req.send, 200, wrap_ok(out, envelope_on(state.settings, FORMAT)), req.request_id
    )


def _items_page(items: list[dict[str, Any]], req: Request) -> dict[str, Any]:
    query = dict(parse_qsl(req.scope.get("query_string", b"").decode("latin-1")))
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("`order` must be asc or desc.", param="order")
    limit_text = query.get("limit", "20")
    if not limit_text.isascii() or not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
        raise InvalidRequest("`limit` must be an integer from 1 to 100.", param="limit")
    seq = items if order == "asc" else list(reversed(items))
    after = query.get("after")
    if after is not None:
        ids = [i.get("id") for i in seq]
        seq = seq[ids.index(after) + 1 :] if after in ids else seq
    page = seq[: int(limit_text)]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": len(seq) > len(page),
    }
