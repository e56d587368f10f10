"""HTTP proxies: CONNECT tunnels to HTTPS upstreams, absolute-form requests to HTTP
upstreams, Proxy-Authorization, the environment's proxy variables, and errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import orjson
import pytest
import uvloop
from transport_kit import (
    BACKENDS,
    ConnectProxy,
    LoopbackCA,
    RawServer,
    TLSEmulator,
    chat,
    drain_until_eof,
    open_transport,
    read_request,
)

from relaygate.errors import UpstreamError
from relaygate.transport.base import Transport
from relaygate.transport.proxy import Proxy, ProxyResolver, parse_proxy


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LoopbackCA:
    return LoopbackCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
async def emulator(ca: LoopbackCA) -> AsyncIterator[TLSEmulator]:
    emu = await TLSEmulator(ca.server_context(), chunks=2).start()
    yield emu
    await emu.stop()


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    p = await ConnectProxy(auth="relay user:p@ss").start()
    yield p
    await p.stop()


def with_auth(p: ConnectProxy) -> str:
    return f"http://relay%20user:p%40ss@127.0.0.1:{p.port}"


async def exchange(
    t: Transport, url: str, *, proxy: str | None = None, stream: bool = False
) -> bytes:
    async with t.request(chat(url, stream=stream, proxy=proxy), stream=stream) as resp:
        assert resp.status == 200
        if stream:
            return b"".join([c async for c in resp.chunks()])
        return bytes(await resp.read())


@pytest.mark.parametrize("backend", BACKENDS)
async def test_https_through_connect_proxy_with_credentials(
    backend: str, ca: LoopbackCA, emulator: TLSEmulator, proxy: ConnectProxy
) -> None:
    async with open_transport(backend, ca_bundle=str(ca.ca_path)) as t:
        body = orjson.loads(await exchange(t, emulator.url(), proxy=with_auth(proxy)))
        assert body["object"] == "chat.completion"
        raw = await exchange(t, emulator.url(), proxy=with_auth(proxy), stream=True)
        assert raw.rstrip().endswith(b"data: [DONE]")
        await exchange(t, emulator.url(), proxy=with_auth(proxy))
    # one tunnel, reused for three exchanges; TLS inside it (the emulator speaks only TLS)
    assert proxy.connects == [f"127.0.0.1:{emulator.port}"]
    assert len(emulator.peers) == 1
    head = proxy.heads[0].decode()
    assert head.startswith(f"CONNECT 127.0.0.1:{emulator.port} HTTP/1.1\r\n")
    assert "Proxy-Authorization: Basic cmVsYXkgdXNlcjpwQHNz\r\n" in head  # "relay user:p@ss"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("creds", ["none", "wrong"])
async def test_proxy_407_becomes_a_clear_error(
    backend: str, creds: str, ca: LoopbackCA, emulator: TLSEmulator, proxy: ConnectProxy
) -> None:
    url = proxy.url if creds == "none" else f"http://relay%20user:nope@127.0.0.1:{proxy.port}"
    async with open_transport(backend, ca_bundle=str(ca.ca_path)) as t:
        with pytest.raises(UpstreamError) as info:
            await exchange(t, emulator.url(), proxy=url)
    assert info.value.http_status(False) == 502
    assert "proxy refused" in info.value.message and "407" in info.value.message
    assert "nope" not in info.value.message
    assert proxy.connects == [] and not emulator.peers


@pytest.mark.parametrize("backend", BACKENDS)
async def test_environment_proxy_and_no_proxy(
    backend: str, ca: LoopbackCA, emulator: TLSEmulator
) -> None:
    p = await ConnectProxy().start()
    try:
        env = {"HTTPS_PROXY": "http://bad.invalid:1", "https_proxy": p.url, "NO_PROXY": "localhost"}
        async with open_transport(backend, env, ca_bundle=str(ca.ca_path)) as t:
            await exchange(t, emulator.url("127.0.0.1"))  # through the proxy (lowercase wins)
            assert p.connects == [f"127.0.0.1:{emulator.port}"]
            await exchange(t, emulator.url("localhost"))  # NO_PROXY: direct
            assert len(p.connects) == 1
            assert len(emulator.peers) == 2
            # an explicit per-call proxy of "" means direct, whatever the environment says
            await exchange(t, emulator.url("127.0.0.1"), proxy="")
            assert len(p.connects) == 1
            assert len(emulator.peers) == 3
    finally:
        await p.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_http_target_goes_to_the_proxy_in_absolute_form(
    backend: str, proxy: ConnectProxy
) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        heads.append(await read_request(r))
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await drain_until_eof(r)

    heads: list[bytes] = []
    srv = await RawServer(handler).start()
    try:
        async with open_transport(backend, {"HTTP_PROXY": with_auth(proxy)}) as t:
            assert await exchange(t, srv.url()) == b"ok"
        line = f"POST http://127.0.0.1:{srv.port}/v1/chat/completions HTTP/1.1".encode()
        assert proxy.forwarded == [line]
        assert proxy.connects == []
        assert b"Proxy-Authorization: Basic cmVsYXkgdXNlcjpwQHNz\r\n" in heads[0]
        assert f"Host: 127.0.0.1:{srv.port}\r\n".encode() in heads[0]
    finally:
        await srv.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_http_target_407_from_the_proxy(backend: str, proxy: ConnectProxy) -> None:
    async with open_transport(backend, {"http_proxy": proxy.url}) as t:
        with pytest.raises(UpstreamError, match=r"proxy refused .*407"):
            await exchange(t, "http://127.0.0.1:9/v1/chat/completions")


async def test_pool_key_includes_the_proxy(
    ca: LoopbackCA, emulator: TLSEmulator, proxy: ConnectProxy
) -> None:
    other = await ConnectProxy().start()
    try:
        async with open_transport("fast", ca_bundle=str(ca.ca_path)) as t:
            for _ in range(2):
                await exchange(t, emulator.url(), proxy=with_auth(proxy))
                await exchange(t, emulator.url(), proxy=other.url)
                await exchange(t, emulator.url())
        assert len(proxy.connects) == 1 and len(other.connects) == 1
        assert len(emulator.peers) == 3  # one connection per (target, proxy), each reused
    finally:
        await other.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_unreachable_proxy(backend: str, ca: LoopbackCA, emulator: TLSEmulator) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with open_transport(backend, ca_bundle=str(ca.ca_path)) as t:
        with pytest.raises(UpstreamError, match="Could not connect to the HTTP proxy"):
            await exchange(t, emulator.url(), proxy=f"http://127.0.0.1:{port}")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_unsupported_proxy_scheme(backend: str, emulator: TLSEmulator) -> None:
    async with open_transport(backend) as t:
        with pytest.raises(UpstreamError, match=r"only http:// proxies") as info:
            await exchange(t, emulator.url(), proxy="socks5://u:secret@127.0.0.1:1080")
    assert "secret" not in info.value.message


def test_parse_proxy() -> None:
    assert parse_proxy("http://127.0.0.1:3128") == Proxy("127.0.0.1", 3128)
    assert parse_proxy("proxy.corp:8080") == Proxy("proxy.corp", 8080)
    assert parse_proxy("HTTP://proxy.corp") == Proxy("proxy.corp", 80)
    p = parse_proxy("http://user:pa%3Ass@[::1]:3128/")
    assert (p.host, p.port, p.authorization) == ("::1", 3128, "Basic dXNlcjpwYTpzcw==")
    assert p.url == "http://[::1]:3128"
    assert "pa" not in repr(p) and "dXNl" not in repr(p)
    for bad in ("https://proxy:443", "socks5://proxy:1080", "http://:3128", "http://h:99999"):
        with pytest.raises(UpstreamError):
            parse_proxy(bad)


def test_resolver_follows_urllib_semantics() -> None:
    env = {
        "HTTPS_PROXY": "http://upper:1",
        "https_proxy": "http://lower:2",
        "HTTP_PROXY": "http://plain:3",
        "NO_PROXY": "internal.corp, .svc,10.0.0.7,api.local:8443",
    }
    r = ProxyResolver(env)
    assert r.resolve("https", "api.openai.com", 443, None) == Proxy("lower", 2)
    assert r.resolve("http", "api.openai.com", 80, None) == Proxy("plain", 3)
    assert r.resolve("https", "internal.corp", 443, None) is None
    assert r.resolve("https", "llm.internal.corp", 443, None) is None  # suffix
    assert r.resolve("https", "vllm.svc", 443, None) is None  # leading-dot suffix
    assert r.resolve("https", "notinternal.corp", 443, None) == Proxy("lower", 2)
    assert r.resolve("https", "10.0.0.7", 443, None) is None
    assert r.resolve("https", "api.local", 8443, None) is None  # host:port entry
    assert r.resolve("https", "api.local", 443, None) == Proxy("lower", 2)
    # a per-call proxy wins over the environment and NO_PROXY; "" means direct
    assert r.resolve("https", "internal.corp", 443, "http://p:9") == Proxy("p", 9)
    assert r.resolve("https", "api.openai.com", 443, "") is None
    star = ProxyResolver({"HTTPS_PROXY": "http://p:1", "no_proxy": "*"})
    assert star.resolve("https", "api.openai.com", 443, None) is None
    assert ProxyResolver({}).resolve("https", "api.openai.com", 443, None) is None
    # an empty lowercase variable switches the uppercase one off, as in urllib
    assert (
        ProxyResolver({"HTTPS_PROXY": "http://p:1", "https_proxy": ""}).resolve(
            "https", "x", 443, None
        )
        is None
    )


def test_fast_transport_through_a_proxy_on_uvloop(ca: LoopbackCA) -> None:
    """The production event loop (uvloop) runs the CONNECT + start_tls path too."""

    async def scenario() -> tuple[bytes, bytes, list[str], int]:
        emu = await TLSEmulator(ca.server_context(), chunks=2).start()
        p = await ConnectProxy().start()
        try:
            async with open_transport("fast", ca_bundle=str(ca.ca_path)) as t:
                unary = await exchange(t, emu.url(), proxy=p.url)
                streamed = await exchange(t, emu.url(), proxy=p.url, stream=True)
                await exchange(t, emu.url())  # direct TLS as well
            return unary, streamed, p.connects, len(emu.peers)
        finally:
            await p.stop()
            await emu.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
        unary, streamed, connects, peers = runner.run(scenario())
    assert orjson.loads(unary)["object"] == "chat.completion"
    assert streamed.rstrip().endswith(b"data: [DONE]")
    assert len(connects) == 1 and peers == 2
