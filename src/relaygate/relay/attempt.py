"""The one attempt loop: every relay endpoint reaches the upstream through here.

It walks the routing candidates in order. A failure before the client saw any
byte — a connection error, a timeout, an upstream 5xx or 429 — moves on to the
next candidate (each channel at most once per request), up to
``RELAYGATE_MAX_ATTEMPTS``; a 4xx caused by the request itself is not retried.
Circuit breakers, per-channel timeouts and hedging build on this (routing issue).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import orjson

from relaygate.context import Attempt, RelayContext
from relaygate.errors import (
    InvalidRequest,
    RateLimited,
    RelayError,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    parse_retry_after,
)
from relaygate.providers.base import Adaptor, Target, UpstreamRequest
from relaygate.state import AppState
from relaygate.storage.records import ChannelRecord
from relaygate.transport.base import UpstreamResponse

__all__ = ["build_request", "fetch", "run_attempts", "upstream_failure"]

Call = Callable[[Adaptor, Target], Awaitable[None]]


def _retryable(err: RelayError) -> bool:
    if isinstance(err, UpstreamRejected):
        return False  # caused by the request: another channel would refuse it too
    if isinstance(err, UpstreamError | UpstreamTimeout):
        return True  # connect errors, timeouts, 5xx, bad channel credentials
    return isinstance(err, RateLimited) and err.upstream_status is not None


async def run_attempts(
    state: AppState, ctx: RelayContext, candidates: list[ChannelRecord], call: Call
) -> None:
    assert ctx.model is not None
    tries = candidates[: max(1, state.settings.max_attempts)]
    last = len(tries) - 1
    for i, channel in enumerate(tries):
        target = state.router.target(channel, ctx.model)
        adaptor = state.adaptors.get(target.provider)
        began = time.perf_counter()
        try:
            target = ctx.target = await state.tokens.resolve(adaptor, target)
            await call(adaptor, target)
        except RelayError as err:
            retry = i < last and not ctx.started_response and _retryable(err)
            if retry or ctx.attempts is not None:
                if ctx.attempts is None:
                    ctx.attempts = []
                ctx.attempts.append(
                    Attempt(
                        channel.id,
                        target.upstream_model,
                        err.upstream_status or 0,
                        round((time.perf_counter() - began) * 1000),
                        err.code,
                    )
                )
            if not retry:
                raise
            continue
        if ctx.attempts is not None:
            ms = round((time.perf_counter() - began) * 1000)
            ctx.attempts.append(Attempt(channel.id, target.upstream_model, 200, ms))
        return


def build_request(target: Target, build: Callable[[], UpstreamRequest]) -> UpstreamRequest:
    """Run an adaptor's request builder: bodies it cannot encode are the client's
    fault (JSON nested deeper than the encoder allows), and the channel's proxy is set."""
    try:
        ureq = build()
    except (orjson.JSONEncodeError, RecursionError):
        raise InvalidRequest(
            "The request body is nested too deeply or holds values that cannot be sent on."
        ) from None
    proxy = target.config.get("proxy") if target.config else None
    if isinstance(proxy, str):  # "" = direct, even when HTTPS_PROXY is set
        ureq.proxy = proxy
    return ureq


def upstream_failure(
    adaptor: Adaptor, target: Target, status: int, raw: bytes, resp: UpstreamResponse
) -> RelayError:
    """The adaptor's error for an upstream status >= 400, with the upstream's
    ``Retry-After`` kept and the attempt marked as the upstream's failure."""
    err = adaptor.error(target, status, raw)
    err.upstream_status = status
    if status in (429, 503):
        retry_after = parse_retry_after(resp.header("Retry-After"))
        if retry_after is not None:
            err.retry_after = retry_after
    return err


async def fetch(state: AppState, adaptor: Adaptor, target: Target, ureq: UpstreamRequest) -> bytes:
    """One non-streamed upstream exchange: the body of a successful answer, or the
    adaptor's error for a status of 400 or more (with the upstream's Retry-After)."""
    async with state.transport.request(ureq, stream=False) as resp:
        raw = await resp.read()
        status = resp.status
        if status >= 400:
            raise upstream_failure(adaptor, target, status, raw, resp)
    return raw
