"""Configuration changes announced to every worker and node through Redis pub/sub
(docs/architecture.md, "Configuration snapshot").

When a transaction that bumped a revision commits (``storage/revisions.py`` ``on_bump``, handed
in by the catalog: this package does not import storage), this worker publishes
``<name>:<value>`` on the ``<RELAYGATE_REDIS_PREFIX>config`` channel. Every worker subscribes to
it and hands each message to its follower (``Catalog.follow``), which reloads the snapshot —
keys, users, channels, routes, and through the catalog's listeners prices and the safety word
lists — as soon as the database shows that revision. A change is thus live everywhere within a
few milliseconds instead of ``RELAYGATE_REFRESH_INTERVAL``.

Polling stays: it is the fallback while Redis is away (a subscriber reconnects every second and,
once subscribed again, asks its follower to check for anything it missed), for writes made by
processes without Redis (``relaygate admin …``), and for installations without Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

__all__ = ["ConfigBroadcast"]

log = logging.getLogger("relaygate.broadcast")

#: what a follower gets: the revision's name and its new value (None: unknown, check)
Follower = Callable[[str, int | None], Awaitable[None]]
#: registers a listener of committed bumps, returning its removal (``revisions.on_bump``)
OnBump = Callable[[Callable[[str, int], None]], Callable[[], None]]
RECONNECT_EVERY = 1.0


class ConfigBroadcast:
    def __init__(self, url: str, prefix: str, follow: Follower, on_bump: OnBump) -> None:
        # its own connections: the subscription holds one for good, and reads block
        self._r = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=2.0,
            health_check_interval=10,
            retry=Retry(NoBackoff(), 1),
        )
        self.channel = f"{prefix}config"
        self._follow = follow
        self._on_bump = on_bump
        self._tasks: set[asyncio.Task[None]] = set()
        self._listen: asyncio.Task[None] | None = None
        self._remove: Callable[[], None] | None = None
        #: set once the subscription is live (tests and start-up wait on it)
        self.subscribed = asyncio.Event()

    def start(self) -> None:
        self._remove = self._on_bump(self._bumped)
        self._listen = asyncio.get_running_loop().create_task(self._listen_loop())

    # ---- publishing -----------------------------------------------------------------------
    def _bumped(self, name: str, value: int) -> None:
        """Called inside the commit: publish from a task (never blocks the writer)."""
        task = asyncio.get_running_loop().create_task(self._publish(f"{name}:{value}"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, message: str) -> None:
        try:
            await self._r.publish(self.channel, message)
        except (RedisError, OSError) as exc:  # the others poll: they see it a little later
            log.info("could not announce a configuration change", extra={"error": str(exc)})

    # ---- subscribing ----------------------------------------------------------------------
    async def _listen_loop(self) -> None:
        missed = False
        while True:
            pubsub = self._r.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                if missed:  # changes announced while away: check now
                    log.info("configuration broadcast resubscribed")
                    await self._deliver("config", None)
                    missed = False
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                    if msg is not None and msg.get("type") == "message":
                        await self._on_message(msg.get("data"))
            except (RedisError, OSError) as exc:
                if not missed:
                    log.warning(
                        "configuration broadcast lost (polling carries on); reconnecting",
                        extra={"error": str(exc)},
                    )
                missed = True
                self.subscribed.clear()
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(RECONNECT_EVERY)

    async def _on_message(self, data: object) -> None:
        text = data.decode() if isinstance(data, bytes) else str(data)
        name, _, raw = text.partition(":")
        try:
            value: int | None = int(raw)
        except ValueError:
            value = None
        await self._deliver(name, value)

    async def _deliver(self, name: str, value: int | None) -> None:
        # each in its own task: a slow reload never holds back the next message
        task = asyncio.get_running_loop().create_task(self._safe_follow(name, value))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _safe_follow(self, name: str, value: int | None) -> None:
        try:
            await self._follow(name, value)
        except Exception:
            log.warning("following a configuration change failed", exc_info=True)

    async def close(self) -> None:
        if self._remove is not None:
            self._remove()
        tasks = [t for t in (self._listen, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(RedisError, OSError):
            await self._r.aclose()
