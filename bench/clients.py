"""HTTP clients for the load generator (bench/loadgen.py): what to send (``Target``), what one
request produced (``Sample``) and two clients that send a target and time it.

* ``raw`` (default): a minimal keep-alive HTTP/1.1 client on asyncio + httptools that costs far
  less CPU per request and per stream chunk. On a 2-core machine the client shares the CPU with
  the servers it measures, so the leaner the better.
* ``aiohttp``.

For streams a sample records time-to-first-token (first SSE ``data:`` bytes), the gaps between
chunk arrivals and whether the stream ended with ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import time
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import httptools
import orjson

DEFAULT_MODEL = "gpt-4o-mini"


def chat_body(
    model: str = DEFAULT_MODEL,
    stream: bool = False,
    include_usage: bool = True,
    content: str = "Say hello.",
    max_tokens: int | None = None,
) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
        if include_usage:
            body["stream_options"] = {"include_usage": True}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return orjson.dumps(body)


@dataclass(frozen=True)
class Target:
    """What to send: one URL, one body, fixed headers."""

    url: str
    body: bytes
    stream: bool = False
    api_key: str | None = None
    timeout_s: float = 60.0

    @classmethod
    def chat(
        cls,
        base_url: str,
        model: str = DEFAULT_MODEL,
        stream: bool = False,
        api_key: str | None = None,
        include_usage: bool = True,
        timeout_s: float = 60.0,
    ) -> Target:
        url = base_url.rstrip("/")
        if not url.endswith("/chat/completions"):
            url += "/chat/completions"
        return cls(
            url=url,
            body=chat_body(model, stream, include_usage),
            stream=stream,
            api_key=api_key,
            timeout_s=timeout_s,
        )

    def headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h


@dataclass
class Sample:
    """One request's outcome. Times are in milliseconds."""

    start: float  # perf_counter() seconds at (scheduled) send
    status: int  # HTTP status, 0 when no response (see error)
    latency_ms: float
    error: str = ""
    ttft_ms: float = math.nan
    events: int = 0
    max_gap_ms: float = 0.0
    complete: bool = True
    send_lag_ms: float = 0.0  # open loop: how late the client actually sent vs the schedule

    @property
    def service_ms(self) -> float:
        """Latency from the actual send (excludes the client's own scheduling lag)."""
        return self.latency_ms - self.send_lag_ms


# --------------------------------------------------------------------------------------------
# Clients: aiohttp, and a lean raw HTTP/1.1 client (asyncio protocol + httptools)
# --------------------------------------------------------------------------------------------


def make_session(limit: int, timeout_s: float = 60.0) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=limit, limit_per_host=0, ttl_dns_cache=None, enable_cleanup_closed=False
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )


async def one_request(
    session: aiohttp.ClientSession,
    target: Target,
    headers: dict[str, str],
    start: float | None = None,
    gaps: list[float] | None = None,
) -> Sample:
    """Send one request and time it. ``start`` lets open-loop callers count from the schedule."""
    sent = time.perf_counter()
    t0 = sent if start is None else start
    lag = (sent - t0) * 1000.0
    try:
        async with session.post(target.url, data=target.body, headers=headers) as resp:
            status = resp.status
            if not target.stream or status != 200:
                await resp.read()
                return Sample(t0, status, (time.perf_counter() - t0) * 1000.0, send_lag_ms=lag)
            first = math.nan
            last = 0.0
            events = 0
            max_gap = 0.0
            tail = b""
            async for data in resp.content.iter_any():
                now = time.perf_counter()
                n = data.count(b"data:")
                if n:
                    if events == 0:
                        first = (now - t0) * 1000.0
                    else:
                        gap = (now - last) * 1000.0
                        if gap > max_gap:
                            max_gap = gap
                        if gaps is not None:
                            gaps.append(gap)
                    last = now
                    events += n
                tail = (tail + data)[-64:]
            end = time.perf_counter()
            complete = b"[DONE]" in tail
            return Sample(
                t0, status, (end - t0) * 1000.0, "", first, events, max_gap, complete, lag
            )
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # any transport failure counts as an error sample
        return Sample(
            t0,
            0,
            (time.perf_counter() - t0) * 1000.0,
            type(exc).__name__,
            complete=False,
            send_lag_ms=lag,
        )


class Client:
    """Sends one request of a target and returns its Sample."""

    async def request(
        self, target: Target, start: float | None = None, gaps: list[float] | None = None
    ) -> Sample:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class AiohttpClient(Client):
    def __init__(self, limit: int = 1024, timeout_s: float = 60.0) -> None:
        self.session = make_session(limit, timeout_s)
        self._headers: dict[Target, dict[str, str]] = {}

    async def request(
        self, target: Target, start: float | None = None, gaps: list[float] | None = None
    ) -> Sample:
        h = self._headers.get(target)
        if h is None:
            h = self._headers[target] = target.headers()
        return await one_request(self.session, target, h, start, gaps)

    async def close(self) -> None:
        await self.session.close()


class _RawConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.fut: asyncio.Future[None] | None = None
        self.stream = False
        self.gaps: list[float] | None = None
        self.t0 = 0.0
        self.status = 0
        self.events = 0
        self.first = math.nan
        self.last = 0.0
        self.max_gap = 0.0
        self.tail = b""
        self.end = 0.0
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(ConnectionResetError("connection closed by server"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.fut is not None and not self.fut.done():
                self.fut.set_exception(exc)
            self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def send(
        self, data: bytes, t0: float, stream: bool, gaps: list[float] | None
    ) -> asyncio.Future[None]:
        assert self.transport is not None
        self.fut = asyncio.get_running_loop().create_future()
        self.t0, self.stream, self.gaps = t0, stream, gaps
        self.status = 0
        self.events = 0
        self.first = math.nan
        self.last = 0.0
        self.max_gap = 0.0
        self.tail = b""
        self.transport.write(data)
        return self.fut

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if not self.stream:
            return
        now = time.perf_counter()
        n = body.count(b"data:")
        if n:
            if self.events == 0:
                self.first = (now - self.t0) * 1000.0
            else:
                gap = (now - self.last) * 1000.0
                if gap > self.max_gap:
                    self.max_gap = gap
                if self.gaps is not None:
                    self.gaps.append(gap)
            self.last = now
            self.events += n
        self.tail = (self.tail + body)[-64:]

    def on_message_complete(self) -> None:
        self.end = time.perf_counter()
        self.keep_alive = self.parser.should_keep_alive()
        if self.fut is not None and not self.fut.done():
            self.fut.set_result(None)


class RawClient(Client):
    """Minimal HTTP/1.1 client (keep-alive pool per host) for low client-side overhead.

    It does far less work per request and per stream chunk than aiohttp, so on a small machine
    the load generator takes less CPU away from the servers it measures.
    """

    def __init__(self, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self.idle: dict[tuple[str, int], list[_RawConn]] = {}
        self.all: set[_RawConn] = set()
        self._req: dict[Target, tuple[tuple[str, int], bytes]] = {}

    def _prepare(self, target: Target) -> tuple[tuple[str, int], bytes]:
        got = self._req.get(target)
        if got is None:
            u = urlsplit(target.url)
            host = u.hostname or "127.0.0.1"
            port = u.port or (443 if u.scheme == "https" else 80)
            path = u.path + (f"?{u.query}" if u.query else "")
            lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}"]
            lines += [f"{k}: {v}" for k, v in target.headers().items()]
            lines.append(f"Content-Length: {len(target.body)}")
            head = ("\r\n".join(lines) + "\r\n\r\n").encode()
            got = self._req[target] = ((host, port), head + target.body)
        return got

    async def request(
        self, target: Target, start: float | None = None, gaps: list[float] | None = None
    ) -> Sample:
        addr, data = self._prepare(target)
        sent = time.perf_counter()
        t0 = sent if start is None else start
        lag = (sent - t0) * 1000.0
        conn: _RawConn | None = None
        try:
            pool = self.idle.setdefault(addr, [])
            while pool and conn is None:
                c = pool.pop()
                if not c.closed:
                    conn = c
            if conn is None:
                loop = asyncio.get_running_loop()
                _, proto = await loop.create_connection(_RawConn, addr[0], addr[1])
                conn = proto
                self.all.add(conn)
            fut = conn.send(data, t0, target.stream, gaps)
            await asyncio.wait_for(fut, target.timeout_s)
            status = conn.status
            complete = True
            if target.stream and status == 200:
                complete = b"[DONE]" in conn.tail
            sample = Sample(
                t0,
                status,
                (conn.end - t0) * 1000.0,
                "",
                conn.first if target.stream else math.nan,
                conn.events,
                conn.max_gap,
                complete,
                lag,
            )
            if conn.keep_alive and not conn.closed:
                pool.append(conn)
            else:
                conn.abort()
                self.all.discard(conn)
            return sample
        except asyncio.CancelledError:
            if conn is not None:
                conn.abort()
            raise
        except Exception as exc:
            if conn is not None:
                conn.abort()
                self.all.discard(conn)
            return Sample(
                t0,
                0,
                (time.perf_counter() - t0) * 1000.0,
                type(exc).__name__,
                complete=False,
                send_lag_ms=lag,
            )

    async def close(self) -> None:
        for c in self.all:
            if c.transport is not None and not c.closed:
                c.transport.close()
        self.all.clear()
        self.idle.clear()
        await asyncio.sleep(0)


def make_client(kind: str, limit: int, timeout_s: float) -> Client:
    if kind == "aiohttp":
        return AiohttpClient(limit, timeout_s)
    if kind == "raw":
        return RawClient(timeout_s)
    raise ValueError(f"unknown client {kind!r} (raw | aiohttp)")
