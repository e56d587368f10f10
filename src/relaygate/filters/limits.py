"""Request limits: the key's address allow-list, then requests per minute (RPM), tokens
per minute (TPM) and requests at once (concurrency) per key, per user and per plan.

Every count lives in the shared state (``sharedstate/``): exact within a worker with the
in-process state, across workers and nodes with Redis (``RELAYGATE_REDIS_URL``). RPM is a
sliding window (no burst of twice the limit around a minute boundary); TPM is checked
before the request (refused while the last minute's tokens already reach the limit) and
the request's real total tokens are added after it (``ctx.usage``), so one request may
overshoot a TPM limit but the next waits. A plan's fair-use limits (RPM, TPM, requests per
UTC day) come from the billing stage in :data:`~relaygate.stages.PLAN_LIMITS` and count
per user and plan.

Refusals: 402 ``ip_not_allowed`` for an address outside the allow-list; 429
``rate_limit_exceeded`` naming the limit, with ``retry_after`` (the ``Retry-After``
header). A refused request gives back everything it took (admissions, slots, daily
counts). A request with no limit anywhere costs three attribute tests. When Redis is away
the shared state (``sharedstate/fallback.py``) counts in the worker, against its share of each
limit (``RELAYGATE_LOCAL_LIMIT_SHARE``), and reconciles once Redis is back: limits keep
holding. Only a shared state that errs otherwise (a Redis refusing a command) lets the
request through, with a warning.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from relaygate.context import RelayContext, Slot
from relaygate.errors import PolicyError, RateLimited
from relaygate.sharedstate.base import SharedState, SharedStateError
from relaygate.stages import PLAN_LIMITS, PlanLimits
from relaygate.storage.records import KeyRecord

__all__ = ["PLAN_LIMITS", "LimitsFilter", "PlanLimits"]

log = logging.getLogger("relaygate.limits")

#: a crashed holder's concurrency share is forgotten this long after the last reservation
SLOT_TTL = 3600.0
MINUTE = 60.0
#: a day's request count outlives its UTC day by this much (then expires)
DAY_TTL = 26 * 3600.0
#: at most one "shared state failed" warning per this many seconds per worker
WARN_EVERY = 10.0


class _Taken:
    """What a request holds: concurrency slots to release and token windows to add its
    tokens to once it is over."""

    __slots__ = ("held", "tpm")

    def __init__(self) -> None:
        self.held: list[str] = []
        self.tpm: list[str] = []


#: what this request took (set only when it took anything)
TAKEN: Slot[_Taken] = Slot("limits.taken")


def _refuse(message: str, wait: float) -> RateLimited:
    err = RateLimited(message)
    err.retry_after = float(max(1, math.ceil(wait)))
    return err


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))


def _check_ip(key: KeyRecord, client_ip: str) -> None:
    nets = key.ip_networks
    assert nets is not None
    try:
        addr = ipaddress.ip_address(client_ip)
    except ValueError:
        addr = None
    if addr is not None:
        mapped = getattr(addr, "ipv4_mapped", None)  # ::ffff:a.b.c.d is a.b.c.d
        for net in nets:
            if addr in net or (mapped is not None and mapped in net):
                return
    raise PolicyError(
        f"This API key may not be used from the address {client_ip or 'unknown'}; "
        "it is limited to the addresses its owner allowed.",
        code="ip_not_allowed",
    )


class LimitsFilter:
    def __init__(self, state: SharedState) -> None:
        self._state = state
        self._warned = 0.0

    async def before(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        key = ctx.key
        if key is None:
            return
        user = ctx.user
        plan = ctx.get(PLAN_LIMITS)
        if not key.limited and (user is None or not user.limited) and plan is None:
            return  # the common case: nothing to count
        if key.ip_networks is not None:
            _check_ip(key, ctx.client_ip)
        taken = _Taken()
        hits: list[str] = []
        days: list[str] = []
        try:
            await self._take(ctx, key, plan, taken, hits, days)
        except RateLimited:
            await self._give_back(taken.held + days, hits)
            raise
        except SharedStateError as exc:
            self._warn(exc)
            await self._give_back(taken.held + days, hits)
            return
        if taken.held or taken.tpm:
            ctx.put(TAKEN, taken)

    async def _take(
        self,
        ctx: RelayContext,
        key: KeyRecord,
        plan: PlanLimits | None,
        taken: _Taken,
        hits: list[str],
        days: list[str],
    ) -> None:
        user = ctx.user
        # (what the message calls it, the shared-state name, rpm, tpm, concurrency)
        scopes: list[tuple[str, str, int | None, int | None, int | None]] = [
            ("this key", f"key:{key.id}", key.rpm_limit, key.tpm_limit, key.concurrency_limit)
        ]
        if user is not None and user.limited:
            scopes.append(
                (
                    "your account",
                    f"user:{user.id}",
                    user.rpm_limit,
                    user.tpm_limit,
                    user.concurrency_limit,
                )
            )
        if plan is not None:
            who = f"your plan {plan.name!r}" if plan.name else "your plan"
            owner = user.id if user is not None else key.user_id
            scopes.append((who, f"plan:{plan.plan_id}:user:{owner}", plan.rpm, plan.tpm, None))
        st = self._state
        # TPM first: it only reads, so a refusal there has nothing to give back
        for who, name, _, tpm, _ in scopes:
            if tpm is not None:
                wait = await st.window_over(f"tpm:{name}", tpm, MINUTE)
                if wait is not None:
                    raise _refuse(
                        f"Rate limit: {who} allows {tpm} tokens per minute and the last "
                        f"minute used them; retry in {_seconds(wait)} s.",
                        wait,
                    )
                taken.tpm.append(f"tpm:{name}")
        for who, name, rpm, _, _ in scopes:
            if rpm is not None:
                wait = await st.hit_window(f"rpm:{name}", rpm, MINUTE)
                if wait is not None:
                    raise _refuse(
                        f"Rate limit: {who} allows {rpm} requests per minute; "
                        f"retry in {_seconds(wait)} s.",
                        wait,
                    )
                hits.append(f"rpm:{name}")
        if plan is not None and plan.daily_requests is not None:
            now = datetime.now(UTC)
            day = f"day:{scopes[-1][1]}:{now:%Y%m%d}"
            if not await st.reserve(day, 1, plan.daily_requests, DAY_TTL):
                midnight = (86400 - (now.hour * 3600 + now.minute * 60 + now.second)) or 1
                raise _refuse(
                    f"Rate limit: {scopes[-1][0]} allows {plan.daily_requests} requests per "
                    "day (UTC); the count starts again at midnight UTC.",
                    midnight,
                )
            days.append(day)
        for who, name, _, _, conc in scopes:
            if conc is not None:
                slot = f"conc:{name}"
                if not await st.reserve(slot, 1, conc, SLOT_TTL):
                    raise _refuse(
                        f"Rate limit: {who} allows {conc} concurrent requests; "
                        "wait for one to finish.",
                        1.0,
                    )
                taken.held.append(slot)

    async def _give_back(self, counters: list[str], hits: list[str]) -> None:
        """Undo what a refused request took (best effort when the state is failing)."""
        try:
            for name in counters:
                await self._state.release(name, 1)
            for name in hits:
                await self._state.undo_hit(name)
        except SharedStateError as exc:
            self._warn(exc)

    async def after(self, ctx: RelayContext) -> None:
        taken = ctx.pop(TAKEN)
        if taken is None:
            return
        st = self._state
        try:
            for slot in taken.held:
                await st.release(slot, 1)
            usage = ctx.usage
            if taken.tpm and usage is not None:
                tokens = usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
                if tokens > 0:
                    for name in taken.tpm:
                        await st.add_window(name, tokens, MINUTE)
        except SharedStateError as exc:
            self._warn(exc)

    def _warn(self, exc: SharedStateError) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:
            self._warned = now
            log.warning("limits not enforced: the shared state failed", extra={"error": str(exc)})
