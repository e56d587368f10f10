"""The httptools upstream transport against raw asyncio servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from relaygate.errors import UpstreamError, UpstreamTimeout
from relaygate.providers.base import UpstreamRequest
from relaygate.settings import Settings
from relaygate.transport.factory import create_transport
from relaygate.transport.fast import FastTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.eof = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.eof.set()
        finally:
            writer.close()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def read_request(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        return head, body

    async def wait_eof(self, reader: asyncio.StreamReader) -> None:
        """Wait until the client closes its end."""
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        self.eof.set()

    def url(self, path: str = "/v1/chat/completions") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[Server] = []

    async def make(handler: Handler) -> Server:
        s = Server(handler)
        await s.start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        assert s.server is not None
        s.server.close()


@pytest.fixture
async def transport() -> AsyncIterator[FastTransport]:
    settings = Settings(
        connect_timeout=0.5, first_byte_timeout=0.4, read_timeout=0.3, http_client="fast"
    )
    t = create_transport(settings)
    assert isinstance(t, FastTransport)
    await t.start()
    yield t
    await t.close()


def post(url: str, body: bytes = b'{"x":1}') -> UpstreamRequest:
    return UpstreamRequest(
        url=url,
        headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        body=body,
    )


def reply(status: str, body: bytes, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 {status}\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)


async def test_content_length_body_and_request_shape(serve, transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(reply("200 OK", b"hello", "Content-Type: application/json", "X-Up: 1"))
        await srv.wait_eof(r)

    srv = await serve(handler)
    async with transport.request(post(srv.url("/v1/x?a=b")), stream=False) as resp:
        assert resp.status == 200
        assert resp.header("content-type") == "application/json"
        assert resp.header("X-UP") == "1"
        assert resp.header("missing") is None
        assert await resp.read() == b"hello"
    head, body = srv.requests[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/x?a=b HTTP/1.1"
    assert f"Host: 127.0.0.1:{srv.port}" in lines
    assert "Authorization: Bearer k" in lines
    assert "Accept-Encoding: identity" in lines
    assert "User-Agent: relaygate" in lines
    assert "Content-Length: 7" in lines
    assert body == b'{"x":1}'


async def test_caller_headers_win(serve, transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(reply("200 OK", b""))
        await srv.wait_eof(r)

    srv = await serve(handler)
    req = UpstreamRequest(
        url=srv.url(), headers={"accept-encoding": "gzip", "user-agent": "sdk/1"}, body=b""
    )
    async with transport.request(req, stream=False) as resp:
        assert await resp.read() == b""
    lines = srv.requests[0][0].decode().split("\r\n")
    assert "accept-encoding: gzip" in lines and "user-agent: sdk/1" in lines
    assert not any(x.startswith(("Accept-Encoding", "User-Agent")) for x in lines)


async def test_chunked_body(serve, transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        for _ in range(2):
            await srv.read_request(r)
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            w.write(chunked(b"data: 1\n\n", b"data: 2\n\n") + b"0\r\n\r\n")
        await srv.wait_eof(r)

    srv = await serve(handler)
    async with transport.request(post(srv.url()), stream=True) as resp:
        got = [c async for c in resp.chunks()]
    assert b"".join(got) == b"data: 1\n\ndata: 2\n\n"
    async with transport.request(post(srv.url()), stream=False) as resp:
        assert await resp.read() == b"data: 1\n\ndata: 2\n\n"
    assert srv.connections == 1


async def test_close_delimited_body(serve, transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ")
        await w.drain()
        await asyncio.sleep(0.05)
        w.write(b"part two")
        # the handler returns: the server closes, marking the body end

    srv = await serve(handler)
    async with transport.request(post(srv.url()), stream=False) as resp:
        assert await resp.read() == b"part one, part two"
    async with transport.request(post(srv.url()), stream=True) as resp:
        assert b"".join([c async for c in resp.chunks()]) == b"part one, part two"
    assert srv.connections == 2  # never pooled


async def test_stream_chunks_arrive_paced(serve, transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
        w.write(b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(4):
            w.write(chunked(b"data: %d\n\n" % i))
            await w.drain()
            await asyncio.sleep(0.15)
        w.write(b"0\r\n\r\n")
        await srv.wait_eof(r)

    srv = await serve(handler)
    t0 = time.monotonic()
    arrivals: list[tuple[float, bytes]] = []
    async with transport.request(post(srv.url()), stream=True) as resp:
        assert resp.header("Content-Type") == "text/event-stream"
        async for data in resp.chunks():
            arrivals.append((time.monotonic() - t0, data))
    assert [d for _, d in arrivals] == [b"data: %d\n\n" % i for i in range(4)]
    assert arrivals[0][0] < arrivals[-1][0] - 0.3, arrivals


async def test_keep_alive_reuse_and_error_statuses(serve, transport) -> None:
    answers = [
        reply("200 OK", b"one"),
        reply("404 Not Found", b'{"error":"nope"}'),
        reply("503 Service Unavailable", b"busy"),
        reply("200 OK", b"four"),
    ]

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while answers:
            await srv.read_request(r)
            w.write(answers.pop(0))
        await srv.wait_eof(r)

    srv = await serve(handler)
    seen = []
    for _ in range(4):
        async with transport.request(post(srv.url()), stream=False) as resp:
            seen.append((resp.status, await resp.read()))
    assert seen == [(200, b"one"), (404, b'{"error":"nope"}'), (503, b"busy"), (200, b"four")]
    assert srv.connections == 1


async def test_connection_close_not_pooled(serve, transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(reply("200 OK", b"bye", "Connection: close"))
        await srv.wait_eof(r)

    srv = await serve(handler)
    for _ in range(2):
        async with transport.request(post(srv.url()), stream=False) as resp:
            assert await resp.read() == b"bye"
    assert srv.connections == 2
    assert not any(transport._pool.values())


async def test_stale_pooled_connection_closed_by_server(serve, transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(reply("200 OK", b"ok"))
        await w.drain()  # then close: the pooled connection goes stale

    srv = await serve(handler)
    for _ in range(2):
        async with transport.request(post(srv.url()), stream=False) as resp:
            assert await resp.read() == b"ok"
        await asyncio.sleep(0.05)
    assert srv.connections == 2


async def test_stale_pooled_connection_retried_once(serve, transport) -> None:
    """The server reads the request on the reused connection, then closes without a byte."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        first = srv.connections == 1
        await srv.read_request(r)
        w.write(reply("200 OK", b"ok"))
        await w.drain()
        if first:
            await srv.read_request(r)  # then hang up without answering
        else:
            await srv.wait_eof(r)

    srv = await serve(handler)
    for _ in range(2):
        async with transport.request(post(srv.url()), stream=False) as resp:
            assert await resp.read() == b"ok"
    assert srv.connections == 2
    assert len(srv.requests) == 3


async def test_connect_refused(transport) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UpstreamError, match="connect"):
        async with transport.request(post(f"http://127.0.0.1:{port}/x"), stream=False):
            pass


async def test_headers_never_sent(serve, transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        await srv.wait_eof(r)

    srv = await serve(handler)
    t0 = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="did not answer"):
        async with transport.request(post(srv.url()), stream=False):
            pass
    assert 0.35 < time.monotonic() - t0 < 1.0
    await asyncio.wait_for(srv.eof.wait(), 1)  # and the connection was closed


@pytest.mark.parametrize("stream", [False, True])
async def test_body_stalls(serve, transport, stream: bool) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
        await srv.wait_eof(r)

    srv = await serve(handler)
    async with transport.request(post(srv.url()), stream=stream) as resp:
        t0 = time.monotonic()
        with pytest.raises(UpstreamTimeout, match="stopped sending"):
            if stream:
                async for _ in resp.chunks():
                    pass
            else:
                await resp.read()
        assert 0.2 < time.monotonic() - t0 < 0.8
    await asyncio.wait_for(srv.eof.wait(), 1)


@pytest.mark.parametrize("stream", [False, True])
async def test_cut_mid_body(serve, transport, stream: bool) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"half"))

    srv = await serve(handler)
    async with transport.request(post(srv.url()), stream=stream) as resp:
        with pytest.raises(UpstreamError, match="interrupted"):
            if stream:
                async for _ in resp.chunks():
                    pass
            else:
                await resp.read()


async def test_malformed_response(serve, transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(b"HTTX/9 banana\r\n\r\n")
        await srv.wait_eof(r)

    srv = await serve(handler)
    with pytest.raises(UpstreamError, match="interrupted"):
        async with transport.request(post(srv.url()), stream=False):
            pass
    await asyncio.wait_for(srv.eof.wait(), 1)


async def test_100_continue_skipped(serve, transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n" + reply("201 Created", b"made", "X-A: b"))
        await srv.wait_eof(r)

    srv = await serve(handler)
    async with transport.request(post(srv.url()), stream=False) as resp:
        assert (resp.status, resp.header("x-a"), await resp.read()) == (201, "b", b"made")


async def test_cancel_while_waiting_for_headers_closes(serve, transport) -> None:
    received = asyncio.Event()

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        received.set()
        await srv.wait_eof(r)

    srv = await serve(handler)

    async def call() -> None:
        async with transport.request(post(srv.url()), stream=False) as resp:
            await resp.read()

    task = asyncio.create_task(call())
    await asyncio.wait_for(received.wait(), 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(srv.eof.wait(), 0.2)
    assert not any(transport._pool.values())


async def test_cancel_mid_stream_closes(serve, transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"a"))
        await srv.wait_eof(r)

    srv = await serve(handler)
    got = asyncio.Event()

    async def call() -> None:
        async with transport.request(post(srv.url()), stream=True) as resp:
            async for _ in resp.chunks():
                got.set()

    task = asyncio.create_task(call())
    await asyncio.wait_for(got.wait(), 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(srv.eof.wait(), 0.2)


async def test_leaving_block_early_closes(serve, transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        w.write(chunked(b"data: first\n\n"))
        await srv.wait_eof(r)

    srv = await serve(handler)
    async with transport.request(post(srv.url()), stream=True) as resp:
        async for data in resp.chunks():
            assert data == b"data: first\n\n"
            break
    await asyncio.wait_for(srv.eof.wait(), 0.2)
    assert not any(transport._pool.values())


async def test_exception_in_block_closes(serve, transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
        await srv.wait_eof(r)

    srv = await serve(handler)
    with pytest.raises(KeyError):
        async with transport.request(post(srv.url()), stream=False) as resp:
            assert resp.status == 200
            raise KeyError("boom")
    await asyncio.wait_for(srv.eof.wait(), 0.2)


async def test_slow_consumer_pauses_reading(serve, transport) -> None:
    block = b"x" * 65536
    blocks = 48  # 3 MiB

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(block) * blocks}\r\n\r\n".encode())
        for _ in range(blocks):
            w.write(block)
            await w.drain()
        await srv.wait_eof(r)

    srv = await serve(handler)
    total = 0
    async with transport.request(post(srv.url()), stream=True) as resp:
        await asyncio.sleep(0.1)  # a slow consumer: the upstream fills the buffer
        assert resp._paused
        assert resp._buffered < 2 * 1024 * 1024
        async for data in resp.chunks():
            total += len(data)
    assert total == len(block) * blocks
