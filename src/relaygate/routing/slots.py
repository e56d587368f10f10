"""Concurrency caps per channel and per upstream key, with a bounded wait queue
(docs/routing.md, "Concurrency caps").

A channel's ``config.max_concurrency`` caps the requests in flight on it, and
``config.key_concurrency`` those on each of its upstream keys. Slots are counters in
the shared state (``reserve`` / ``release``): with Redis the caps hold across every
worker and node; with in-process state each of the node's ``RELAYGATE_WORKERS``
workers enforces its share (the cap divided by the workers, at least 1), so the node
as a whole stays within the cap whenever the cap is at least the worker count. While Redis
is away, its fallback (``sharedstate/fallback.py``) applies the same kind of share
(``RELAYGATE_LOCAL_LIMIT_SHARE``) in each worker.

A request that finds no free slot waits up to ``config.queue_timeout`` seconds (at
most ``config.queue_size`` requests wait per channel and worker), polling with a short
back-off and woken at once when this worker frees a slot; then the attempt loop moves
on to the next channel, or answers 429 when none is left.
"""

from __future__ import annotations

import asyncio
import time

from relaygate.routing.router import ChannelPolicy
from relaygate.sharedstate.base import SharedState, SharedStateError
from relaygate.sharedstate.memory import InProcessState
from relaygate.storage.records import ChannelRecord

__all__ = ["Slot", "Slots"]

#: a crashed worker's slots lapse this long after its last reservation on the counter
SLOT_TTL = 1800.0
_POLL_MIN, _POLL_MAX = 0.005, 0.05


class Slot:
    """A held slot: give it back with :meth:`Slots.release`."""

    __slots__ = ("channel_key", "key", "key_counter")

    def __init__(self, channel_key: str | None, key: str, key_counter: str | None) -> None:
        self.channel_key = channel_key
        self.key = key  # the upstream key the slot is for
        self.key_counter = key_counter


class Slots:
    def __init__(self, shared: SharedState, workers: int = 1) -> None:
        self._shared = shared
        self._divisor = workers if isinstance(shared, InProcessState) else 1
        self._waiting: dict[int, int] = {}
        self._freed: dict[int, asyncio.Event] = {}

    def _cap(self, cap: int) -> int:
        return max(1, cap // self._divisor) if cap else 0

    async def _try(
        self, channel: ChannelRecord, policy: ChannelPolicy, keys: tuple[str, ...]
    ) -> Slot | None:
        shared = self._shared
        ch_key = None
        cap = self._cap(policy.max_concurrency)
        if cap:
            ch_key = f"cc:{channel.id}"
            if not await shared.reserve(ch_key, 1, cap, ttl=SLOT_TTL):
                return None
        kcap = self._cap(policy.key_concurrency)
        if not kcap:
            return Slot(ch_key, keys[0] if keys else "", None)
        for key in keys:
            # named by the key's place in the channel's list: stable whatever the rotation
            counter = f"cc:{channel.id}:{channel.keys.index(key)}"
            if await shared.reserve(counter, 1, kcap, ttl=SLOT_TTL):
                return Slot(ch_key, key, counter)
        if ch_key is not None:
            await shared.release(ch_key, 1)
        return None

    async def acquire(
        self, channel: ChannelRecord, policy: ChannelPolicy, keys: tuple[str, ...]
    ) -> Slot | None:
        """A slot on ``channel`` (and on the first of ``keys`` with room), waiting up to
        the channel's queue timeout; None when none came free. A shared state that errs
        (not an outage: ``fallback.py`` answers those locally) admits the request."""
        try:
            slot = await self._try(channel, policy, keys)
            if slot is not None or policy.queue_timeout <= 0:
                return slot
            waiting = self._waiting.get(channel.id, 0)
            if waiting >= policy.queue_size:
                return None
            self._waiting[channel.id] = waiting + 1
            try:
                return await self._wait(channel, policy, keys)
            finally:
                self._waiting[channel.id] -= 1
        except SharedStateError:
            return Slot(None, keys[0] if keys else "", None)

    async def _wait(
        self, channel: ChannelRecord, policy: ChannelPolicy, keys: tuple[str, ...]
    ) -> Slot | None:
        deadline = time.monotonic() + policy.queue_timeout
        pause = _POLL_MIN
        event = self._freed.setdefault(channel.id, asyncio.Event())
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            event.clear()
            try:
                async with asyncio.timeout(min(pause, left)):
                    await event.wait()
            except TimeoutError:
                pause = min(pause * 2, _POLL_MAX)
            slot = await self._try(channel, policy, keys)
            if slot is not None:
                return slot

    async def release(self, channel_id: int, slot: Slot) -> None:
        try:
            if slot.key_counter is not None:
                await self._shared.release(slot.key_counter, 1)
            if slot.channel_key is not None:
                await self._shared.release(slot.channel_key, 1)
        except SharedStateError:
            pass  # the counter lapses after SLOT_TTL
        event = self._freed.get(channel_id)
        if event is not None:
            event.set()
