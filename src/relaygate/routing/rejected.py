"""Upstream keys the upstream refused, out of rotation for a while, in every worker.

:class:`RejectedKeys` is the memory of ``routing/health.py`` ``ChannelHealth``
(``docs/channel-health.md``). A rejection is recorded locally at once and merged into one
shared-state value (``health:rejected``: per channel, a hash of each refused key with when
it was refused and when it expires, and when the channel was last reset). Every worker
reads that value about once a second and rebuilds its view; the router's questions
(:meth:`RejectedKeys.is_rejected`, :meth:`RejectedKeys.usable_keys`) are answered from
memory only.

The shared value is read, changed and written back, so two workers recording at the same
instant may lose one entry; each worker therefore re-publishes its own rejections the
value lacks at its next read (unless the channel was reset since). Upstream keys never
leave the worker: only their hashes are shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from relaygate.catalog import Catalog
from relaygate.sharedstate.base import SharedState, SharedStateError
from relaygate.storage.records import ChannelRecord

__all__ = ["SHARED_KEY", "SYNC_INTERVAL", "RejectedKeys"]

log = logging.getLogger("relaygate.health")

#: the shared-state value holding every worker's rejected keys (hashed) and reset stamps
SHARED_KEY = "health:rejected"
#: how often a worker reads the rejections other workers and nodes recorded
SYNC_INTERVAL = 1.0

_Entry = tuple[float, float]  # (rejected at, expires at), wall-clock seconds


class RejectedKeys:
    def __init__(
        self,
        catalog: Catalog,
        shared: SharedState,
        ttl: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._catalog = catalog
        self._shared = shared
        #: seconds a rejection lasts
        self.ttl = ttl
        self._clock = clock
        #: channel id -> key -> (rejected at, expires at): this worker's view (all workers')
        self._rejected: dict[int, dict[str, _Entry]] = {}
        #: the rejections this worker saw itself (re-published if the shared value lost them)
        self._own: dict[int, dict[str, _Entry]] = {}
        self._fps: dict[tuple[int, str], str] = {}
        self._last_raw: bytes | None = None
        #: (shared value, catalog revision) the view was last built from
        self._built: tuple[bytes | None, int] | None = None

    # ---- the router's view (no I/O) ------------------------------------------------------
    def is_rejected(self, channel_id: int, key: str) -> bool:
        """Whether ``key`` of channel ``channel_id`` is out of rotation right now."""
        keys = self._rejected.get(channel_id)
        if not keys:
            return False
        entry = keys.get(key)
        return entry is not None and entry[1] > self._clock()

    def usable_keys(self, channel: ChannelRecord) -> tuple[str, ...]:
        """``channel``'s keys that are not rejected, in their configured order."""
        keys = self._rejected.get(channel.id)
        if not keys:
            return channel.keys
        now = self._clock()
        return tuple(k for k in channel.keys if (e := keys.get(k)) is None or e[1] <= now)

    # ---- changes ---------------------------------------------------------------------------
    async def add(self, channel_id: int, key: str) -> bool:
        """Record that the upstream refused ``key`` of ``channel_id`` (here at once, in the
        shared value before returning); True when it was not already out of rotation."""
        now = self._clock()
        entry = (now, now + self.ttl)
        known = self._rejected.get(channel_id, {}).get(key)
        fresh = known is None or known[1] <= now
        self._rejected.setdefault(channel_id, {})[key] = entry
        self._own.setdefault(channel_id, {})[key] = entry
        if fresh:
            await self._publish()
        return fresh

    def clear(self, channel_id: int) -> None:
        """Forget this worker's rejections of ``channel_id`` (locally; see :meth:`reset`)."""
        self._rejected.pop(channel_id, None)
        self._own.pop(channel_id, None)
        self._built = None

    async def reset(self, channel_id: int) -> None:
        """Put every key of ``channel_id`` back into rotation, in every worker."""
        self.clear(channel_id)
        with contextlib.suppress(SharedStateError):
            data = await self._read_shared()
            data["keys"].pop(str(channel_id), None)
            data["cleared"][str(channel_id)] = self._clock()
            await self._write_shared(data)

    def forget_missing(self, channel_ids: set[int]) -> None:
        """Drop the rejections of channels that no longer exist; key hashes are recomputed
        (a channel's keys may have changed)."""
        for cid in set(self._rejected) - channel_ids:
            self.clear(cid)
        self._fps.clear()

    # ---- the shared view -----------------------------------------------------------------
    def _fp(self, channel_id: int, key: str) -> str:
        fp = self._fps.get((channel_id, key))
        if fp is None:
            fp = hashlib.sha256(f"{channel_id}\0{key}".encode()).hexdigest()[:24]
            self._fps[(channel_id, key)] = fp
        return fp

    async def _read_shared(self) -> dict[str, dict[str, Any]]:
        raw = await self._shared.get(SHARED_KEY)
        self._last_raw = raw
        data: Any = None
        if raw:
            with contextlib.suppress(orjson.JSONDecodeError):
                data = orjson.loads(raw)
        if not isinstance(data, dict):
            data = {}
        keys = data.get("keys")
        cleared = data.get("cleared")
        return {
            "keys": keys if isinstance(keys, dict) else {},
            "cleared": cleared if isinstance(cleared, dict) else {},
        }

    async def _write_shared(self, data: dict[str, dict[str, Any]]) -> None:
        now = self._clock()
        keys = {
            cid: live
            for cid, fps in data["keys"].items()
            if isinstance(fps, dict)
            and (live := {fp: e for fp, e in fps.items() if _expires(e) > now})
        }
        cleared = {
            cid: ts
            for cid, ts in data["cleared"].items()
            if isinstance(ts, int | float) and ts > now - self.ttl
        }
        raw = orjson.dumps({"keys": keys, "cleared": cleared})
        await self._shared.set(SHARED_KEY, raw, ttl=self.ttl)
        self._last_raw = raw

    async def _publish(self) -> None:
        """Merge this worker's own rejections into the shared value."""
        try:
            data = await self._read_shared()
            if self._merge_own(data):
                await self._write_shared(data)
        except SharedStateError:
            log.warning("could not share a rejected key; this worker skips it alone")

    def _merge_own(self, data: dict[str, dict[str, Any]]) -> bool:
        """Add this worker's rejections missing from ``data``; drop the ones cleared since.
        True when ``data`` changed."""
        now = self._clock()
        changed = False
        for cid, own in list(self._own.items()):
            cleared = data["cleared"].get(str(cid), 0.0)
            live = {k: e for k, e in own.items() if e[1] > now and e[0] > cleared}
            if not live:
                del self._own[cid]
                continue
            self._own[cid] = live
            shared = data["keys"].setdefault(str(cid), {})
            for key, entry in live.items():
                fp = self._fp(cid, key)
                if fp not in shared or _expires(shared[fp]) < entry[1]:
                    shared[fp] = list(entry)
                    changed = True
        return changed

    async def sync(self) -> None:
        """Read the shared rejections into this worker's view (re-publishing its own
        rejections the shared value lost to a concurrent write)."""
        before = self._built
        data = await self._read_shared()
        built = (self._last_raw, self._catalog.revision)
        if built == before and not self._own:
            return  # nothing new: the view stands (entries expire by themselves)
        if self._merge_own(data):
            await self._write_shared(data)
        now = self._clock()
        view: dict[int, dict[str, _Entry]] = {}
        for channel in self._catalog.all_channels():
            cid = channel.id
            shared = data["keys"].get(str(cid))
            entries: dict[str, _Entry] = dict(self._own.get(cid, {}))
            if isinstance(shared, dict) and shared:
                for key in (*channel.keys, ""):
                    e = shared.get(self._fp(cid, key))
                    if isinstance(e, list) and len(e) == 2 and _expires(e) > now:
                        entries.setdefault(key, (float(e[0]), float(e[1])))
            live = {k: e for k, e in entries.items() if e[1] > now}
            if live:
                view[cid] = live
        self._rejected = view
        self._built = built

    async def run(self, interval: float = SYNC_INTERVAL) -> None:
        """Keep this worker's view fresh: :meth:`sync` every ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync()
            except SharedStateError:
                pass  # the shared state is away: keep the last view
            except Exception:
                log.warning("reading rejected keys failed", exc_info=True)


def _expires(entry: Any) -> float:
    if isinstance(entry, list | tuple) and len(entry) == 2:
        value = entry[1]
        if isinstance(value, int | float):
            return float(value)
    return 0.0
