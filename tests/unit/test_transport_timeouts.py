"""Per-request upstream timeouts (``UpstreamRequest.timeouts``: connect, first byte, idle) for
both transport backends, against raw loopback servers: each overrides its setting in both
directions, None keeps the setting, and the error names the timeout that fired."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import pytest
from transport_kit import BACKENDS, RawServer, chat, drain_until_eof, open_transport, read_request

from relaygate.errors import UpstreamTimeout
from relaygate.providers.base import UpstreamRequest
from relaygate.transport.base import Transport

Timeouts = tuple[float | None, float | None, float | None] | None


def request(url: str, timeouts: Timeouts, *, stream: bool = False) -> UpstreamRequest:
    req = chat(url, stream=stream)
    req.timeouts = timeouts
    return req


async def consume(t: Transport, req: UpstreamRequest, *, stream: bool) -> bytes:
    async with t.request(req, stream=stream) as resp:
        if stream:
            return b"".join([c async for c in resp.chunks()])
        return bytes(await resp.read())


async def hung_up_within(r: asyncio.StreamReader, delay: float) -> bool:
    """Wait ``delay`` seconds; True at once if the client closes the connection meanwhile."""
    try:
        await asyncio.wait_for(drain_until_eof(r), delay)
    except TimeoutError:
        return False
    return True


def late_headers(delay: float) -> RawServer:
    """Answers every request ``delay`` seconds late."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            await read_request(r)
            if await hung_up_within(r, delay):
                return
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await w.drain()

    return RawServer(handler)


def pausing_body(pause: float) -> RawServer:
    """Headers and a first chunk at once, then ``pause`` seconds of silence, then the rest."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            await read_request(r)
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            await w.drain()
            if await hung_up_within(r, pause):
                return
            w.write(b"4\r\nlast\r\n0\r\n\r\n")
            await w.drain()

    return RawServer(handler)


@contextlib.contextmanager
def full_backlog() -> Iterator[str]:
    """A URL whose listening socket's accept queue is full: new connects hang (SYN dropped)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1/chat/completions"
    finally:
        for c in fillers:
            c.close()
        srv.close()


# -- connect --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_per_request_connect_timeout(backend: str) -> None:
    with full_backlog() as url:
        async with open_transport(backend, connect_timeout=5.0) as t:
            t0 = time.monotonic()
            with pytest.raises(UpstreamTimeout) as info:
                await consume(t, request(url, (0.3, None, None)), stream=False)
            elapsed = time.monotonic() - t0
            assert info.value.message == (
                "The upstream provider did not answer in time (connect timeout, 0.3 s)."
            )
            assert info.value.http_status(False) == 504
            assert 0.25 < elapsed < 1.0, elapsed
        async with open_transport(backend, connect_timeout=0.6) as t:  # None: the setting
            t0 = time.monotonic()
            with pytest.raises(UpstreamTimeout, match=r"connect timeout, 0\.6 s"):
                await consume(t, request(url, None), stream=False)
            assert 0.5 < time.monotonic() - t0 < 1.5


# -- first byte -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_per_request_first_byte_timeout(backend: str) -> None:
    srv = await late_headers(2.0).start()
    try:
        async with open_transport(backend, first_byte_timeout=5.0) as t:
            t0 = time.monotonic()
            with pytest.raises(UpstreamTimeout) as info:
                await consume(t, request(srv.url(), (None, 0.3, None)), stream=True)
            elapsed = time.monotonic() - t0
        assert info.value.message == (
            "The upstream provider did not answer in time (first byte timeout, 0.3 s)."
        )
        assert 0.25 < elapsed < 0.9, elapsed
        await asyncio.wait_for(srv.closed.wait(), 2)  # and we hung up
    finally:
        await srv.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_per_request_first_byte_longer_than_the_setting(backend: str) -> None:
    srv = await late_headers(0.8).start()
    try:
        async with open_transport(backend, first_byte_timeout=0.3) as t:
            assert await consume(t, request(srv.url(), (None, 3.0, None)), stream=False) == b"ok"
            with pytest.raises(UpstreamTimeout, match=r"first byte timeout, 0\.3 s"):
                await consume(t, request(srv.url(), None), stream=False)
            with pytest.raises(UpstreamTimeout, match=r"first byte timeout, 0\.3 s"):
                await consume(t, request(srv.url(), (None, None, None)), stream=False)
    finally:
        await srv.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_short_idle_timeout_does_not_cut_the_wait_for_headers(backend: str) -> None:
    srv = await late_headers(0.8).start()
    try:
        async with open_transport(backend, first_byte_timeout=3.0) as t:  # per request
            assert await consume(t, request(srv.url(), (None, None, 0.3)), stream=True) == b"ok"
        async with open_transport(backend, first_byte_timeout=3.0, read_timeout=0.3) as t:
            assert await consume(t, request(srv.url(), None), stream=False) == b"ok"
    finally:
        await srv.stop()


# -- idle -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stream", [True, False])
async def test_per_request_idle_timeout(backend: str, stream: bool) -> None:
    srv = await pausing_body(2.0).start()
    try:
        async with open_transport(backend, read_timeout=5.0) as t:
            got: list[bytes] = []
            t0 = time.monotonic()
            with pytest.raises(UpstreamTimeout) as info:
                async with t.request(request(srv.url(), (None, None, 0.3)), stream=stream) as r:
                    if stream:
                        async for chunk in r.chunks():
                            got.append(chunk)
                    else:
                        await r.read()
            elapsed = time.monotonic() - t0
        assert info.value.message == (
            "The upstream provider stopped sending in time (idle timeout, 0.3 s)."
        )
        assert 0.25 < elapsed < 0.9, elapsed
        if stream:
            assert b"".join(got) == b"first"
        await asyncio.wait_for(srv.closed.wait(), 2)
    finally:
        await srv.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_per_request_idle_longer_than_the_setting_and_not_kept_by_the_pool(
    backend: str,
) -> None:
    srv = await pausing_body(0.6).start()
    try:
        async with open_transport(backend, read_timeout=0.3) as t:
            body = await consume(t, request(srv.url(), (None, None, 2.0)), stream=True)
            assert body == b"firstlast"
            # the same pooled connection, no per-request timeouts: the setting again
            with pytest.raises(UpstreamTimeout, match=r"idle timeout, 0\.3 s"):
                await consume(t, request(srv.url(), None), stream=True)
        assert srv.connections == 1
    finally:
        await srv.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_all_three_at_once(backend: str) -> None:
    srv = await pausing_body(0.5).start()
    try:
        async with open_transport(backend, read_timeout=0.2, first_byte_timeout=0.2) as t:
            req = request(srv.url(), (1.0, 1.0, 1.0))
            assert await consume(t, req, stream=False) == b"firstlast"
    finally:
        await srv.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_late_headers_still_hit_the_total_deadline(backend: str) -> None:
    srv = await late_headers(2.0).start()
    try:
        async with open_transport(backend, total_timeout=0.4) as t:
            with pytest.raises(UpstreamTimeout, match="did not finish in time"):
                await consume(t, request(srv.url(), (None, 1.5, None)), stream=False)
    finally:
        await srv.stop()
