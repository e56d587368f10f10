"""The WebSocket path of both transport backends (transport/websocket.py) against the Spark
WebSocket emulator on loopback: a stream as SSE events, read(), a refused upgrade, the
first-byte, idle and total timeouts (settings and per request), cancellation, a server that
closes early, the body bound and a refused connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from transport_kit import BACKENDS, ConnectProxy, open_transport

from relaygate.emulator import EmulatorServer
from relaygate.errors import UpstreamError, UpstreamTimeout
from relaygate.providers.base import Target, UpstreamRequest
from relaygate.providers.spark_ws import SparkWSAdaptor
from relaygate.relay.sse import SSEDecoder
from relaygate.transport.base import Transport

KEY = "spark-app|spark-secret|spark-key"
BODY = {"model": "lite", "messages": [{"role": "user", "content": "hi"}]}
A = SparkWSAdaptor()


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer("spark_ws") as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(emu: EmulatorServer) -> None:
    # a previous test's socket may still be in the emulator's hands (a timed-out client's
    # stream notices the close at its next frame): wait for it to end first, or its
    # disconnect would be counted in this test's stats
    deadline = time.monotonic() + 5
    while emu.stats.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    emu.reset()


@pytest.fixture(params=BACKENDS)
async def t(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    async with open_transport(request.param, first_byte_timeout=2.0, read_timeout=2.0) as tr:
        yield tr


def req(emu: EmulatorServer, model: str = "lite", key: str = KEY, **kw: Any) -> UpstreamRequest:
    target = Target(1, "spark_ws", "spark_ws", emu.origin, key, model)
    r = A.chat_request(target, {**BODY, "model": model}, True)
    for name, value in kw.items():
        setattr(r, name, value)
    return r


def header(frame: bytes) -> dict[str, Any]:
    obj = orjson.loads(frame)
    assert isinstance(obj, dict)
    h = obj["header"]
    assert isinstance(h, dict)
    return h


async def wait_for(check: Any, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return bool(check())


async def test_stream_is_one_sse_event_per_frame(t: Transport, emu: EmulatorServer) -> None:
    emu.configure(chunks=4)
    async with t.request(req(emu), stream=True) as resp:
        assert resp.status == 200
        assert resp.header("Content-Type") == "text/event-stream"
        raw = [c async for c in resp.chunks()]
    assert all(c.startswith(b"data: {") and c.endswith(b"}\n\n") for c in raw)
    events = SSEDecoder().feed(b"".join(raw))
    statuses = [header(data)["status"] for _, data in events]
    assert statuses == [0, 1, 1, 2]
    # the upgrade, then the request frame as sent
    upgrade, frame = emu.stats.recorded
    assert (upgrade.method, upgrade.path, frame.method) == ("GET", "/v1.1/chat", "WS")
    assert frame.body["payload"]["message"]["text"] == BODY["messages"]
    assert emu.stats.streams_completed == 1


async def test_read_joins_the_frames(t: Transport, emu: EmulatorServer) -> None:
    emu.configure(chunks=3)
    async with t.request(req(emu), stream=False) as resp:
        assert resp.status == 200
        raw = await resp.read()
    lines = raw.split(b"\n")
    assert [header(line)["status"] for line in lines] == [0, 1, 2]
    obj, usage = A.chat_response(Target(1, "spark_ws", "spark_ws", emu.origin, KEY, "lite"), raw)
    assert obj["choices"][0]["message"]["content"] == emu.knobs.reply
    assert usage is not None and usage.total_tokens > 0


async def test_error_frame_ends_the_answer(t: Transport, emu: EmulatorServer) -> None:
    async with t.request(req(emu, "error-429"), stream=False) as resp:
        raw = await resp.read()
    assert header(raw)["code"] == 11202 and header(raw)["status"] == 2


async def test_refused_upgrade_is_a_status(t: Transport, emu: EmulatorServer) -> None:
    async with t.request(req(emu, key="spark-app|wrong-secret|spark-key"), stream=True) as resp:
        assert resp.status == 401
        assert await resp.read() == b""
        assert [c async for c in resp.chunks()] == []
    emu.configure(retry_after=7, fail_status=429)  # an injected failure comes after the upgrade
    async with t.request(req(emu), stream=False) as resp:
        assert resp.status == 200
        assert header(await resp.read())["code"] == 11202


async def test_stale_date_is_403(emu: EmulatorServer) -> None:
    old = SparkWSAdaptor(clock=lambda: time.time() - 3600)
    r = old.chat_request(Target(1, "spark_ws", "spark_ws", emu.origin, KEY, "lite"), BODY, True)
    async with open_transport("fast") as t, t.request(r, stream=True) as resp:
        assert resp.status == 403


async def test_first_byte_timeout(t: Transport, emu: EmulatorServer) -> None:
    emu.configure(latency_ms=1500)
    began = time.monotonic()
    r = req(emu, timeouts=(None, 0.3, None))
    with pytest.raises(UpstreamTimeout, match=r"first byte timeout, 0\.3 s"):
        async with t.request(r, stream=True):
            pass
    assert time.monotonic() - began < 1.2


async def test_hang_times_out_and_the_server_sees_the_close(
    t: Transport, emu: EmulatorServer
) -> None:
    with pytest.raises(UpstreamTimeout, match="first byte"):
        async with t.request(req(emu, "hang", timeouts=(None, 0.3, None)), stream=False):
            pass
    assert await wait_for(lambda: emu.stats.aborted == 1 and emu.stats.in_flight == 0)


async def test_idle_timeout(t: Transport, emu: EmulatorServer) -> None:
    emu.configure(chunks=3, chunk_interval_ms=1500)
    async with t.request(req(emu, timeouts=(None, None, 0.3)), stream=True) as resp:
        it = resp.chunks()
        first = await it.__anext__()
        assert header(first[6:-2])["status"] == 0
        with pytest.raises(UpstreamTimeout, match=r"idle timeout, 0\.3 s"):
            await it.__anext__()


async def test_total_timeout(emu: EmulatorServer) -> None:
    emu.configure(chunks=8, chunk_interval_ms=200)
    for backend in BACKENDS:
        async with open_transport(backend, total_timeout=0.5) as t:
            with pytest.raises(UpstreamTimeout, match="did not finish in time"):
                async with t.request(req(emu), stream=False) as resp:
                    await resp.read()


async def test_cancellation_closes_the_socket(t: Transport, emu: EmulatorServer) -> None:
    emu.configure(chunks=10, chunk_interval_ms=300)
    got_one = asyncio.Event()

    async def consume() -> None:
        async with t.request(req(emu), stream=True) as resp:
            async for _ in resp.chunks():
                got_one.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_one.wait(), 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the emulator notices at once (its next frame fails or its handler is cancelled)
    assert await wait_for(lambda: emu.stats.disconnected == 1, 1.5)
    assert emu.stats.streams_completed == 0


async def test_server_closing_early_is_an_interrupted_response(
    t: Transport, emu: EmulatorServer
) -> None:
    emu.configure(chunks=5, cut_after=2)
    async with t.request(req(emu), stream=True) as resp:
        got: list[bytes] = []
        with pytest.raises(UpstreamError, match="interrupted"):
            async for c in resp.chunks():
                got.append(c)
    assert len(got) == 2
    with pytest.raises(UpstreamError, match="interrupted"):
        async with t.request(req(emu), stream=False) as resp:
            await resp.read()
    emu.configure(cut_after=0)  # closed before any frame: a failure before the response
    with pytest.raises(UpstreamError):
        async with t.request(req(emu), stream=True):
            pass


async def test_body_bound(emu: EmulatorServer) -> None:
    emu.configure(chunks=5)
    for backend in BACKENDS:
        async with open_transport(backend, max_upstream_body_bytes=500) as t:
            with pytest.raises(UpstreamError, match="larger than 500 bytes"):
                async with t.request(req(emu), stream=False) as resp:
                    await resp.read()
        async with open_transport(backend, max_upstream_body_bytes=100) as t:
            with pytest.raises(UpstreamError, match="larger than 100 bytes"):
                async with t.request(req(emu), stream=True) as resp:
                    pass


async def test_connection_refused(t: Transport, emu: EmulatorServer) -> None:
    r = req(emu)
    r.url = "ws://127.0.0.1:1/v1.1/chat"
    with pytest.raises(UpstreamError, match="Could not connect"):
        async with t.request(r, stream=True):
            pass


async def test_through_an_http_proxy(t: Transport, emu: EmulatorServer) -> None:
    """A ws:// call goes to the proxy in absolute form (a wss:// one through CONNECT, as
    for https), with the proxy's credentials."""
    proxy = await ConnectProxy(auth="relay:pw").start()
    try:
        r = req(emu, proxy=f"http://relay:pw@127.0.0.1:{proxy.port}")
        async with t.request(r, stream=False) as resp:
            assert resp.status == 200
            lines = (await resp.read()).split(b"\n")
        assert header(lines[-1])["status"] == 2
        assert len(proxy.forwarded) == 1 and proxy.forwarded[0].startswith(b"GET ws://127.0.0.1:")
    finally:
        await proxy.stop()
