"""A lean HTTP/1.1 upstream transport on asyncio Protocols and ``httptools``
(the contract is in ``transport/base.py``).

One :class:`_Conn` is one TCP connection *and* the response of the exchange it
is carrying: the parser callbacks fill its status, headers and a deque of body
chunks, and a single Future wakes the one consumer. Fully read keep-alive
connections go back to a LIFO pool per ``(scheme, host, port, proxy)``; anything
left half-read (error, cancellation, early exit) is aborted, so the upstream sees
the disconnect at once.

Through a proxy (``transport/proxy.py``), https targets get a CONNECT tunnel
(``transport/tunnel.py``) with TLS inside; http targets are sent to the proxy in
absolute form (``POST http://host/path``). The total deadline costs one float
comparison per received segment plus the read timer that exists anyway. Per-request
timeouts (``UpstreamRequest.timeouts``) are read once per exchange: the idle timeout and the
first-byte timeout ride on the connection as two floats set with the exchange."""

from __future__ import annotations

import asyncio
import math
import ssl
from collections import deque
from contextlib import AbstractAsyncContextManager
from typing import cast

import httptools

from relaygate.errors import RelayError, UpstreamTimeout
from relaygate.providers.base import UpstreamRequest
from relaygate.settings import Settings
from relaygate.transport.base import (
    UpstreamResponse,
    connect_timed_out,
    first_byte_timed_out,
    idle_timed_out,
    interrupted,
    make_ssl_context,
    proxy_refused,
    tls_failed,
    too_large,
    total_expired,
)
from relaygate.transport.encode import Key as _Key
from relaygate.transport.encode import RequestEncoder
from relaygate.transport.proxy import ProxyResolver
from relaygate.transport.streamed import StreamedBodies
from relaygate.transport.tunnel import connect_through
from relaygate.transport.websocket import WebSocketTransport

__all__ = ["FastTransport"]

_HIGH_WATER = 1024 * 1024  # pause reading when this much body is buffered, unread
_IDLE_TTL = 60.0  # drop pooled connections idle for longer
_SWEEP_EVERY = 30.0


class _Conn(asyncio.Protocol):
    """A connection and the response currently arriving on it."""

    def __init__(self, owner: FastTransport, key: _Key) -> None:
        self._owner = owner
        self._key = key
        self._loop = owner._loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._closed = False
        self._reused = False  # carried an earlier exchange
        self._idle = False  # waiting in the pool
        self._idle_since = 0.0
        self._body: deque[bytes] = deque()
        self._first_byte = owner._first_byte_timeout  # this exchange's timeouts (_begin)
        self._idle_timeout = owner._read_timeout
        self._reset()

    def _reset(self) -> None:
        self._body.clear()
        self._phase = 0  # 0: awaiting headers, 1: body, 2: complete
        self._status = 0
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._keep_alive = False
        self._head_only = False
        self._got_bytes = False
        self._error: RelayError | None = None
        self._buffered = 0
        self._paused = False
        self._reading_all = False  # read(): the whole body is wanted, up to the body limit
        self._high_water = _HIGH_WATER
        self._deadline = math.inf  # the exchange's total deadline (loop time)
        self._waiter: asyncio.Future[None] | None = None
        self._last_data = 0.0
        self._read_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._phase == 2:  # bytes after the response (or while pooled): never reuse
            self._keep_alive = False
            if self._idle:
                self.abort()
            return
        self._got_bytes = True
        now = self._last_data = self._loop.time()
        if now >= self._deadline:
            self._fail(total_expired())
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(interrupted(False), exc)

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost decides what the EOF meant

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._owner._conns.discard(self)
        if self._phase == 1 and exc is None and self._close_delimited():
            self._phase = 2  # the connection end marks the body end
            self._keep_alive = False
            self._cancel_read_timer()
            self._wake()
        elif self._phase != 2 and self._error is None:
            self._fail(interrupted(False), exc)

    # -- httptools callbacks ----------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._phase == 0:
            self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._phase != 0:
            self._keep_alive = False
            return
        status = self._parser.get_status_code()
        if status < 200:  # 100-continue and friends: wait for the real response
            self._raw_headers = []
            return
        self._status = status
        self._keep_alive = self._parser.should_keep_alive()
        self._phase = 1
        if self._head_only:
            self._phase = 2
            self._keep_alive = False
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._phase != 1:
            self._keep_alive = False
            return
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > self._high_water:
            self._over_high_water()
        self._wake()

    def on_message_complete(self) -> None:
        if self._phase == 1:
            self._phase = 2
            self._cancel_read_timer()
            self._wake()

    # -- the response (UpstreamResponse) ----------------------------------

    @property
    def status(self) -> int:
        return self._status

    def header(self, name: str) -> str | None:
        want = name.lower().encode("latin-1")
        for key, value in self._raw_headers:
            if key.lower() == want:
                return value.decode("latin-1")
        return None

    async def read(self) -> bytes:
        limit = self._high_water = self._owner._max_body
        self._reading_all = True  # the whole body is wanted: buffer it, up to the limit
        if self._buffered > limit:
            self.abort()
            raise too_large(limit)
        if self._paused:
            self._resume()
        while self._phase != 2:
            if self._error is not None:
                raise self._error
            await self._wait_body()
        if self._error is not None:  # failed, then completed in the same segment
            raise self._error
        body = self._body
        self._buffered = 0
        if len(body) == 1:
            return body.popleft()
        data = b"".join(body)
        body.clear()
        return data

    def chunks(self) -> _Conn:
        return self

    def __aiter__(self) -> _Conn:
        return self

    async def __anext__(self) -> bytes:
        body = self._body
        while not body:
            if self._phase == 2:
                raise StopAsyncIteration
            if self._error is not None:
                raise self._error
            await self._wait_body()
        if len(body) == 1:
            data = body.popleft()
        else:
            data = b"".join(body)
            body.clear()
        self._buffered = 0
        if self._paused:
            self._resume()
        return data

    # -- internals --------------------------------------------------------

    def _begin(
        self, data: bytes, head_only: bool, deadline: float, first_byte: float, idle: float
    ) -> None:
        self._reset()
        self._head_only = head_only
        self._deadline = deadline
        self._first_byte = first_byte
        self._idle_timeout = idle
        assert self._transport is not None
        self._transport.write(data)

    async def _wait(self) -> None:
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    async def _wait_body(self) -> None:
        if self._read_timer is None:
            when = min(self._last_data + self._idle_timeout, self._deadline)
            self._read_timer = self._loop.call_at(when, self._check_read)
        await self._wait()

    def _check_read(self) -> None:
        self._read_timer = None
        if self._phase != 1:
            return
        now = self._loop.time()
        if now >= self._deadline - 0.001:  # even if nobody waits: stop a busy endless body
            self._fail(total_expired())
            return
        if self._waiter is None:
            return  # nobody is waiting: re-armed by the next wait
        limit = self._idle_timeout
        if now - self._last_data >= limit - 0.001:
            self._fail(idle_timed_out(limit))
        else:
            when = min(self._last_data + limit, self._deadline)
            self._read_timer = self._loop.call_at(when, self._check_read)

    def _headers_expired(self) -> None:
        if self._phase == 0:
            late = self._loop.time() >= self._deadline - 0.001
            self._fail(total_expired() if late else first_byte_timed_out(self._first_byte))

    def _over_high_water(self) -> None:
        if self._reading_all:
            self._fail(too_large(self._high_water))
        elif not self._paused:
            assert self._transport is not None
            self._transport.pause_reading()
            self._paused = True

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _resume(self) -> None:
        self._paused = False
        self._last_data = self._loop.time()  # the silence was ours, not the upstream's
        if self._transport is not None and not self._closed:
            self._transport.resume_reading()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, err: RelayError, cause: BaseException | None = None) -> None:
        if self._error is None and self._phase != 2:
            err.__cause__ = cause
            self._error = err
        self._cancel_read_timer()
        self.abort()
        self._wake()

    def _close_delimited(self) -> bool:
        heads = {key.lower(): value.lower() for key, value in self._raw_headers}
        return b"content-length" not in heads and b"chunked" not in heads.get(
            b"transfer-encoding", b""
        )

    def abort(self) -> None:
        self._closed = True
        self._keep_alive = False
        self._cancel_read_timer()
        if self._transport is not None:
            self._transport.abort()


class _Exchange:
    """``async with transport.request(...)``: send, await headers, then release or abort."""

    __slots__ = ("_conn", "_req", "_t")

    def __init__(self, t: FastTransport, req: UpstreamRequest) -> None:
        self._t = t
        self._req = req
        self._conn: _Conn | None = None

    async def __aenter__(self) -> _Conn:
        t = self._t
        req = self._req
        key, data = t._encode(req)
        loop = t._loop
        now = loop.time()
        total = now + t._total_timeout if t._total_timeout > 0 else math.inf
        timeouts = req.timeouts
        first_byte = t._first_byte_timeout
        idle = t._read_timeout
        if timeouts is not None:
            if timeouts[1] is not None:
                first_byte = timeouts[1]
            if timeouts[2] is not None:
                idle = timeouts[2]
        deadline = min(now + first_byte, total)
        head_only = req.method.upper() == "HEAD"
        for attempt in (0, 1):
            conn = t._acquire(key) if attempt == 0 else None
            if conn is None:
                connect = t._connect_timeout
                if timeouts is not None and timeouts[0] is not None:
                    connect = timeouts[0]
                conn = await t._connect(key, connect, deadline, first_byte, total)
            self._conn = conn
            timer = loop.call_at(deadline, conn._headers_expired)
            try:
                conn._begin(data, head_only, total, first_byte, idle)
                while conn._phase == 0:
                    err = conn._error
                    if err is not None:
                        if (
                            attempt == 0
                            and conn._reused
                            and not conn._got_bytes
                            and not isinstance(err, UpstreamTimeout)
                        ):
                            break  # a stale pooled connection: retry once on a fresh one
                        raise err
                    await conn._wait()
            except BaseException:
                conn.abort()
                raise
            finally:
                timer.cancel()
            if conn._status == 407 and key[3] is not None:  # absolute form: the proxy answered
                conn.abort()
                raise proxy_refused(407, "Proxy Authentication Required")
            if conn._phase != 0:
                return conn
        raise AssertionError("unreachable")

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        conn = self._conn
        assert conn is not None
        if exc_type is None and conn._phase == 2 and conn._keep_alive and not conn._closed:
            self._t._release(conn)
        else:
            conn.abort()


class FastTransport:
    def __init__(self, settings: Settings, proxies: ProxyResolver | None = None) -> None:
        self._connect_timeout = settings.connect_timeout
        self._first_byte_timeout = settings.first_byte_timeout
        self._read_timeout = settings.read_timeout
        self._total_timeout = settings.total_timeout
        self._max_body = settings.max_upstream_body_bytes
        proxies = proxies if proxies is not None else ProxyResolver()
        self._encode = RequestEncoder(proxies).encode
        self._ws = WebSocketTransport(settings, proxies)  # ws:// and wss:// URLs
        self._streamed = StreamedBodies(settings, proxies)  # uploads (transport/streamed.py)
        self._pool: dict[_Key, list[_Conn]] = {}
        self._conns: set[_Conn] = set()
        self._ssl = make_ssl_context(settings)
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop  # set by start()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._sweeper = self._loop.call_later(_SWEEP_EVERY, self._sweep)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self._conns):
            conn.abort()
        self._pool.clear()
        await self._ws.close()
        await self._streamed.close()

    def request(
        self, req: UpstreamRequest, *, stream: bool
    ) -> _Exchange | AbstractAsyncContextManager[UpstreamResponse]:
        if req.url.startswith("ws"):  # ws:// or wss:// (transport/websocket.py)
            return self._ws.request(req, stream=stream)
        if req.stream_body is not None:
            return self._streamed.request(req, stream)
        return _Exchange(self, req)

    # -- pool -------------------------------------------------------------

    def _acquire(self, key: _Key) -> _Conn | None:
        idle = self._pool.get(key)
        if not idle:
            return None
        now = self._loop.time()
        while idle:
            conn = idle.pop()
            if conn._closed or now - conn._idle_since > _IDLE_TTL:
                conn.abort()
                continue
            conn._reused = True
            conn._idle = False
            return conn
        return None

    def _release(self, conn: _Conn) -> None:
        conn._idle_since = self._loop.time()
        conn._idle = True
        conn._waiter = None
        conn._body.clear()
        idle = self._pool.get(conn._key)
        if idle is None:
            idle = self._pool[conn._key] = []
        idle.append(conn)

    def _sweep(self) -> None:
        cutoff = self._loop.time() - _IDLE_TTL
        for key, idle in list(self._pool.items()):
            for conn in idle:
                if conn._idle_since < cutoff:
                    conn.abort()
            idle[:] = [conn for conn in idle if not conn._closed]
            if not idle:
                del self._pool[key]
        self._sweeper = self._loop.call_later(_SWEEP_EVERY, self._sweep)

    async def _connect(
        self, key: _Key, connect: float, deadline: float, first_byte: float, total: float
    ) -> _Conn:
        """A new connection within ``connect`` seconds and before the headers' ``deadline``."""
        scheme, host, port, proxy = key
        ctx = self._ssl if scheme == "https" else None
        budget = min(connect, deadline - self._loop.time())
        try:
            async with asyncio.timeout(max(budget, 0.0)):
                if proxy is None:
                    _, conn = await self._loop.create_connection(
                        lambda: _Conn(self, key),
                        host,
                        port,
                        ssl=ctx,
                        server_hostname=host if ctx is not None else None,
                    )
                else:
                    conn = await connect_through(
                        self._loop, proxy, host, port, ctx, lambda: _Conn(self, key)
                    )
        except TimeoutError as exc:
            if budget >= connect:
                raise connect_timed_out(connect) from exc
            late = self._loop.time() >= total - 0.001
            raise (total_expired() if late else first_byte_timed_out(first_byte)) from exc
        except ssl.SSLCertVerificationError as exc:
            raise tls_failed(exc) from exc
        except (OSError, ValueError) as exc:
            raise interrupted(True) from exc
        self._conns.add(conn)
        return conn
