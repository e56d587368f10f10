"""OpenAI's stateful endpoints — files, fine-tuning jobs, assistants and threads (runs,
streaming runs too), vector stores, batches, videos — passed through to a channel that
serves them, with every object kept to its owner and its channel.

* An object created through a channel is recorded (``storage/objects.py``) with its user,
  key and channel. Every later call that names it — in the path, or in the body
  (``relay/object_paths.py`` ``references``) — must come from its owner (anyone else gets
  the same 404 as for an id that does not exist) and goes to that channel only.
* A creation that names no object goes to the channels serving that surface (by model when
  the body names one).
* The top-level lists (``GET /v1/files``, ``/v1/assistants``, …) are answered from the
  record: only the caller's objects, each as last seen through the gateway, paged like
  OpenAI's lists. Lists inside an object (a thread's messages, a job's events) are the
  upstream's, since the object is the caller's.
* Work an upstream reports done later is charged when the gateway sees it done
  (``relay/object_billing.py``): a fine-tuning job's training tokens, a run's or a
  batch's tokens, a video's seconds — once per object.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, cast

import orjson

from relaygate.asgi import Request, ok_body, send_json
from relaygate.context import RelayContext
from relaygate.errors import (
    InvalidRequest,
    ModelNotFound,
    NotFound,
    ServiceUnavailable,
)
from relaygate.providers.base import Adaptor, SurfaceAdaptor, Target
from relaygate.providers.surfaces import SurfaceCall
from relaygate.relay import object_billing as charges
from relaygate.relay.attempt import Call, build_request, fetch, run_attempts
from relaygate.relay.multipart import Form, read_form
from relaygate.relay.object_paths import ObjectPath, parse_path, references
from relaygate.relay.passthrough import Reply, exchange
from relaygate.relay.pipeline import (
    answer_failure,
    authenticate,
    end_request,
    json_object,
    read_request_body,
    record,
    run_watched,
)
from relaygate.routing.router import Candidate
from relaygate.state import AppState
from relaygate.storage.objects import ObjectRecord

__all__ = ["handle_object", "parse_path"]

log = logging.getLogger("relaygate")

_LIST_MAX = 100
#: ``limit`` of a list: ASCII digits (``int`` takes "²" for a digit, then fails)
_LIMIT = re.compile(r"[0-9]{1,3}")
#: the methods of OpenAI's object API (no PUT or PATCH anywhere): others are not relayed
_METHODS = ("GET", "POST", "DELETE")
_PASSED_HEADERS = (b"openai-beta",)


def _not_found(obj_id: str) -> NotFound:
    return NotFound(f"No such object: `{obj_id}`.", code="object_not_found")


async def owned(state: AppState, obj_id: str, user_id: int) -> ObjectRecord:
    """The caller's live object ``obj_id``; another user's, a deleted one and an unknown
    one all get the same 404."""
    rec = await state.repo.objects.get(obj_id)
    if rec is None or rec.user_id != user_id or rec.deleted:
        raise _not_found(obj_id)
    return rec


async def _read(state: AppState, req: Request, method: str) -> tuple[dict[str, Any], Form | None]:
    """The request body: a JSON object, a multipart form (its text fields), or none."""
    if method not in ("POST", "PUT", "PATCH"):
        return {}, None
    ctype = req.headers.get(b"content-type", b"").lower()
    s = state.settings
    if ctype.startswith(b"multipart/"):
        form = await read_form(req, s.max_upload_bytes, s.body_timeout)
        fields = {p.name: p.text() for p in form.parts if p.filename is None}
        return fields, form
    raw = await read_request_body(state, req)
    if not raw.strip():
        return {}, None
    return json_object(raw), None


async def _list(state: AppState, req: Request, ctx: RelayContext, op: ObjectPath) -> None:
    """A top-level list, from the record: the caller's objects only."""
    query = _query(req)
    limit_text = query.get("limit", "20")
    if not _LIMIT.fullmatch(limit_text) or not 1 <= int(limit_text) <= _LIST_MAX:
        raise InvalidRequest(f"`limit` must be an integer from 1 to {_LIST_MAX}.", param="limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("`order` must be asc or desc.", param="order")
    assert ctx.user is not None
    page, more = await state.repo.objects.list(
        ctx.user.id,
        op.kind,
        limit=int(limit_text),
        after=query.get("after"),
        before=query.get("before"),
        ascending=order == "asc",
    )
    purpose = query.get("purpose")
    data: list[Any] = []
    for rec in page:
        try:
            obj = orjson.loads(rec.data) if rec.data else {"id": rec.id}
        except orjson.JSONDecodeError:
            obj = {"id": rec.id}
        if purpose is not None and isinstance(obj, dict) and obj.get("purpose") != purpose:
            continue
        data.append(obj)
    out = {
        "object": "list",
        "data": data,
        "first_id": page[0].id if page else None,
        "last_id": page[-1].id if page else None,
        "has_more": more,
    }
    ctx.first_byte_at = ctx.started
    ctx.finished = True
    record(state, ctx)
    await send_json(req.send, 200, ok_body(out, state.settings.envelope), req.request_id)


def _query(req: Request) -> dict[str, str]:
    from urllib.parse import parse_qsl

    raw = req.scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


async def _candidates(
    state: AppState,
    ctx: RelayContext,
    op: ObjectPath,
    body: dict[str, Any],
    root: ObjectRecord | None,
) -> tuple[list[Candidate], list[ObjectRecord]]:
    """Where the call may go, and the caller's objects its body refers to."""
    assert ctx.user is not None and ctx.key is not None
    channel = root.channel_id if root is not None else None
    refs: list[ObjectRecord] = []
    for obj_id in sorted(references(body)):
        rec = await owned(state, obj_id, ctx.user.id)
        if channel is not None and rec.channel_id != channel:
            raise InvalidRequest(
                f"`{obj_id}` lives on another upstream channel than the other objects of this "
                "request; objects of different channels cannot be used together.",
                code="object_channel_mismatch",
            )
        channel = rec.channel_id
        refs.append(rec)
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise InvalidRequest("`model` must be a non-empty string.", param="model")
    key = ctx.key
    if model is not None and key.models is not None and model not in key.models:
        raise ModelNotFound(f"The model `{model}` is not allowed for this API key.", param="model")
    ctx.model = model or (root.model if root is not None else None)
    router = state.router
    if channel is not None:
        return router.channel_candidate(channel, model), refs
    # a user's new objects stay together inside a priority tier (sticky per user), so a
    # thread and the assistant it runs with are not put on two channels by the weights
    sticky = f"objects:{ctx.user.id}"
    if model is not None:
        group = ctx.user.group_name
        return router.surface_candidates(op.surface, model, key, group, sticky), refs
    return router.surface_channels(op.surface, ctx.user.group_name, sticky), refs


def _charged_later(op: ObjectPath) -> bool:
    """A POST here starts work charged when it is done (``relay/object_billing.py``)."""
    if op.creates_run:
        return True
    if op.run_id is not None:  # tool outputs resume a run; cancelling one costs nothing
        return op.sub[-1] == "submit_tool_outputs"
    if op.root is None:
        return op.kind in ("fine_tuning.job", "batch", "video")
    return op.kind == "video" and op.sub == ("remix",)


async def handle_object(state: AppState, req: Request, op: ObjectPath) -> None:
    endpoint = op.collection.replace("/", ".")[:32]
    ctx = RelayContext(req.request_id, endpoint, client_ip=req.client_ip)
    chain = state.filters
    form: Form | None = None
    try:
        authenticate(state, req, ctx)
        assert ctx.user is not None
        method = req.method
        if op.root is None and method == "GET" and op.collection != "threads/runs":
            await _list(state, req, ctx, op)
            return
        if method not in _METHODS or (op.root is None and method != "POST"):
            raise InvalidRequest(
                f"{method} is not allowed on {req.path}.", code="method_not_allowed", status=405
            )
        root = await owned(state, op.root, ctx.user.id) if op.root is not None else None
        body, form = await _read(state, req, method)
        candidates, refs = await _candidates(state, ctx, op, body, root)
        if method == "POST" and _charged_later(op):
            await state.billing.require_funds(ctx)
        await chain.before(ctx, body)
        reply = charges.reply_for(state, ctx, op, method, body, root, refs, form)
        call = _make_call(state, req, ctx, op, body, form, reply)
        await run_watched(req, ctx, lambda: run_attempts(state, ctx, candidates, call))
    except (Exception, asyncio.CancelledError) as exc:
        await answer_failure(state, req, ctx, exc)
    finally:
        if form is not None:
            form.close()
        await end_request(state, req, ctx)


def _make_call(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    op: ObjectPath,
    body: dict[str, Any],
    form: Form | None,
    reply: Reply,
) -> Call:
    passed = tuple(
        (name.decode("latin-1"), req.headers[name].decode("latin-1"))
        for name in _PASSED_HEADERS
        if name in req.headers
    )
    query = req.scope.get("query_string", b"")
    method = req.method

    async def call(adaptor: Adaptor, target: Target) -> None:
        set_model = bool(target.upstream_model)
        if form is not None:
            if set_model and form.text("model") is not None:
                form.set_text("model", target.upstream_model)
            ctype, length, chunks = form.encode()
            sc = SurfaceCall(
                method, op.upstream, query, stream=chunks, content_type=ctype, length=length
            )
        elif method in ("POST", "PUT", "PATCH"):
            sc = SurfaceCall(method, op.upstream, query, json=body, set_model=set_model)
        else:
            sc = SurfaceCall(method, op.upstream, query)
        sc.headers = passed
        try:
            await exchange(state, req, ctx, adaptor, target, sc, reply)
        except charges.Unrecorded as lost:
            await _undo(state, adaptor, target, op, lost.obj_id, passed)
            raise ServiceUnavailable(
                "The gateway could not record the new object (its database did not answer), "
                "so it was removed upstream; retry shortly."
            ) from None

    return call


async def _undo(
    state: AppState,
    adaptor: Adaptor,
    target: Target,
    op: ObjectPath,
    obj_id: str,
    headers: tuple[tuple[str, str], ...],
) -> None:
    """Remove (or cancel) an object created upstream that could not be recorded."""
    method, path = charges.undo_path(op, obj_id)
    call = SurfaceCall(method, path, headers=headers)
    try:
        surface = cast("SurfaceAdaptor", adaptor)
        ureq = build_request(target, lambda: surface.surface_request(target, call))
        await fetch(state, adaptor, target, ureq)
    except Exception:
        log.exception(
            "an upstream object could not be recorded nor removed",
            extra={"object_id": obj_id, "channel_id": target.channel_id},
        )
