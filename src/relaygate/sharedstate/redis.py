"""Redis-backed shared state: the same contract as ``memory.py``, held by a Redis server
so that limits and reservations hold across worker processes and nodes.

Every operation is one round trip; the ones that read and then write (reserve with a limit,
release never below zero, the sliding-window hit, the token windows) are Lua scripts, so
they are atomic however many workers call them at once. Times come from the Redis
server's clock (``TIME`` inside the scripts), not the workers': windows agree across
machines whose clocks differ. Keys live under a prefix (``RELAYGATE_REDIS_PREFIX``,
``rg:`` by default), one namespace each for counters (``c:``), values (``v:``),
admission windows (``w:``) and token windows (``s:``); every key has an expiry, so an
abandoned key goes away by itself.

A Redis error or timeout is raised as :class:`~relaygate.sharedstate.base.SharedStateError`
(each call waits at most ``timeout`` seconds and is retried once at once, on a fresh
connection, so a restarted server's stale pooled connections cost nothing); carrying on
without Redis and reconciling afterwards is ``fallback.py``'s work.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relaygate.sharedstate.base import SharedStateError, SharedStateUnavailable
from relaygate.sharedstate.memory import BUCKETS

__all__ = ["RedisState"]

_INCR = """
local existed = redis.call('EXISTS', KEYS[1])
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if existed == 0 and ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return v
"""

_RESERVE = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if v + amount > tonumber(ARGV[2]) then return 0 end
redis.call('INCRBY', KEYS[1], amount)
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""

_RELEASE = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local n = tonumber(v) - tonumber(ARGV[1])
if n <= 0 then redis.call('DEL', KEYS[1]) else redis.call('DECRBY', KEYS[1], ARGV[1]) end
return 1
"""

# admission times (ms, server clock) in a sorted set; members are unique per admission
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n >= limit then
  local e = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
  local wait = tonumber(e[2]) + window - now
  if wait < 1 then wait = 1 end
  return tostring(wait)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window))
return false
"""

# admissions made elsewhere (a worker's local fallback), as ages in ms: added at now - age
_MERGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local window = tonumber(ARGV[1])
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], now - tonumber(ARGV[i]), ARGV[2] .. ':' .. i)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('PEXPIRE', KEYS[1], math.ceil(window))
return 1
"""

# token windows: a hash of bucket index -> amount; a bucket is window/BUCKETS ms and counts
# until it is wholly out of the window (as in memory.py)
_ADD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local res = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local cur = math.floor(now / res)
redis.call('HINCRBY', KEYS[1], string.format('%.0f', cur), ARGV[1])
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if tonumber(f) < cur - n then redis.call('HDEL', KEYS[1], f) end
end
redis.call('PEXPIRE', KEYS[1], math.ceil(res * (n + 1)))
return 1
"""

# returns {total, wait ms as a string ('' when the total is below the limit or no limit)}
_TOTAL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local limit = tonumber(ARGV[1])
local res = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local cur = math.floor(now / res)
local h = redis.call('HGETALL', KEYS[1])
local buckets = {}
local total = 0
for i = 1, #h, 2 do
  local b = tonumber(h[i])
  if b < cur - n then
    redis.call('HDEL', KEYS[1], h[i])
  else
    local a = tonumber(h[i + 1])
    table.insert(buckets, {b, a})
    total = total + a
  end
end
if limit < 0 or total < limit then return {total, ''} end
table.sort(buckets, function(x, y) return x[1] < y[1] end)
local remaining = total
for _, e in ipairs(buckets) do
  remaining = remaining - e[2]
  if remaining < limit then
    local wait = (e[1] + n + 1) * res - now
    if wait < 1 then wait = 1 end
    return {total, tostring(wait)}
  end
end
return {total, tostring(res * n)}
"""


def _ms(seconds: float | None) -> int:
    return math.ceil(seconds * 1000) if seconds else 0


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
        raise SharedStateUnavailable(f"Redis {what} failed: {exc}") from exc
    except RedisError as exc:  # the server answered with an error (e.g. a mistyped key)
        raise SharedStateError(f"Redis {what} failed: {exc}") from exc


class RedisState:
    """The shared state in Redis. Build it with :meth:`connect` (checks the server)."""

    def __init__(self, client: aioredis.Redis, prefix: str = "rg:") -> None:
        self._r = client
        self.prefix = prefix
        self._tag = os.urandom(6).hex()  # unique admission members across processes
        self._seq = 0
        self._incr = client.register_script(_INCR)
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)
        self._hit = client.register_script(_HIT)
        self._merge = client.register_script(_MERGE)
        self._add = client.register_script(_ADD)
        self._total = client.register_script(_TOTAL)

    @classmethod
    def create(cls, url: str, prefix: str = "rg:", io_timeout: float = 2.0) -> RedisState:
        """A state on the server at ``url`` (``redis://[:password@]host:port/db``), not
        yet checked (``ValueError`` for a malformed URL). Every command waits at most
        ``io_timeout`` seconds and is retried once, at once (redis-py's default of ten
        retries with back-off would hold a request for seconds while Redis is away)."""
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=io_timeout,
            socket_connect_timeout=io_timeout,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 1),
        )
        return cls(client, prefix)

    @classmethod
    async def connect(cls, url: str, prefix: str = "rg:", io_timeout: float = 2.0) -> RedisState:
        """:meth:`create`, then one ``PING``; :class:`SharedStateError` when it does not
        answer."""
        state = cls.create(url, prefix, io_timeout)
        try:
            await state.ping()
        except SharedStateError:
            await state.close()
            raise
        return state

    async def ping(self) -> None:
        """One ``PING`` (:class:`SharedStateError` when the server does not answer)."""
        with _errors("PING"):
            await self._r.ping()

    async def reset_connections(self) -> None:
        """Drop the pooled connections (after an outage: the next calls connect afresh)."""
        with contextlib.suppress(RedisError, OSError):
            await self._r.connection_pool.disconnect()

    @property
    def client(self) -> aioredis.Redis:
        """The redis-py client (the configuration broadcast publishes through it)."""
        return self._r

    def _k(self, space: str, key: str) -> str:
        return f"{self.prefix}{space}:{key}"

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        with _errors("INCR"):
            return int(await self._incr(keys=[self._k("c", key)], args=[amount, _ms(ttl)]))

    async def reserve(self, key: str, amount: int, limit: int, ttl: float | None = None) -> bool:
        with _errors("reserve"):
            ok = await self._reserve(keys=[self._k("c", key)], args=[amount, limit, _ms(ttl)])
        return bool(int(ok))

    async def release(self, key: str, amount: int) -> None:
        with _errors("release"):
            await self._release(keys=[self._k("c", key)], args=[amount])

    async def hit_window(self, key: str, limit: int, window: float) -> float | None:
        self._seq += 1
        member = f"{self._tag}:{self._seq}"
        with _errors("window hit"):
            wait = await self._hit(keys=[self._k("w", key)], args=[limit, window * 1000, member])
        return None if wait is None else float(wait) / 1000

    async def merge_hits(self, key: str, ages: list[float], window: float) -> None:
        """Add admissions made ``ages`` seconds ago (a worker's local ones during an outage)
        to the window of ``key``, whatever its limit."""
        if not ages:
            return
        self._seq += 1
        args: list[Any] = [window * 1000, f"{self._tag}:m{self._seq}"]
        args += [round(a * 1000, 3) for a in ages]
        with _errors("window merge"):
            await self._merge(keys=[self._k("w", key)], args=args)

    async def undo_hit(self, key: str) -> None:
        with _errors("ZPOPMAX"):
            await self._r.zpopmax(self._k("w", key))

    async def add_window(self, key: str, amount: int, window: float) -> None:
        if amount <= 0:
            return
        with _errors("window add"):
            await self._add(
                keys=[self._k("s", key)], args=[amount, window * 1000 / BUCKETS, BUCKETS]
            )

    async def _window(self, key: str, limit: int, window: float) -> tuple[int, float | None]:
        with _errors("window total"):
            reply: Any = await self._total(
                keys=[self._k("s", key)], args=[limit, window * 1000 / BUCKETS, BUCKETS]
            )
        total, wait = int(reply[0]), reply[1]
        return total, (float(wait) / 1000 if wait else None)

    async def window_total(self, key: str, window: float) -> int:
        return (await self._window(key, -1, window))[0]

    async def window_over(self, key: str, limit: int, window: float) -> float | None:
        return (await self._window(key, limit, window))[1]

    async def get(self, key: str) -> bytes | None:
        with _errors("GET"):
            value = await self._r.get(self._k("v", key))
        if value is None or isinstance(value, bytes):
            return value
        return str(value).encode()  # not reached: the client does not decode replies

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        with _errors("MGET"):
            values = await self._r.mget([self._k("v", k) for k in keys])
        return [v if v is None or isinstance(v, bytes) else str(v).encode() for v in values]

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        with _errors("SET"):
            await self._r.set(self._k("v", key), value, px=_ms(ttl) or None)

    async def delete(self, key: str) -> None:
        with _errors("DEL"):
            await self._r.delete(*(self._k(space, key) for space in ("c", "v", "w", "s")))

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._r.aclose()
