"""Bounds on what an upstream can make the gateway hold: the size of a non-streamed body
(RELAYGATE_MAX_UPSTREAM_BODY_BYTES) and the total time of one exchange
(RELAYGATE_TOTAL_TIMEOUT), for both transport backends, against raw loopback servers."""

from __future__ import annotations

import asyncio
import time

import pytest
from transport_kit import BACKENDS, RawServer, chat, drain_until_eof, open_transport, read_request

from relaygate.errors import UpstreamError, UpstreamTimeout
from relaygate.transport.base import Transport

MiB = 1024 * 1024
BLOCK = b"x" * 65536


async def consume(t: Transport, url: str, *, stream: bool) -> bytes:
    async with t.request(chat(url, stream=stream), stream=stream) as resp:
        if stream:
            return b"".join([c async for c in resp.chunks()])
        return bytes(await resp.read())


# -- body size -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("framing", ["content-length", "chunked-endless"])
async def test_oversized_body_is_refused_and_the_connection_closed(
    backend: str, framing: str
) -> None:
    sent = [0]

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        if framing == "content-length":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (5 * MiB))
            blocks = 5 * MiB // len(BLOCK)
        else:  # no length at all: only the limit stops it
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            blocks = 1 << 30
        for _ in range(blocks):
            w.write(b"%x\r\n%s\r\n" % (len(BLOCK), BLOCK) if framing != "content-length" else BLOCK)
            await w.drain()
            sent[0] += len(BLOCK)
        await drain_until_eof(r)

    srv = await RawServer(handler).start()
    try:
        async with open_transport(backend, max_upstream_body_bytes=MiB) as t:
            with pytest.raises(UpstreamError) as info:
                await asyncio.wait_for(consume(t, srv.url(), stream=False), 10)
            assert info.value.http_status(False) == 502
            assert info.value.message == (
                "The upstream provider's response is larger than 1048576 bytes."
            )
            await asyncio.wait_for(srv.closed.wait(), 2)  # we hung up
        if framing == "chunked-endless":
            assert sent[0] < 64 * MiB  # stopped early, not after buffering everything
    finally:
        await srv.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_body_at_the_limit_is_read_and_streams_are_not_limited(backend: str) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % MiB + b"y" * MiB)
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (3 * MiB) + b"z" * (3 * MiB))
        await drain_until_eof(r)

    srv = await RawServer(handler).start()
    try:
        async with open_transport(backend, max_upstream_body_bytes=MiB) as t:
            assert await consume(t, srv.url(), stream=False) == b"y" * MiB
            assert await consume(t, srv.url(), stream=True) == b"z" * (3 * MiB)
        assert srv.connections == 1
    finally:
        await srv.stop()


# -- total deadline --------------------------------------------------------------------


def trickle_body(framing: str) -> RawServer:
    """Headers at once, then one body byte every 50 ms for ~10 s (each gap < read timeout)."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        if framing == "chunked":
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        else:
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n")
        for _ in range(200):
            await asyncio.sleep(0.05)
            w.write(b"1\r\nx\r\n" if framing == "chunked" else b"x")
            await w.drain()
        await drain_until_eof(r)

    return RawServer(handler)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stream", [False, True])
async def test_trickling_body_hits_the_total_deadline(backend: str, stream: bool) -> None:
    srv = await trickle_body("chunked" if stream else "length").start()
    try:
        async with open_transport(backend, read_timeout=1.0, total_timeout=0.6) as t:
            t0 = time.monotonic()
            with pytest.raises(UpstreamTimeout) as info:
                await consume(t, srv.url(), stream=stream)
            elapsed = time.monotonic() - t0
        assert info.value.message == "The upstream provider did not finish in time."
        assert info.value.http_status(False) == 504
        assert 0.5 < elapsed < 1.5, elapsed
        await asyncio.wait_for(srv.closed.wait(), 2)
    finally:
        await srv.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_trickling_headers_hit_the_total_deadline(backend: str) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(100):
            await asyncio.sleep(0.05)
            w.write(b"X-Slow-%d: 1\r\n" % i)
            await w.drain()
        await drain_until_eof(r)

    srv = await RawServer(handler).start()
    try:
        async with open_transport(
            backend, first_byte_timeout=3.0, read_timeout=1.0, total_timeout=0.5
        ) as t:
            t0 = time.monotonic()
            with pytest.raises(UpstreamTimeout, match="did not finish in time"):
                await consume(t, srv.url(), stream=True)
            assert 0.4 < time.monotonic() - t0 < 1.4
    finally:
        await srv.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_endless_fast_stream_hits_the_total_deadline(backend: str) -> None:
    """Data always waiting: the consumer never blocks, the deadline must still apply."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        frame = b'data: {"choices":[{"delta":{"content":"again "}}]}\n\n'
        chunk = b"%x\r\n%s\r\n" % (len(frame) * 50, frame * 50)
        while True:
            w.write(chunk)
            await w.drain()

    srv = await RawServer(handler).start()
    received = 0
    try:
        async with open_transport(backend, total_timeout=0.5) as t:
            t0 = time.monotonic()
            with pytest.raises(UpstreamTimeout, match="did not finish in time"):
                async with t.request(chat(srv.url(), stream=True), stream=True) as resp:
                    async for data in resp.chunks():
                        received += len(data)
            assert 0.4 < time.monotonic() - t0 < 2.0
        assert received > 0
    finally:
        await srv.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_total_deadline_zero_is_off(backend: str) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n")
        for _ in range(8):
            await asyncio.sleep(0.1)
            w.write(b"x")
            await w.drain()
        await drain_until_eof(r)

    srv = await RawServer(handler).start()
    try:
        async with open_transport(backend, read_timeout=1.0, total_timeout=0) as t:
            assert await consume(t, srv.url(), stream=False) == b"x" * 8
    finally:
        await srv.stop()


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from relaygate.settings import Settings

    monkeypatch.delenv("RELAYGATE_TOTAL_TIMEOUT", raising=False)
    monkeypatch.delenv("RELAYGATE_MAX_UPSTREAM_BODY_BYTES", raising=False)
    s = Settings.from_env()
    assert (s.total_timeout, s.max_upstream_body_bytes) == (1800.0, 64 * MiB)
    monkeypatch.setenv("RELAYGATE_TOTAL_TIMEOUT", "0")
    monkeypatch.setenv("RELAYGATE_MAX_UPSTREAM_BODY_BYTES", "1048576")
    s = Settings.from_env()
    assert (s.total_timeout, s.max_upstream_body_bytes) == (0.0, MiB)
