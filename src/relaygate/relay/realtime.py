"""``/v1/realtime`` over WebSocket (issue 14): a Realtime API session relayed to a channel
that serves it.

Handshake. The client's key comes from ``Authorization: Bearer`` (the openai SDK), ``api-key``
/ ``x-api-key``, or the ``openai-insecure-api-key.<key>`` subprotocol browsers use; the model
from ``?model=``. The session is routed like chat, keeping the channels whose surfaces include
``realtime`` (``providers/surfaces.py``; the key's model list applies), the balance must cover
something (``Billing.require_funds``) and the before-filters (limits) run once for the session.
The client socket is then accepted (with the ``realtime`` subprotocol when it offered it, and
``x-request-id``) before the upstream is connected, so that failing over between channels
cannot outlast the client's own open timeout.

In flight. A session counts as one request against ``RELAYGATE_MAX_INFLIGHT`` for its whole
life; over the bound it is refused (``service_unavailable``, 1013) before authentication.

Refusals. Like OpenAI, the gateway accepts the socket and tells why in a Realtime ``error``
event (``invalid_api_key``, ``model_not_found``, ``insufficient_quota``, ...), then closes it:
1008 (policy violation) for the client's errors, 1013 (try again later) for rate limits and an
unavailable or busy service, 1011 for an upstream that could not be reached. A refusal after
authentication is recorded as a request-log row with its status, like an HTTP error.

Upstream. ``wss://`` (or ``ws://``) + the channel's base URL + ``/realtime?model=<upstream
model>``, with the channel's authentication headers and the client's ``OpenAI-Beta``. The
attempt loop (``relay/attempt.py``) fails over to the next channel while no upstream has
accepted; a channel's concurrency slot is held for the whole session.

Session. ``relay/realtime_pump.py`` relays the frames and bills each ``response.done`` as one
request-log row; the attempt's shaping rules (``relay/shaping.py`` ``attempt_rules``) go to
``relay/realtime_events.py`` ``ClientFrames``, which shapes the client's frames. When the
client leaves, the upstream socket is closed (1000; responses in progress are cancelled and
charged first); when the upstream closes, the client gets its close code (1011 for an
abnormal end, after an ``error`` event); a server shutdown closes the client with 1012
(uvicorn). Nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any
from urllib.parse import parse_qs, quote

from relaygate.asgi import Receive, Request, Scope, Send
from relaygate.context import RelayContext
from relaygate.errors import (
    InvalidRequest,
    RateLimited,
    RelayError,
    ServiceUnavailable,
    UpstreamError,
    parse_retry_after,
)
from relaygate.providers.base import Adaptor, SurfaceAdaptor, Target
from relaygate.providers.surfaces import SurfaceCall
from relaygate.relay.attempt import build_request, run_attempts
from relaygate.relay.pipeline import authenticate, finish, internal_error, record
from relaygate.relay.realtime_events import ClientFrames
from relaygate.relay.realtime_pump import Ending, error_event, relay_frames
from relaygate.relay.realtime_safety import RealtimeSafety
from relaygate.relay.shaping import attempt_rules
from relaygate.routing.router import Candidate
from relaygate.state import AppState
from relaygate.transport.ws_session import Refused, open_session

__all__ = ["close_code", "handle_realtime", "upstream_url"]

log = logging.getLogger("relaygate")

#: the subprotocol that carries a browser's key (``openai-insecure-api-key.<key>``)
_KEY_PROTOCOL = "openai-insecure-api-key."
_PASSED_HEADERS = (b"openai-beta",)


def close_code(err: RelayError, status: int) -> int:
    """The WebSocket close code a refused or failed session ends with."""
    if isinstance(err, RateLimited | ServiceUnavailable) or status in (429, 503):
        return 1013
    if status >= 500:
        return 1011
    return 1008


def upstream_url(url: str) -> str:
    """An ``http(s)://`` URL as the WebSocket URL of the same place."""
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


class _Client:
    """The client's socket: accepted at most once, closed at most once."""

    __slots__ = ("accepted", "closed", "protocols", "request_id", "send")

    def __init__(self, send: Send, protocols: list[str], request_id: str) -> None:
        self.send = send
        self.protocols = protocols
        self.request_id = request_id
        self.accepted = False
        self.closed = False

    async def accept(self) -> None:
        if self.accepted:
            return
        self.accepted = True
        message: dict[str, Any] = {
            "type": "websocket.accept",
            "headers": [(b"x-request-id", self.request_id.encode())],
        }
        if "realtime" in self.protocols:
            message["subprotocol"] = "realtime"
        await self.send(message)

    async def refuse(self, err: RelayError, status: int) -> None:
        """Tell the client why in an ``error`` event, then close."""
        try:
            await self.accept()
            await self.send({"type": "websocket.send", "text": error_event(err)})
        except OSError:
            self.closed = True  # gone already
        await self.close(close_code(err, status), err.code)

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError, RuntimeError):  # gone already
            await self.send({"type": "websocket.close", "code": code, "reason": reason[:120]})


def _client_key(req: Request, protocols: list[str]) -> None:
    """A browser's key from its subprotocols, as an ``Authorization`` header."""
    if any(name in req.headers for name in (b"authorization", b"api-key", b"x-api-key")):
        return
    for proto in protocols:
        if proto.startswith(_KEY_PROTOCOL) and len(proto) > len(_KEY_PROTOCOL):
            req.headers[b"authorization"] = b"Bearer " + proto[len(_KEY_PROTOCOL) :].encode()
            return


def _model(scope: Scope) -> str:
    query = parse_qs(bytes(scope.get("query_string") or b"").decode("latin-1"))
    models = query.get("model") or []
    if not models or not models[0].strip():
        raise InvalidRequest(
            "Name the model in the URL: `/v1/realtime?model=<model>`.", param="model"
        )
    return models[0]


async def handle_realtime(state: AppState, scope: Scope, receive: Receive, send: Send) -> None:
    """One ``/v1/realtime`` WebSocket, counted as one in-flight request for its whole life
    (``RELAYGATE_MAX_INFLIGHT``): when the worker is full it is accepted, told why in a
    ``service_unavailable`` error event and closed with 1013 (try again later), before
    authentication and without a request-log row, as HTTP requests are shed."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    s = state.settings
    req = Request({**scope, "method": "GET"}, receive, send, s.trust_request_id)
    protocols = [p for p in scope.get("subprotocols") or () if isinstance(p, str)]
    client = _Client(send, protocols, req.request_id)
    if state.inflight >= s.max_inflight:
        state.shed += 1
        await client.refuse(ServiceUnavailable("The gateway is at capacity; retry shortly."), 503)
        return
    state.inflight += 1
    try:
        await _serve(state, scope, req, client, protocols)
    finally:
        state.inflight -= 1


async def _serve(
    state: AppState, scope: Scope, req: Request, client: _Client, protocols: list[str]
) -> None:
    ctx = RelayContext(req.request_id, "realtime", client_ip=req.client_ip, stream=True)
    began = False  # the before-filters ran: the after-filters must too
    try:
        try:
            if state.draining:
                raise ServiceUnavailable("The gateway is shutting down; reconnect shortly.")
            _client_key(req, protocols)
            authenticate(state, req, ctx)
            ctx.model = _model(scope)
            assert ctx.key is not None and ctx.user is not None
            candidates = state.router.surface_candidates(
                "realtime", ctx.model, ctx.key, ctx.user.group_name
            )
            await state.billing.require_funds(ctx)
            began = True
            await state.filters.before(ctx, {"model": ctx.model})
        except RelayError as err:
            await _refused(state, ctx, client, err)
            return
        await client.accept()
        await _session(state, req, ctx, client, candidates)
    except asyncio.CancelledError:
        await client.close(1012, "server shutting down")
        raise
    except Exception as exc:
        failure = internal_error(ctx, exc)
        ctx.status, ctx.error_code = 500, failure.code
        await client.refuse(failure, 500)
    finally:
        record(state, ctx)
        if began:
            await state.filters.after(ctx)
        finish(state, req, ctx)


async def _refused(state: AppState, ctx: RelayContext, client: _Client, err: RelayError) -> None:
    status = err.http_status(state.settings.openai_status_codes)
    ctx.status, ctx.error_code, ctx.finished = status, err.code, True
    if ctx.key is None:
        ctx.recorded = True  # no key, no row (as for HTTP)
    await client.refuse(err, status)


async def _session(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    client: _Client,
    candidates: list[Candidate],
) -> None:
    """Connect upstream (failing over while none accepted) and relay the session."""
    endings: list[Ending] = []
    passed = tuple(
        (name.decode(), value.decode("latin-1"))
        for name, value in req.headers.items()
        if name in _PASSED_HEADERS
    )

    async def call(adaptor: Adaptor, target: Target) -> None:
        endings.append(await _attempt(state, req, ctx, adaptor, target, passed))

    try:
        await run_attempts(state, ctx, candidates, call)
    except RelayError as err:
        ctx.status = err.http_status(state.settings.openai_status_codes)
        ctx.error_code = err.code
        await client.refuse(err, ctx.status)
        return
    ending = endings[-1]
    if ending.responses and ending.error is None and ending.by == "client":
        ctx.recorded = True  # its responses are its rows
    if ending.by == "client":
        client.closed = True  # it left: nothing more to send
        return
    if ending.error is not None:
        ctx.status = ending.error.http_status(state.settings.openai_status_codes)
        ctx.error_code = ending.error.code
        await client.refuse(ending.error, ctx.status)
        return
    if ending.code == 1011:
        ctx.status, ctx.error_code = 502, "upstream_closed"
        lost = UpstreamError("The upstream provider's realtime session ended unexpectedly.")
        await client.refuse(lost, 502)
        return
    if ending.responses:
        ctx.recorded = True
    await client.close(ending.code, ending.reason)


async def _attempt(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    adaptor: Adaptor,
    target: Target,
    passed: tuple[tuple[str, str], ...],
) -> Ending:
    if not isinstance(adaptor, SurfaceAdaptor):  # routing keeps such channels out
        raise UpstreamError("This channel's provider cannot serve realtime sessions.")
    query = b"model=" + quote(target.upstream_model, safe="").encode()
    call = SurfaceCall("GET", "/realtime", query=query, headers=passed)
    ureq = build_request(target, lambda: adaptor.surface_request(target, call))
    ureq.url = upstream_url(ureq.url)
    ureq.headers.pop("Content-Type", None)
    beta = any(name == "openai-beta" and "realtime=v1" in value for name, value in passed)
    frames = ClientFrames(attempt_rules(state, ctx, target), beta)
    try:
        async with open_session(state.settings, ureq) as up:
            ctx.claim(target)
            ctx.first_byte_at = time.perf_counter()
            safety = RealtimeSafety(state.safety, ctx)
            return await relay_frames(state, ctx, req.receive, req.send, up, frames, safety)
    except Refused as refused:
        err = adaptor.error(target, refused.status, refused.body)
        err.upstream_status = refused.status
        if refused.status in (429, 503):
            wait = parse_retry_after(refused.header("Retry-After"))
            if wait is not None:
                err.retry_after = wait
        raise err from None
