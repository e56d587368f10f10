"""Stages shared by every relay endpoint: authenticate, parse, watch the client,
fail, record and finish (request log + access log). ``relay/chat.py`` and
``relay/embeddings.py`` compose them; the order is the request lifecycle in
``docs/architecture.md``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from relaygate.asgi import (
    BodyEncodingError,
    BodyLimitExceeded,
    BodyReadTimeout,
    Request,
    UnsupportedContentEncoding,
    read_body,
)
from relaygate.context import RelayContext, settle_attempts
from relaygate.errors import (
    AuthError,
    BodyTooLarge,
    InvalidRequest,
    RelayError,
    ServiceUnavailable,
    send_error,
)
from relaygate.online.stage import ONLINE
from relaygate.relay.attempt import Call, run_attempts
from relaygate.relay.online import ground
from relaygate.relay.present import ERROR_RENDER
from relaygate.relay.stream import OPEN_WRITER, error_payload
from relaygate.routing.order import affinity_key
from relaygate.state import AppState

__all__ = [
    "answer_failure",
    "authenticate",
    "end_request",
    "extract_key",
    "fail",
    "finish",
    "internal_error",
    "json_object",
    "parse_json_body",
    "read_request_body",
    "record",
    "relay_request",
    "require_model",
    "run_watched",
    "shutdown_cut",
    "take_stream_flags",
]

log = logging.getLogger("relaygate")


def extract_key(headers: dict[bytes, bytes]) -> str:
    auth = headers.get(b"authorization")
    if auth is not None:
        scheme, _, token = auth.strip().partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token or b" " in token:
            raise AuthError(
                "Malformed Authorization header; send `Authorization: Bearer <your key>`.",
                code="invalid_request_error",
            )
        return token.decode("latin-1")
    for name in (b"api-key", b"x-api-key"):
        value = headers.get(name)
        if value is not None:
            value = value.strip()
            if not value:
                break
            return value.decode("latin-1")
    raise AuthError(
        "No API key provided. Send your key as `Authorization: Bearer <key>`.",
        code="no_api_key",
    )


def authenticate(state: AppState, req: Request, ctx: RelayContext) -> None:
    key_text = extract_key(req.headers)
    key, user = state.catalog.authenticate(state.secrets.hash_key(key_text))
    if key.kind == "admin":
        raise AuthError("Admin tokens cannot call the model API; use an API key.")
    ctx.key, ctx.user = key, user


async def parse_json_body(state: AppState, req: Request) -> dict[str, Any]:
    raw = await read_request_body(state, req)
    if not raw.strip():
        raise InvalidRequest("The request body is empty; send a JSON object.")
    return json_object(raw)


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body parsed as a JSON object, or the client's error."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


async def read_request_body(state: AppState, req: Request) -> bytes:
    """The request body within the gateway's limits; each way it can fail is the
    client's error with its own status (413 size, 408 stall, 415 encoding, 400 gzip)."""
    s = state.settings
    try:
        raw = await read_body(req, s.max_body_bytes, s.body_timeout)
    except BodyLimitExceeded as exc:
        raise BodyTooLarge(
            f"The request body is larger than the {exc.limit // 1024} KiB this gateway accepts."
        ) from None
    except BodyReadTimeout as exc:
        raise InvalidRequest(
            f"The request body did not arrive: {exc}.", code="request_timeout", status=408
        ) from None
    except UnsupportedContentEncoding as exc:
        raise InvalidRequest(
            f"The request body's {exc}.", code="unsupported_content_encoding", status=415
        ) from None
    except BodyEncodingError as exc:
        raise InvalidRequest(f"The request body could not be decompressed: {exc}.") from None
    return raw


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("`model` is required and must be a string.", param="model")
    return model


def take_stream_flags(ctx: RelayContext, body: dict[str, Any]) -> None:
    """Check ``stream`` and ``stream_options.include_usage`` (chat, completions) and set
    ``ctx.stream`` / ``ctx.include_usage`` from them."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("`stream` must be true or false.", param="stream")
    opts = body.get("stream_options")
    if opts is not None:
        if not isinstance(opts, dict):
            raise InvalidRequest("`stream_options` must be an object.", param="stream_options")
        usage = opts.get("include_usage")
        if usage is not None and not isinstance(usage, bool):
            raise InvalidRequest(
                "`stream_options.include_usage` must be true or false.",
                param="stream_options.include_usage",
            )
    ctx.stream = stream is True
    ctx.include_usage = ctx.stream and isinstance(opts, dict) and opts.get("include_usage") is True


def internal_error(ctx: RelayContext, exc: BaseException) -> RelayError:
    """An unexpected exception: logged with the request id, answered as a 500."""
    log.error(
        "unexpected error while relaying",
        exc_info=exc,
        extra={"request_id": ctx.request_id, "endpoint": ctx.endpoint},
    )
    return RelayError(
        f"The gateway failed unexpectedly; the operator can find request id "
        f"{ctx.request_id} in the logs."
    )


#: Requests still running after this long get a task watching for the client going
#: away. Watching every request from the start cost ~20 µs of CPU each (a task, an
#: event wait, a cancellation) — 15 % of a fast relayed request — while a client
#: that leaves within 50 ms costs the upstream at most 50 ms of work.
WATCH_AFTER = 0.05


async def run_watched(req: Request, ctx: RelayContext, work: Callable[[], Awaitable[None]]) -> None:
    """Run ``work`` while watching for the client going away; on disconnect the
    work (and with it the upstream request) is cancelled at once. The watch
    starts ``WATCH_AFTER`` seconds in (a disconnect before that is seen then)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        while True:
            message = await req.receive()
            if message["type"] == "http.disconnect":
                # ctx.finished tells "response complete" (servers report that as a
                # disconnect too) from "client gone"
                if not ctx.finished:
                    ctx.client_disconnected = True
                    task.cancel()
                return

    def start_watching() -> None:
        nonlocal watcher
        watcher = loop.create_task(watch())

    timer = loop.call_later(WATCH_AFTER, start_watching)
    try:
        await work()
    except asyncio.CancelledError:
        if ctx.client_disconnected and task.uncancel() == 0:
            return
        raise
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


async def fail(state: AppState, req: Request, ctx: RelayContext, err: RelayError) -> None:
    """Answer with ``err`` (the response has not started); the row is recorded first."""
    s = state.settings
    render = ctx.get(ERROR_RENDER)  # another inbound format's error shape (relay/present.py)
    ctx.error_code = err.code
    ctx.status = err.http_status(s.openai_status_codes or render is not None)
    ctx.finished = True
    record(state, ctx)
    await send_error(
        req.send,
        err,
        req.request_id,
        envelope=s.envelope,
        openai_statuses=s.openai_status_codes,
        render=render,
    )


def record(state: AppState, ctx: RelayContext) -> None:
    """Record the request-log row — called just before the final bytes of the answer
    are sent, so a worker killed after the client got its answer has recorded it."""
    if ctx.recorded:
        return
    ctx.recorded = True
    if ctx.attempts is not None:
        settle_attempts(ctx)  # the serving attempt's outcome, for the row's chain
    state.billing.settle(ctx)  # the charge is fixed now, so the row carries it
    if state.usage_log is not None and ctx.key is not None and ctx.endpoint != "models":
        state.usage_log.record(ctx)  # model listing is not a billable request
    if state.metrics is not None:
        state.metrics.observe(ctx)  # once per request, here (metrics/observe.py)


def finish(state: AppState, req: Request, ctx: RelayContext) -> None:
    """The request is over: make sure its row is recorded, write the access-log line."""
    record(state, ctx)
    if state.access_log is not None:
        state.access_log.record(
            ctx.request_id,
            req.method,
            req.path,
            ctx.logged_status,
            ctx.error_code,
            ctx.model,
            ctx.target.channel_id if ctx.target else None,
            ctx.stream,
            ctx.elapsed_ms(),
            ctx.ttft_ms(),
            ctx.user.id if ctx.user else None,
            ctx.key.id if ctx.key else None,
        )


def shutdown_cut() -> RelayError:
    """Why a request was cut when the server stopped (logged and sent to the client)."""
    return ServiceUnavailable(
        "The gateway is shutting down and cut this request; retry it.", code="stream_cut"
    )


Validate = Callable[[RelayContext, dict[str, Any]], None]
MakeCall = Callable[[dict[str, Any]], Call]
Parse = Callable[[AppState, Request], Awaitable[dict[str, Any]]]


async def relay_request(
    state: AppState,
    req: Request,
    ctx: RelayContext,
    validate: Validate,
    make_call: MakeCall,
    *,
    parse: Parse = parse_json_body,
    surface: str | None = None,
) -> None:
    """The stages every relayed endpoint shares: authenticate → parse → ``validate``
    → prepare → route → billing.reserve → before → attempt loop (``make_call(body)``
    makes one upstream attempt; ``routing/`` orders the candidates, sticky to the
    request's affinity key) → after → log (billing.settle fixes the charge just
    before the request-log row is recorded). Every failure ends
    as a JSON error (or, once a stream has started, as its error event); an
    unexpected exception is a logged 500, never a plain-text one.

    ``parse`` reads the body (JSON by default; a multipart form's text fields for uploads,
    ``relay/surface.py``); ``surface`` keeps the channels that serve that part of the API
    (``providers/surfaces.py``)."""
    chain = state.filters
    try:
        authenticate(state, req, ctx)
        body = await parse(state, req)
        validate(ctx, body)
        if chain.prepare_stages:
            await chain.prepare(ctx, body)
        assert ctx.key is not None and ctx.user is not None and ctx.model is not None
        router = state.router
        affinity = affinity_key(router.affinity, req.headers, body, ctx.key.id)
        group = ctx.user.group_name
        if surface is None:
            candidates = router.candidates(ctx.model, ctx.key, group, affinity)
        else:
            candidates = router.surface_candidates(surface, ctx.model, ctx.key, group, affinity)
        await state.billing.reserve(ctx, body)
        await chain.before(ctx, body)
        if ctx.get(ONLINE) is not None:  # an online request's search (relay/online.py)
            await ground(state, req, ctx, body)
        call = make_call(body)
        await run_watched(req, ctx, lambda: run_attempts(state, ctx, candidates, call, affinity))
    except (Exception, asyncio.CancelledError) as exc:
        await answer_failure(state, req, ctx, exc)
    finally:
        await end_request(state, req, ctx)


async def answer_failure(
    state: AppState, req: Request, ctx: RelayContext, exc: BaseException
) -> None:
    """A relayed request failed: a ``RelayError`` is answered as itself, anything else as a
    logged 500 ``internal_error``, a cancellation (the server stops) as 503 ``stream_cut``
    and then raised again. A response already started has ended with its own error event
    (or a cut connection): nothing more is sent."""
    if isinstance(exc, asyncio.CancelledError):
        if not ctx.started_response and not ctx.client_disconnected:
            await fail(state, req, ctx, shutdown_cut())  # the server stops: say so
        elif not ctx.client_disconnected:
            await _end_open_stream(state, ctx, shutdown_cut())
        raise exc
    err = exc if isinstance(exc, RelayError) else internal_error(ctx, exc)
    if not ctx.started_response:
        await fail(state, req, ctx, err)
    elif not ctx.client_disconnected:
        await _end_open_stream(state, ctx, err)


async def _end_open_stream(state: AppState, ctx: RelayContext, err: RelayError) -> None:
    """A stream opened before the upstream call (an online request's notices) whose
    request then failed: it ends with the error event and ``[DONE]``."""
    out = ctx.get(OPEN_WRITER)
    if out is None or out.closed:
        return
    ctx.status = err.http_status(state.settings.openai_status_codes)
    ctx.error_code = err.code
    ctx.finished = True
    record(state, ctx)
    try:
        await out.close([error_payload(err)])
    except Exception:  # the client is gone
        out.stop_keepalive()


async def end_request(state: AppState, req: Request, ctx: RelayContext) -> None:
    """Whatever happened: record the row (which settles the charge, locally counted usage
    too), let the after-filters see the final usage, write the access-log line."""
    record(state, ctx)
    await state.filters.after(ctx)
    finish(state, req, ctx)
