"""The one attempt loop: every relay endpoint reaches the upstream through here
(docs/routing.md, "Retries").

It walks the router's candidates (``routing/router.py``). The first pass tries each
channel whose circuit admits it (``routing/breakers.py``), skipping a channel that
already failed in this request; a last pass comes back to the skipped ones — open
circuits, then failed channels (after an upstream ``Retry-After`` of at most
``RELAYGATE_RETRY_AFTER_MAX`` seconds). A failure before the client saw any byte — a
connection error, a timeout, an upstream 5xx or 429, rejected channel credentials —
moves on; a 4xx caused by the request itself does not. At most
``RELAYGATE_MAX_ATTEMPTS`` upstream calls are made, and none starts after
``RELAYGATE_RETRY_BUDGET`` seconds. Channels with concurrency caps are entered through
``routing/slots.py``; a channel with no free slot is passed over (429 ``channel_busy``
when that leaves nothing). Hedging (``relay/hedge.py``) races the first two candidates
for models that ask for it.

Every outcome feeds the circuits; a rejected key goes to ``routing/health.py``. When
any attempt failed, the whole chain (channel, model, status, time, error) is kept in
``ctx.attempts`` for the request-log row.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import orjson

from relaygate.context import IN_PROGRESS, Attempt, RelayContext
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
from relaygate.relay.hedge import hedged
from relaygate.routing.breakers import OPEN, PROBE
from relaygate.routing.health import is_key_rejection
from relaygate.routing.router import Candidate
from relaygate.state import AppState
from relaygate.transport.base import UpstreamResponse

__all__ = ["AttemptLoop", "build_request", "fetch", "run_attempts", "spawn", "upstream_failure"]

Call = Callable[[Adaptor, Target], Awaitable[None]]

#: longest an upstream 429's Retry-After keeps a channel+model out of first choice
MAX_COOL = 60.0


def _retryable(err: RelayError) -> bool:
    if isinstance(err, UpstreamRejected):
        return False  # caused by the request: another channel would refuse it too
    if isinstance(err, UpstreamError | UpstreamTimeout):
        return True  # connect errors, timeouts, 5xx, bad channel credentials
    return isinstance(err, RateLimited) and err.upstream_status is not None


def _busy(model: str) -> RateLimited:
    err = RateLimited(
        f"Every channel serving `{model}` is at its concurrency limit; retry shortly.",
        code="channel_busy",
    )
    err.retry_after = 1.0
    return err


class AttemptLoop:
    """One request's walk over its candidates (see the module docstring)."""

    __slots__ = (
        "affinity",
        "call",
        "candidates",
        "chain",
        "ctx",
        "deadline",
        "failed",
        "final",
        "last",
        "max_tries",
        "state",
        "tried",
    )

    def __init__(
        self,
        state: AppState,
        ctx: RelayContext,
        candidates: list[Candidate],
        call: Call,
        affinity: str | None = None,
    ) -> None:
        self.state = state
        self.ctx = ctx
        self.candidates = candidates
        self.call = call
        self.affinity = affinity
        self.tried = 0
        self.failed: dict[int, RelayError] = {}  # channel id -> its last error here
        self.last: RelayError | None = None
        self.final = False  # the last error must not be retried
        self.chain: list[Attempt] | None = None
        s = state.settings
        self.max_tries = max(1, s.max_attempts)
        self.deadline = ctx.started + s.retry_budget

    # ---- the walk -----------------------------------------------------------
    async def run(self) -> None:
        if await self._walk():
            return
        if self.last is not None:
            raise self.last
        raise _busy(self.ctx.model or "")

    def more(self) -> bool:
        """Whether another upstream call may start."""
        if self.final or self.tried >= self.max_tries:
            return False
        return self.tried == 0 or time.perf_counter() < self.deadline

    async def _walk(self) -> bool:
        breakers = self.state.breakers
        later: list[Candidate] = []  # skipped: circuit open, or its channel failed already
        retry: list[Candidate] = []  # failed in the first pass
        hedge = self.state.catalog.hedge_after(self.ctx.model or "")
        if self.ctx.started_response:
            hedge = None  # the stream is open (online notices): one attempt writes at a time
        queue = self.candidates
        i = 0
        while i < len(queue) and self.more():
            cand = queue[i]
            i += 1
            ch, model = cand
            if ch.id in self.failed:
                later.append(cand)
                continue
            verdict = breakers.admit(ch.id, model) if breakers.open else 0
            if verdict == OPEN:
                later.append(cand)
                continue
            if hedge is not None and self.tried == 0 and i < len(queue):
                queue = list(queue)  # hedged() takes its second candidate out
                if await hedged(self, cand, verdict == PROBE, queue, i, hedge):
                    return True
            elif await self.attempt(cand, probe=verdict == PROBE):
                return True
            if ch.id in self.failed:
                retry.append(cand)
        # last resort: open circuits, then the channels that failed here, each once more
        for cand in later + retry:
            if not self.more():
                break
            err = self.failed.get(cand[0].id)
            if err is not None:
                wait = err.retry_after if isinstance(err, RateLimited) else 0.0
                if wait:
                    if wait > self.state.settings.retry_after_max:
                        continue
                    if time.perf_counter() + wait >= self.deadline:
                        continue
                    await asyncio.sleep(wait)
            if await self.attempt(cand):
                return True
        return False

    # ---- one attempt ----------------------------------------------------------
    async def attempt(self, cand: Candidate, probe: bool = False, hedge: bool = False) -> bool:
        """One upstream call on ``cand``; True when it served the request (the answer,
        or a stream that ended with its own error event after the first byte)."""
        state, ctx = self.state, self.ctx
        ch, model = cand
        router = state.router
        policy = router.policy(ch)
        slot = None
        if policy.capped:
            slot = await state.slots.acquire(ch, policy, router.key_order(ch, self.affinity))
            if slot is None:
                if probe:
                    state.breakers.abandon(ch.id, model)
                upstream = ch.model_mapping.get(model, model)
                self._note(Attempt(ch.id, upstream, 0, 0, "channel_busy"))
                return False
            target = router.target(ch, model, api_key=slot.key)
        else:
            target = router.target(ch, model, self.affinity)
        self.tried += 1
        began = time.perf_counter()
        race = ctx.race
        entry = None  # kept from the start once the chain is kept (settled by the log row)
        if self.chain is not None or race is not None:
            entry = Attempt(ch.id, target.upstream_model, 0, 0, IN_PROGRESS, None, hedge, began)
            self._note(entry)
        adaptor = state.adaptors.get(target.provider)
        try:
            target = await state.tokens.resolve(adaptor, target)
            if race is None or race.winner is None:
                ctx.target = target
            try:
                await self.call(adaptor, target)
            except RelayError as err:
                if ctx.started_response or not state.tokens.refused(err, target):
                    raise
                # the upstream refused a cached token (expired early, revoked): once more
                # on the same channel with a fresh one
                target = await state.tokens.renew(adaptor, target)
                if race is None or race.winner is None:
                    ctx.target = target
                await self.call(adaptor, target)
        except RelayError as err:
            self._failed(cand, target, err, began, probe, hedge, entry)
            return False
        except asyncio.CancelledError:
            if probe:
                state.breakers.abandon(ch.id, model)
            if entry is not None and entry.error_code == IN_PROGRESS:
                entry.elapsed_ms = _ms(began)
                lost = race is not None and race.winner is not None
                entry.error_code = "hedge_lost" if lost else "cancelled"
            raise
        finally:
            if slot is not None:
                await state.slots.release(ch.id, slot)
        if ctx.status >= 500 and ctx.error_code not in (None, "stream_cut"):
            # the stream broke after the first byte: the client got its error event
            state.breakers.failure(ch.id, model)
        elif state.breakers.tracking:
            state.breakers.success(ch.id, model)
        return True

    def _failed(
        self,
        cand: Candidate,
        target: Target,
        err: RelayError,
        began: float,
        probe: bool,
        hedge: bool,
        entry: Attempt | None,
    ) -> None:
        state = self.state
        ch, model = cand
        breakers = state.breakers
        if is_key_rejection(err):
            spawn(state.health.key_rejected(ch, target.api_key, status=err.upstream_status or 0))
            if probe:
                breakers.abandon(ch.id, model)
        elif isinstance(err, UpstreamRejected):
            if probe:
                breakers.abandon(ch.id, model)
        elif isinstance(err, UpstreamTimeout):
            breakers.failure(ch.id, model)
        elif isinstance(err, UpstreamError):
            breakers.failure(ch.id, model, channel_wide=err.upstream_status is None)
        elif isinstance(err, RateLimited) and err.upstream_status is not None:
            if err.retry_after:
                breakers.cool(ch.id, model, min(err.retry_after, MAX_COOL))
            elif probe:
                breakers.abandon(ch.id, model)
        elif probe:
            breakers.abandon(ch.id, model)
        self.failed[ch.id] = err
        self.last = err
        if self.ctx.started_response or not _retryable(err):
            self.final = True
        if entry is None:
            entry = Attempt(ch.id, target.upstream_model, 0, 0, None, None, hedge)
            self._note(entry)
        entry.status = err.upstream_status or 0
        entry.elapsed_ms = _ms(began)
        entry.error_code = err.code
        entry.message = err.message[:200]

    def _note(self, attempt: Attempt) -> None:
        if self.chain is None:
            self.chain = self.ctx.attempts = []
        self.chain.append(attempt)


_background: set[asyncio.Task[None]] = set()


def spawn(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` beside the request (it may write to the database)."""
    task = asyncio.get_running_loop().create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


def _ms(began: float) -> int:
    return round((time.perf_counter() - began) * 1000)


async def run_attempts(
    state: AppState,
    ctx: RelayContext,
    candidates: list[Candidate],
    call: Call,
    affinity: str | None = None,
) -> None:
    await AttemptLoop(state, ctx, candidates, call, affinity).run()


def build_request(target: Target, build: Callable[[], UpstreamRequest]) -> UpstreamRequest:
    """Run an adaptor's request builder: bodies it cannot encode are the client's
    fault (JSON nested deeper than the encoder allows); the channel's proxy and
    timeouts are set."""
    try:
        ureq = build()
    except (orjson.JSONEncodeError, RecursionError):
        raise InvalidRequest(
            "The request body is nested too deeply or holds values that cannot be sent on."
        ) from None
    config = target.config
    if config:
        proxy = config.get("proxy")
        if isinstance(proxy, str):  # "" = direct, even when HTTPS_PROXY is set
            ureq.proxy = proxy
        timeouts = config.get("timeouts")
        if isinstance(timeouts, dict) and timeouts:
            ureq.timeouts = (
                timeouts.get("connect"),
                timeouts.get("first_byte"),
                timeouts.get("idle"),
            )
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
