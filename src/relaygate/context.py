"""The one typed object that travels through the pipeline.

It sits below ``relay/`` so that stages, filters and the request-log writer can
read it without importing the relay. Filters keep per-request state in a typed
:class:`Slot` (``ctx.put(SLOT, value)`` / ``ctx.get(SLOT)``) instead of a
string-keyed scratch dict: each filter owns its slot and its value's type.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from relaygate.providers.base import Target, Usage
from relaygate.storage.records import KeyRecord, UserRecord

__all__ = ["IN_PROGRESS", "Attempt", "Race", "RelayContext", "Slot", "settle_attempts"]

T = TypeVar("T")


class Slot(Generic[T]):
    """A typed per-request slot owned by one stage (identity is the key)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Slot({self.name!r})"


#: the error code of an attempt still running when its chain was last written
IN_PROGRESS = "in_progress"


@dataclass(slots=True)
class Attempt:
    """One upstream attempt of a request (kept with the request-log row as its
    ``attempts`` chain and shown by the admin API)."""

    channel_id: int
    model: str  # the upstream model asked for on this attempt
    status: int  # upstream HTTP status, or 0 when no response came
    elapsed_ms: int
    error_code: str | None = None  # None: this attempt served the request
    message: str | None = None  # the error's message, cut to 200 characters
    hedge: bool = False  # started by hedging while an earlier attempt still ran
    began: float = 0.0  # perf_counter at its start (not written)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "channel_id": self.channel_id,
            "model": self.model,
            "status": self.status,
            "ms": self.elapsed_ms,
            "error": self.error_code,
        }
        if self.message:
            out["message"] = self.message
        if self.hedge:
            out["hedge"] = True
        return out


def settle_attempts(ctx: RelayContext) -> None:
    """Before the request-log row is written: the attempt that is serving the request
    (the one on ``ctx.target``) gets the request's status and time so far; other attempts
    still running (a hedge about to be cancelled) are marked ``hedge_lost``."""
    if not ctx.attempts:
        return
    target = ctx.target
    now = time.perf_counter()
    for a in ctx.attempts:
        if a.error_code != IN_PROGRESS:
            continue
        if target is not None and (a.channel_id, a.model) == (
            target.channel_id,
            target.upstream_model,
        ):
            ok = ctx.status < 400
            a.status = 200 if ok or ctx.started_response else 0
            a.error_code = None if ok else ctx.error_code
            a.elapsed_ms = round((now - a.began) * 1000)
        else:
            a.error_code = "hedge_lost"
            a.elapsed_ms = round((now - a.began) * 1000)
    if len(ctx.attempts) == 1 and ctx.attempts[0].error_code is None:
        ctx.attempts = None  # a hedged model's first attempt served alone: no chain to keep


class Race:
    """Hedged attempts of one request (``relay/hedge.py``): the first attempt to claim the
    response wins and the others are cancelled, so the client gets one answer and is
    billed once."""

    __slots__ = ("tasks", "winner")

    def __init__(self) -> None:
        self.winner: Target | None = None
        self.tasks: list[asyncio.Task[Any]] = []

    def claim(self, ctx: RelayContext, target: Target) -> None:
        if self.winner is None:
            self.winner = target
            ctx.target = target
            me = asyncio.current_task()
            for task in self.tasks:
                if task is not me:
                    task.cancel()
        elif self.winner is not target:
            raise asyncio.CancelledError  # lost the race: end like the cancelled one


@dataclass(slots=True)
class RelayContext:
    request_id: str
    endpoint: str  # "chat" | "embeddings" | "models"
    client_ip: str = ""
    started: float = field(default_factory=time.perf_counter)
    key: KeyRecord | None = None
    user: UserRecord | None = None
    model: str | None = None  # the public model name asked for (after prepare stages)
    stream: bool = False
    include_usage: bool = False
    target: Target | None = None  # the destination of the current (last) attempt
    #: the attempt chain, kept only when an attempt failed (retries, hedges, a failed request)
    attempts: list[Attempt] | None = None
    usage: Usage | None = None
    status: int = 200
    error_code: str | None = None
    first_byte_at: float | None = None  # when the response started (client saw bytes)
    client_disconnected: bool = False
    finished: bool = False  # the final response bytes are being sent
    recorded: bool = False  # the request-log row was recorded
    # billing (billing/stage.py): what the request-log row charges
    cost: int = 0  # units charged to the balance
    counts: int = 0  # package quota used (counts, or units of a credit package)
    package_id: int | None = None
    billing: str | None = None  # balance | counts | credit | unlimited | free | unpriced
    race: Race | None = None  # hedged attempts in flight (relay/hedge.py)
    search: str | None = None  # an online request's search for its log row (relay/online.py)
    _slots: dict[Slot[Any], Any] | None = None

    def claim(self, target: Target) -> None:
        """The attempt on ``target`` is about to send the client its first byte: with
        hedged attempts in flight, it wins (or, if another won, ends here)."""
        if self.race is not None:
            self.race.claim(self, target)

    # ---- typed slots ------------------------------------------------------
    def get(self, slot: Slot[T]) -> T | None:
        if self._slots is None:
            return None
        return cast("T | None", self._slots.get(slot))

    def put(self, slot: Slot[T], value: T) -> None:
        if self._slots is None:
            self._slots = {}
        self._slots[slot] = value

    def pop(self, slot: Slot[T]) -> T | None:
        if self._slots is None:
            return None
        return cast("T | None", self._slots.pop(slot, None))

    # ---- timings ----------------------------------------------------------
    def elapsed_ms(self) -> int:
        return round((time.perf_counter() - self.started) * 1000)

    def ttft_ms(self) -> int | None:
        if self.first_byte_at is None:
            return None
        return round((self.first_byte_at - self.started) * 1000)

    @property
    def started_response(self) -> bool:
        return self.first_byte_at is not None

    @property
    def logged_status(self) -> int:
        """The status the logs record: 499 when the client went away first."""
        return 499 if self.client_disconnected else self.status
